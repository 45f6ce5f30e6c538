"""What the telemetry libraries themselves cost per stream, before any bedrock_otel code: the floor under
bedrock_otel's fixed cost per stream.

    python benchmarks/floor.py [--n 20000]

Times, in one process, the OpenTelemetry SDK and prometheus_client calls a stream of the default
configuration makes: one CLIENT span with the attributes bedrock_otel sets (start, attach, 5 boundary events,
end-of-stream attributes, end through a SimpleSpanProcessor into memory), one synchronous histogram point,
and prometheus_client's counter increment and histogram observation.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

from opentelemetry import context, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, Counter, Histogram

from bedrock_otel import semconv as sc
from bedrock_otel.telemetry import catalog as c

START_ATTRIBUTES = {sc.OPERATION_NAME: sc.OPERATION_CHAT, sc.PROVIDER: sc.PROVIDER_ANTHROPIC,
                    sc.PLATFORM: sc.PLATFORM_FIRST_PARTY, sc.REQUEST_MODEL: "claude-opus-4-7", sc.REQUEST_STREAM: True}
END_ATTRIBUTES = {sc.OUTCOME: sc.OUTCOME_COMPLETED, sc.RESPONSE_ID: "msg_01", sc.RESPONSE_MODEL: "claude-opus-4-7",
                  sc.FINISH_REASONS: ["end_turn"], sc.REQUEST_ID: "req_01", sc.USAGE_INPUT: 17, sc.USAGE_OUTPUT: 7,
                  sc.USAGE_CACHE_READ: 3, sc.USAGE_CACHE_CREATION: 2, sc.TIME_TO_FIRST_CHUNK: 0.01,
                  **{sc.EVENTS_PREFIX + name: 1 for name in sc.EVENT_TYPES[:6]}}
BOUNDARIES = (sc.MESSAGE_START, sc.CONTENT_BLOCK_START, sc.CONTENT_BLOCK_STOP, sc.MESSAGE_DELTA, sc.MESSAGE_STOP)


def per_call_us(run: Callable[[], None], n: int) -> float:
    for _ in range(n // 10):
        run()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            run()
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("floor")

    def span(events: bool) -> Callable[[], None]:
        def run() -> None:
            s = tracer.start_span("chat claude-opus-4-7", kind=trace.SpanKind.CLIENT, attributes=START_ATTRIBUTES)
            token = context.attach(trace.set_span_in_context(s))
            context.detach(token)
            if events:
                for name in BOUNDARIES:
                    s.add_event(name)
            s.set_attributes(END_ATTRIBUTES)
            s.end()
            exporter.clear()
        return run

    histogram = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("floor").create_histogram(
        "h", explicit_bucket_boundaries_advisory=list(c.DURATION_BUCKETS))
    attributes = {**START_ATTRIBUTES, sc.ERROR_TYPE: ""}
    del attributes[sc.REQUEST_STREAM]
    registry = CollectorRegistry()
    labels = ("anthropic", "claude-opus-4-7", "", "", "completed")
    counter = Counter("c", "c", ["a", "b", "c", "d", "e"], registry=registry).labels(*labels)
    observe = Histogram("h", "h", ["a", "b", "c", "d", "e"], registry=registry,
                        buckets=c.DURATION_BUCKETS).labels(*labels)
    rows = [
        ("OpenTelemetry span: start, attach/detach, end attributes, end (SimpleSpanProcessor)", span(False)),
        ("  the same with the 5 boundary span events", span(True)),
        ("OpenTelemetry histogram.record() with 5 attributes", lambda: histogram.record(0.25, attributes)),
        ("prometheus_client counter child inc()", lambda: counter.inc(1)),
        ("prometheus_client histogram child observe()", lambda: observe.observe(0.25)),
    ]
    for label, run in rows:
        print(f"{per_call_us(run, args.n):8.2f} µs  {label}")


if __name__ == "__main__":
    main()
