"""What the telemetry libraries themselves cost, before any bedrock_otel code: the floor under bedrock_otel.

    python benchmarks/floor.py [--n 20000]

Times, in one process, the OpenTelemetry SDK and prometheus_client calls a stream of the default
configuration makes: one CLIENT span with the attributes bedrock_otel sets (start, attach, 5 boundary events,
end-of-stream attributes, end through a SimpleSpanProcessor into memory), one synchronous histogram point,
and prometheus_client's counter increment and histogram observation.

`hand_written()` is the "floor" configuration of `replay.py` and `compare.py`: the same span and metrics as
bedrock_otel's default, written by hand the way an application would, with the OpenTelemetry SDK and
prometheus_client directly (a generator around the caller's loop, no patching), so the benchmarks show how far
bedrock_otel is from the cost of the telemetry itself.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Iterator
from time import perf_counter_ns
from typing import Any, Callable

from opentelemetry import context, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bedrock_otel import semconv as sc
from bedrock_otel.telemetry import catalog as c

START_ATTRIBUTES = {sc.OPERATION_NAME: sc.OPERATION_CHAT, sc.PROVIDER: sc.PROVIDER_ANTHROPIC,
                    sc.PLATFORM: sc.PLATFORM_FIRST_PARTY, sc.REQUEST_MODEL: "claude-opus-4-7", sc.REQUEST_STREAM: True}
END_ATTRIBUTES = {sc.OUTCOME: sc.OUTCOME_COMPLETED, sc.RESPONSE_ID: "msg_01", sc.RESPONSE_MODEL: "claude-opus-4-7",
                  sc.FINISH_REASONS: ["end_turn"], sc.REQUEST_ID: "req_01", sc.USAGE_INPUT: 17, sc.USAGE_OUTPUT: 7,
                  sc.USAGE_CACHE_READ: 3, sc.USAGE_CACHE_CREATION: 2, sc.TIME_TO_FIRST_CHUNK: 0.01,
                  **{sc.EVENTS_PREFIX + name: 1 for name in sc.EVENT_TYPES[:6]}}
BOUNDARIES = (sc.MESSAGE_START, sc.CONTENT_BLOCK_START, sc.CONTENT_BLOCK_STOP, sc.MESSAGE_DELTA, sc.MESSAGE_STOP)


def hand_written(tracer_provider: Any, meter_provider: Any,
                 registry: CollectorRegistry | None = None) -> Callable[[Iterable[Any]], Iterator[Any]]:
    """A wrapper for a stream's events that makes bedrock_otel's default telemetry by hand: the span (start and
    end attributes, boundary events), the event, stream, token and in-flight counts, and the duration, time to
    first chunk, time per output chunk and token histograms, into prometheus_client and the OpenTelemetry
    Metrics API (one `record()` per chunk time, as the API takes them). `registry`: where the Prometheus
    metrics go (a new one by default), for the caller to scrape."""
    tracer = tracer_provider.get_tracer("floor")
    meter = meter_provider.get_meter("floor")
    registry = CollectorRegistry() if registry is None else registry
    key = ("anthropic", "first_party", "claude-opus-4-7", "messages")
    attributes = dict(zip((sc.PROVIDER, sc.PLATFORM, sc.REQUEST_MODEL, sc.STREAM_API), key))
    chat = {**attributes, sc.OPERATION_NAME: sc.OPERATION_CHAT}
    labels = ["provider", "platform", "model", "api"]

    def both(instrument: c.Instrument, extra: tuple[str, ...] = ()) -> tuple[Any, Any]:
        name = instrument.prometheus_name.removesuffix("_total")
        if instrument.kind is c.Kind.HISTOGRAM:
            return (Histogram(name, "", labels + list(extra), registry=registry, buckets=instrument.buckets),
                    meter.create_histogram(instrument.name, unit=instrument.unit,
                                           explicit_bucket_boundaries_advisory=list(instrument.buckets or ())))
        create = meter.create_up_down_counter if instrument.kind is c.Kind.UP_DOWN_COUNTER else meter.create_counter
        return (Counter(name, "", labels + list(extra), registry=registry) if instrument.kind is c.Kind.COUNTER
                else Gauge(name, "", labels, registry=registry)), create(instrument.name, unit=instrument.unit)

    streams, events_, active = both(c.STREAMS, ("outcome",)), both(c.STREAM_EVENTS, ("type",)), both(c.STREAMS_ACTIVE)
    duration, first = both(c.OPERATION_DURATION, ("operation",)), both(c.TIME_TO_FIRST_CHUNK, ("operation",))
    per_chunk, tokens = both(c.TIME_PER_OUTPUT_CHUNK, ("operation",)), both(c.USAGE_TOKENS, ("token_type",))

    def observe(stream: Iterable[Any]) -> Iterator[Any]:
        started = perf_counter_ns()
        span = tracer.start_span("chat claude-opus-4-7", kind=trace.SpanKind.CLIENT, attributes=START_ATTRIBUTES)
        active[0].labels(*key).inc()
        active[1].add(1, attributes)
        counts: dict[str, int] = {}
        gaps: list[int] = []
        first_ns = last_ns = 0
        usage: dict[str, int] = {}
        for event in stream:
            kind = event.type
            counts[kind] = counts.get(kind, 0) + 1
            if kind == "content_block_delta":
                now = perf_counter_ns()
                if last_ns:
                    gaps.append(now - last_ns)
                else:
                    first_ns = now
                last_ns = now
            elif kind in BOUNDARIES:
                span.add_event(kind)
                if kind == "message_start":
                    usage["input"] = event.message.usage.input_tokens
                elif kind == "message_delta":
                    usage["output"] = event.usage.output_tokens
            yield event
        seconds = (perf_counter_ns() - started) / 1e9
        span.set_attributes(END_ATTRIBUTES)
        span.end()
        active[0].labels(*key).dec()
        active[1].add(-1, attributes)
        streams[0].labels(*key, "completed").inc()
        streams[1].add(1, {**attributes, sc.OUTCOME: sc.OUTCOME_COMPLETED})
        for kind, count in counts.items():
            events_[0].labels(*key, kind).inc(count)
            events_[1].add(count, {**attributes, sc.EVENT_TYPE: kind})
        duration[0].labels(*key, "chat").observe(seconds)
        duration[1].record(seconds, chat)
        if first_ns:
            first[0].labels(*key, "chat").observe((first_ns - started) / 1e9)
            first[1].record((first_ns - started) / 1e9, chat)
        chunk_child = per_chunk[0].labels(*key, "chat")
        for gap in gaps:
            chunk_child.observe(gap / 1e9)
            per_chunk[1].record(gap / 1e9, chat)
        for token_type, count in usage.items():
            tokens[0].labels(*key, token_type).inc(count)
            tokens[1].add(count, {**attributes, sc.TOKEN_TYPE: token_type})

    return observe


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
