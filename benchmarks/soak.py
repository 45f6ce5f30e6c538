"""Soak: many streams through the loopback servers with a fault mix, concurrently, then exact totals and memory.

    python benchmarks/soak.py                       # the full run: 100,000 streams, 200 async tasks, 16 threads
    python benchmarks/soak.py --streams 2000 --heap # what .ci/run runs (tests/test_reliability.py)

Checks, and prints: every counter equals the total the planned scenarios must produce (outcomes, events, error
frames, malformed events, rate-limit hits, HTTP statuses, tokens), the active-streams gauge is back to 0, every span
started was ended, no internal error; and the memory growth after a warm-up (a tenth of the streams, at least
enough to reach full concurrency): resident memory after every batch of 2,000 (the loopback server runs in a child
process, so this is the application's), whose growth (the trend, see `rss_trend`) must stay under --max-growth-mib;
or with `--heap` the Python
heap memory allocated after warm-up and still alive at the end (tracemalloc, whose own tables then grow the RSS).
`--bare` runs the same traffic uninstrumented.
Exit status 1 when a check fails. `--json FILE` writes the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import threading
import time
import tracemalloc
from collections import Counter
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from prometheus_client import CollectorRegistry

import bedrock_otel
from bedrock_otel import semconv as sc
from bedrock_otel.telemetry import catalog as c
from bedrock_otel.testing import workload
from bedrock_otel.testing.expectations import expected
from bedrock_otel.testing.server import LoopbackServerProcess
from bedrock_otel.testing.workload import PROVIDERS, Planned

# a fault mix whose scenarios end fast (no client-side back-off or read timeouts)
SOAK_FAULTS = {
    "error_first": 0.04, "error_mid": 0.03, "exception_throttlingException": 0.03, "http_429_then_ok": 0.03,
    "truncated": 0.02, "reset": 0.02, "typeless": 0.02, "invalid_json": 0.01, "unknown_event": 0.02,
    "error_after_stop": 0.01, "corrupt": 0.01,
}
_MIB = 1 << 20


class SpanCounter(SpanProcessor):
    """Counts spans started and ended (keeps none, so the soak measures bedrock_otel, not an exporter)."""

    def __init__(self) -> None:
        self.started = self.ended = 0
        self._lock = threading.Lock()

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        with self._lock:
            self.started += 1

    def on_end(self, span: Any) -> None:
        with self._lock:
            self.ended += 1


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def expected_totals(planned: list[Planned]) -> dict[str, Counter[Any]]:
    """What the contract says these streams add up to, per metric and label values."""
    totals: dict[str, Counter[Any]] = {name: Counter() for name in
                                       ("outcomes", "events", "error_frames", "malformed", "rate_limits", "http",
                                        "tokens")}
    for p in planned:
        exp = expected(p.scenario, p.provider)
        totals["outcomes"][exp.outcome] += 1
        for name, counts in (("events", exp.events), ("error_frames", exp.error_frames),
                             ("malformed", exp.malformed), ("rate_limits", exp.rate_limits), ("http", exp.http),
                             ("tokens", exp.usage)):
            totals[name].update(counts)
    return totals


def recorded_totals(registry: CollectorRegistry) -> dict[str, Counter[Any]]:
    def summed(instrument: c.Instrument, *attributes: str) -> Counter[Any]:
        keys = [c.prometheus_label(a) for a in attributes]
        out: Counter[Any] = Counter()
        for family in registry.collect():
            for s in family.samples:
                if s.name == instrument.prometheus_name and s.value:
                    key = tuple(s.labels[k] for k in keys)
                    out[key[0] if len(key) == 1 else key] += int(s.value)
        return out

    return {
        "outcomes": summed(c.STREAMS, sc.OUTCOME), "events": summed(c.STREAM_EVENTS, sc.EVENT_TYPE),
        "error_frames": summed(c.ERROR_FRAMES, sc.ERROR_TYPE, sc.ERROR_SOURCE),
        "malformed": summed(c.MALFORMED_EVENTS, sc.EVENT_TYPE, sc.MALFORMED_REASON),
        "rate_limits": summed(c.RATE_LIMIT_HITS, sc.RATE_LIMIT_SOURCE),
        "http": summed(c.HTTP_RESPONSES, sc.HTTP_STATUS),
        "tokens": summed(c.USAGE_TOKENS, sc.TOKEN_TYPE), "active": summed(c.STREAMS_ACTIVE, sc.PROVIDER),
        "internal_errors": summed(c.INTERNAL_ERRORS, sc.INTERNAL_COMPONENT),
    }


def run_in_batches(server: LoopbackServerProcess, planned: list[Planned], threads: int, tasks: int,
                   rss_trace: list[float]) -> Counter[str]:
    """Run in batches of 2,000, letting the server forget its request log in between, and note resident memory
    (MiB) after each batch."""
    fared: Counter[str] = Counter()
    for i in range(0, len(planned), 2000):
        fared += workload.run(server, planned[i:i + 2000], concurrency=threads, tasks=tasks)
        server.reset()
        rss_trace.append(round(rss_bytes() / _MIB, 1))
    gc.collect()
    return fared


def soak(streams: int, tasks: int, threads: int, seed: int = 1, bare: bool = False,
         trace_heap: bool = False) -> dict[str, Any]:
    registry = CollectorRegistry()
    spans = SpanCounter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(spans)
    planned = workload.plan(streams, SOAK_FAULTS, seed=seed)
    # warm-up: a tenth, and enough streams to reach full concurrency (the allocator's high-water mark) first
    warm = min(max(streams // 10, 4 * (tasks + threads)), streams // 2)
    warm_up, rest = planned[:warm], planned[warm:]
    if not bare:
        bedrock_otel.instrument(registry=registry, tracer_provider=tracer_provider, metrics="prometheus")
    started = time.perf_counter()
    try:
        with LoopbackServerProcess() as server:
            rss_trace: list[float] = []
            fared = run_in_batches(server, warm_up, threads, tasks, rss_trace)
            warm_batches = len(rss_trace)
            rss_warm = rss_bytes()
            if trace_heap:
                tracemalloc.start()
            fared += run_in_batches(server, rest, threads, tasks, rss_trace)
            heap_growth = tracemalloc.get_traced_memory()[0] if trace_heap else 0
            rss_end = rss_bytes() - tracemalloc.get_tracemalloc_memory()  # not tracemalloc's own bookkeeping
            tracemalloc.stop()
    finally:
        elapsed = time.perf_counter() - started
        if bedrock_otel.is_instrumented():
            bedrock_otel.uninstrument()
    want, got = expected_totals(planned), recorded_totals(registry)
    mismatches = {name: {"expected": dict(want[name]), "recorded": dict(got[name])}
                  for name in want if want[name] != got[name]}
    return {
        "streams": streams, "async_tasks": tasks, "threads": threads, "seconds": round(elapsed, 1),
        "streams_per_second": round(streams / elapsed), "application_saw": dict(fared),
        "outcomes": dict(got["outcomes"]), "events": sum(got["events"].values()),
        "error_frames": sum(got["error_frames"].values()), "rate_limit_hits": sum(got["rate_limits"].values()),
        "spans_started": spans.started, "spans_ended": spans.ended, "active_after": sum(got["active"].values()),
        "internal_errors": sum(got["internal_errors"].values()),
        "rss_after_warm_up_mib": round(rss_warm / _MIB, 2), "rss_end_mib": round(rss_end / _MIB, 2),
        "rss_end_minus_warm_mib": round((rss_end - rss_warm) / _MIB, 2),
        "rss_growth_mib": rss_trend(rss_trace[warm_batches:]), "heap_growth_mib": round(heap_growth / _MIB, 3),
        "rss_per_batch_mib": rss_trace, "heap_traced": trace_heap,
        "mismatches": {} if bare else mismatches, "instrumented": not bare,
        "providers": sorted(PROVIDERS),
    }


def rss_trend(after_warm_up: list[float]) -> float:
    """How much resident memory grew over the run after warm-up: the median of the last fifth of the batches
    minus that of the first fifth. glibc's allocator makes RSS swing by several MiB from batch to batch, with or
    without bedrock_otel (compare `--bare`), so the two end points alone measure the swing, not growth."""
    if len(after_warm_up) < 2:
        return 0.0
    fifth = max(len(after_warm_up) // 5, 1)
    return round(statistics.median(after_warm_up[-fifth:]) - statistics.median(after_warm_up[:fifth]), 2)


def problems(figures: dict[str, Any], max_growth_mib: float) -> list[str]:
    out = [f"{name}: expected {m['expected']}, recorded {m['recorded']}" for name, m in figures["mismatches"].items()]
    if figures["heap_traced"] and figures["heap_growth_mib"] >= max_growth_mib:
        out.append(f"Python heap grew {figures['heap_growth_mib']} MiB after warm-up (limit {max_growth_mib})")
    if not figures["heap_traced"] and figures["rss_growth_mib"] >= max_growth_mib:
        out.append(f"resident memory grew {figures['rss_growth_mib']} MiB after warm-up (limit {max_growth_mib})")
    if not figures["instrumented"]:
        return out
    if figures["spans_started"] != figures["streams"] or figures["spans_ended"] != figures["spans_started"]:
        out.append(f"spans: {figures['spans_started']} started, {figures['spans_ended']} ended, "
                   f"{figures['streams']} streams")
    if figures["active_after"]:
        out.append(f"active-streams gauge at {figures['active_after']} after the run")
    if figures["internal_errors"]:
        out.append(f"{figures['internal_errors']} internal errors")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=200, help="concurrent async streams")
    parser.add_argument("--threads", type=int, default=16, help="threads of sync streams")
    parser.add_argument("--max-growth-mib", type=float, default=5.0)
    parser.add_argument("--bare", action="store_true", help="the same traffic uninstrumented (memory reference)")
    parser.add_argument("--heap", action="store_true",
                        help="check Python heap growth with tracemalloc instead of resident memory (tracemalloc "
                             "slows the run and its own tables grow the RSS)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    figures = soak(args.streams, args.tasks, args.threads, bare=args.bare, trace_heap=args.heap)
    for key, value in figures.items():
        if key != "mismatches":
            print(f"  {key:24} {value}")
    found = problems(figures, args.max_growth_mib)
    for line in found:
        print(f"  FAIL {line}")
    verdict = "all counters exact, spans ended, gauge at 0, memory bounded" if not args.bare else "bare run done"
    print("soak: " + ("FAILED" if found else verdict))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2, default=str)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
