"""Scrape time in prometheus_client multiprocess mode as recycled workers pile up in PROMETHEUS_MULTIPROC_DIR.

Every worker process that ever recorded leaves its own files (one per metric type: counter, histogram,
gauge_livesum, gauge_mostrecent), and `MultiProcessCollector` opens and merges every file on every scrape.
`child_exit` (prometheus_client's `mark_process_dead`) deletes only a dead worker's `gauge_live*` files: its
counters and histograms must stay, or the totals would go backwards. This builds the files of N dead workers,
each having streamed like a real one (through bedrock_otel's recorder), and times scrapes before and after
`child_exit` for all of them.

    python benchmarks/multiprocess_scrape.py                 # 10, 100, 1000, 3000 dead workers
    python benchmarks/multiprocess_scrape.py --workers 5000 --streams 20
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "src"))


def _record_as_worker(pid: int, streams: int) -> None:
    """What one worker writes: its pid's files, with `streams` finished streams over 2 models."""
    from prometheus_client import CollectorRegistry, values

    from bedrock_otel.observe.labels import CallLabels
    from bedrock_otel.telemetry import catalog, measurements
    from bedrock_otel.telemetry.prometheus import PrometheusRecorder

    values.ValueClass = values.MultiProcessValue(lambda: pid)
    recorder = PrometheusRecorder(CollectorRegistry())
    for i in range(streams):
        labels = CallLabels("aws.bedrock", "bedrock", f"global.anthropic.model-{i % 2}", "us-east-1", "global")
        recorder.record(catalog.STREAMS, (*labels.stream_key, "completed"), 1)
        recorder.record(catalog.STREAM_EVENTS, (*labels.stream_key, "content_block_delta"), 3)
        recorder.record(catalog.OPERATION_DURATION, (*labels.stream_key, "chat", ""), 0.5)
        recorder.record(catalog.STREAMS_ACTIVE, labels.provider_key, 0)
        for measurement in measurements.http_response(labels, 200, {}):
            recorder.record(*measurement)
    recorder.close()


def _scrape_ms(directory: str, scrapes: int) -> tuple[float, int]:
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    times, size = [], 0
    for _ in range(scrapes):
        started = time.perf_counter()
        size = len(generate_latest(registry))
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), size


def measure(workers: int, streams: int, scrapes: int) -> dict[str, float]:
    directory = tempfile.mkdtemp(prefix="bedrock-otel-mp-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        for pid in range(100000, 100000 + workers):
            _record_as_worker(pid, streams)
        files = len(os.listdir(directory))
        before, size = _scrape_ms(directory, scrapes)
        from prometheus_client import multiprocess

        for pid in range(100000, 100000 + workers):
            multiprocess.mark_process_dead(pid, path=directory)  # what child_exit does
        after, _ = _scrape_ms(directory, scrapes)
        return {"workers": workers, "files": files, "files_after_child_exit": len(os.listdir(directory)),
                "scrape_ms": before, "scrape_ms_after_child_exit": after, "bytes": size}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="*", default=[10, 100, 1000, 3000])
    parser.add_argument("--streams", type=int, default=10, help="streams each worker recorded")
    parser.add_argument("--scrapes", type=int, default=5)
    args = parser.parse_args()
    print(f"{'dead workers':>12} {'files':>7} {'scrape':>10} {'after child_exit':>17} {'files left':>10} {'size':>9}")
    for workers in args.workers:
        r = measure(workers, args.streams, args.scrapes)
        print(f"{r['workers']:>12} {r['files']:>7} {r['scrape_ms']:>8.1f}ms {r['scrape_ms_after_child_exit']:>15.1f}ms "
              f"{r['files_after_child_exit']:>10} {r['bytes'] / 1024:>7.0f}KiB")


if __name__ == "__main__":
    main()
