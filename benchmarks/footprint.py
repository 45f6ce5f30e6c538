"""Memory per in-flight stream and the time to scrape /metrics at full label cardinality.

    python benchmarks/footprint.py [--streams 1000] [--waves 5] [--models 20] [--scrapes 50]

memory: `--streams` async streams held open at once (each has delivered its first event), bare and then
instrumented (default configuration), through the real SDK with an in-process transport. tracemalloc gives the
Python heap they hold; the difference per stream is what instrumentation keeps per in-flight stream (split
into bedrock_otel's own objects and the OpenTelemetry span). Then `--waves` waves of that many concurrent
streams run to the end: the heap after each wave shows whether memory stays bounded.

scrape: the Prometheus recorder holds every label combination the catalogue allows for `--models` models on
both providers (error types paired with their source, all event types, outcomes, token types, statuses);
`--scrapes` GETs of the real /metrics endpoint over loopback are timed. Prints a table; `--json` for a file.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import statistics
import sys
import time
import tracemalloc
import urllib.request
from pathlib import Path
from typing import Any

import bedrock_otel
from bedrock_otel import semconv as sc
from bedrock_otel.observe import classify
from bedrock_otel.observe.retry import RETRY_STATUS
from bedrock_otel.telemetry.catalog import CATALOG
from bedrock_otel.telemetry.prometheus import PrometheusRecorder

sys.path.insert(0, str(Path(__file__).parent))
import replay  # the benchmarks' clients and pipeline, shared with compare.py

# -- memory -------------------------------------------------------------------------------------------------


async def _hold_open(client: Any, streams: int) -> list[Any]:
    """`streams` streams that have each delivered their first event and wait for the caller to go on."""
    request = {"model": replay.MODELS["first_party"], "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    held = []
    for _ in range(streams):
        stream = await client.messages.create(stream=True, **request)
        iterator = stream.__aiter__()
        await iterator.__anext__()
        held.append((stream, iterator))
    return held


async def _finish(held: list[Any]) -> None:
    async def drain(iterator: Any) -> None:
        async for _ in iterator:
            pass
    await asyncio.gather(*(drain(iterator) for _stream, iterator in held))


def _heap(filter_path: str | None = None) -> int:
    gc.collect()
    if filter_path is None:
        return tracemalloc.get_traced_memory()[0]
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, f"*{filter_path}*")])
    return sum(stat.size for stat in snapshot.statistics("filename"))


def _in_flight(loop: asyncio.AbstractEventLoop, client: Any, streams: int) -> dict[str, float]:
    """Heap held per open stream: in total, in bedrock_otel's files and in the OpenTelemetry SDK's."""
    parts = {"total": None, "bedrock_otel": "/bedrock_otel/", "opentelemetry": "/opentelemetry/"}
    before = {name: _heap(path) for name, path in parts.items()}
    held = loop.run_until_complete(_hold_open(client, streams))
    during = {name: _heap(path) for name, path in parts.items()}
    loop.run_until_complete(_finish(held))
    del held
    return {name: (during[name] - before[name]) / streams for name in parts}


def memory(streams: int, waves: int) -> dict[str, Any]:
    body = replay.make_body("first_party", 20)
    loop = asyncio.new_event_loop()
    pipeline = replay.Pipeline.build()
    tracemalloc.start()
    bare_client = replay.make_client("first_party", True, body, {})
    loop.run_until_complete(_finish(loop.run_until_complete(_hold_open(bare_client, 50))))  # warm-up
    bare = _in_flight(loop, bare_client, streams)
    options = replay.CONFIGURATIONS["bedrock_otel"].setup(pipeline)
    client = replay.make_client("first_party", True, body, options)
    loop.run_until_complete(_finish(loop.run_until_complete(_hold_open(client, 50))))
    pipeline.export()
    instrumented = _in_flight(loop, client, streams)
    pipeline.export()
    after_waves = []
    for _ in range(waves):
        held = loop.run_until_complete(_hold_open(client, streams))
        loop.run_until_complete(_finish(held))
        del held
        pipeline.export()  # as a periodic exporter would: the exporter's memory is not instrumentation state
        after_waves.append(_heap())
    tracemalloc.stop()
    bedrock_otel.uninstrument()
    loop.close()
    return {
        "streams": streams,
        "bare_bytes_per_stream": bare["total"],
        "instrumented_bytes_per_stream": instrumented["total"],
        "added_bytes_per_stream": instrumented["total"] - bare["total"],
        "bedrock_otel_bytes_per_stream": instrumented["bedrock_otel"],
        "opentelemetry_bytes_per_stream": instrumented["opentelemetry"],
        "heap_after_each_wave": after_waves,
    }


# -- scrape -------------------------------------------------------------------------------------------------

ERROR_TYPES = [*sorted(sc.ANTHROPIC_ERROR_TYPES | sc.BEDROCK_EXCEPTION_TYPES), sc.OTHER]
# every value an attribute can take besides the stream's own labels; the error type pairs with its source
DOMAINS: dict[str, tuple[str, ...]] = {
    sc.EVENT_TYPE: (*sc.EVENT_TYPES, sc.OTHER, sc.NONE),
    sc.MALFORMED_REASON: (sc.REASON_START_WITHOUT_MESSAGE, sc.REASON_MISSING_TYPE, sc.REASON_INVALID_JSON),
    sc.RATE_LIMIT_SOURCE: (sc.SOURCE_ERROR_EVENT, sc.SOURCE_EXCEPTION_FRAME, sc.SOURCE_HTTP_429),
    sc.OUTCOME: sc.OUTCOMES,
    sc.HTTP_STATUS: ("200", "429", "500", "529"),
    sc.RATE_LIMIT_RESOURCE: sc.RATE_LIMIT_RESOURCES,
    sc.TOKEN_TYPE: (sc.TOKEN_INPUT, sc.TOKEN_OUTPUT, sc.TOKEN_CACHE_READ, sc.TOKEN_CACHE_CREATION),
    sc.OPERATION_NAME: (sc.OPERATION_CHAT,),
    sc.ERROR_TYPE: ("", *ERROR_TYPES),
    sc.INTERNAL_COMPONENT: sc.INTERNAL_COMPONENTS,
    sc.DROPPED_REASON: sc.DROPPED_REASONS,
    sc.RETRY_RESULT: sc.RETRY_RESULTS,
}
PAIRED = (sc.ERROR_TYPE, sc.ERROR_SOURCE)


def _stream_keys(models: int) -> list[dict[str, str]]:
    keys = []
    for i in range(models):
        keys.append({sc.PROVIDER: sc.PROVIDER_ANTHROPIC, sc.REQUEST_MODEL: f"claude-model-{i}",
                     sc.CLOUD_REGION: "", sc.INFERENCE_PROFILE: "", sc.STREAM_API: sc.API_MESSAGES})
        keys.append({sc.PROVIDER: sc.PROVIDER_BEDROCK, sc.REQUEST_MODEL: f"global.anthropic.claude-model-{i}",
                     sc.CLOUD_REGION: "us-east-1", sc.INFERENCE_PROFILE: "global",
                     sc.STREAM_API: sc.API_MESSAGES})
    return keys


def label_combinations(instrument: Any, models: int) -> list[tuple[str, ...]]:
    """Every label tuple `instrument` can carry for `models` models on both providers."""
    own = [a for a in instrument.attributes if a not in _stream_keys(1)[0]]
    choices = []
    for attribute in own:
        if attribute == sc.ERROR_SOURCE:
            continue  # follows the error type
        if attribute == sc.ERROR_TYPE and sc.ERROR_SOURCE in own:
            choices.append([{sc.ERROR_TYPE: t, sc.ERROR_SOURCE: classify.error_source(t)} for t in ERROR_TYPES])
        elif attribute == sc.ERROR_TYPE and sc.RETRY_RESULT in own:  # only retryable types are retried
            choices.append([{sc.ERROR_TYPE: t} for t in sorted(RETRY_STATUS)])
        else:
            choices.append([{attribute: value} for value in DOMAINS[attribute]])
    shared = [a for a in instrument.attributes if a not in own]
    keys = {tuple(key[a] for a in shared): key for key in _stream_keys(models)}.values()
    combinations = []
    for key in keys:
        for picks in itertools.product(*choices):
            labels = dict(key)
            for pick in picks:
                labels.update(pick)
            combinations.append(tuple(labels[a] for a in instrument.attributes))
    return combinations


def scrape(models: int, scrapes: int) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    recorder = PrometheusRecorder(registry)
    for instrument in CATALOG:
        for values in label_combinations(instrument, models):
            recorder.record(instrument, values, [1.0] if instrument.points else 1.0)
    server = bedrock_otel.start_metrics_server(0, registry=registry)
    try:
        times, size = [], 0
        for _ in range(scrapes):
            start = time.perf_counter()
            with urllib.request.urlopen(server.url, timeout=10) as response:
                body = response.read()
            times.append(time.perf_counter() - start)
            size = len(body)
    finally:
        server.close()
    samples = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    return {"models": models, "series": len(recorder), "samples": samples, "bytes": size,
            "median_ms": statistics.median(times) * 1e3, "max_ms": max(times) * 1e3, "scrapes": scrapes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--waves", type=int, default=5)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    result = {"memory": memory(args.streams, args.waves), "scrape": scrape(args.models, args.scrapes)}
    m, s = result["memory"], result["scrape"]
    print(f"memory, {m['streams']} async streams in flight (first event read), heap per stream:")
    print(f"  bare {m['bare_bytes_per_stream']:.0f} B, instrumented {m['instrumented_bytes_per_stream']:.0f} B: "
          f"+{m['added_bytes_per_stream']:.0f} B (bedrock_otel's objects {m['bedrock_otel_bytes_per_stream']:.0f} B, "
          f"OpenTelemetry span {m['opentelemetry_bytes_per_stream']:.0f} B)")
    waves = ", ".join(f"{b / 2**20:.2f}" for b in m["heap_after_each_wave"])
    print(f"  heap after each wave of {m['streams']} concurrent streams (MiB): {waves}")
    print(f"scrape, {s['models']} models x every label combination: {s['series']} series, {s['samples']} samples, "
          f"{s['bytes'] / 1024:.0f} KiB; GET /metrics median {s['median_ms']:.1f} ms, max {s['max_ms']:.1f} ms "
          f"over {s['scrapes']} scrapes")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
