"""One benchmark process: replay recorded stream bodies through the real SDK under one configuration.

    python benchmarks/replay.py CONFIG BODIES_DIR --reps 6 [--paths ...] [--workloads long,short]

Run by `compare.py` in a fresh process per (configuration, round), in whichever environment holds the
configuration's package: bedrock_otel's own, or a peer's. So this file imports only the SDK and the
OpenTelemetry SDK at module level. The HTTP transport is in-process (httpx's MockTransport): no sockets, so
network noise stays out, while the SDK's real decoders, SigV4 signing and stream classes do all their work.

Every configuration, bare included, has the same telemetry pipeline: an SDK TracerProvider with a
SimpleSpanProcessor into memory and a MeterProvider with an in-memory reader, so a configuration pays for what
it records and nothing else. The SDK's own tracing (1.14+) is off (`open_telemetry=False`) except where it is
the configuration measured. Prints one JSON object, by path and workload: per repetition, the stream loop's
seconds, and the process's CPU seconds (every thread) for the loop plus the metric collection and /metrics
scrape after it, so that work another thread would do is counted too.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import anthropic
import anthropic._base_client
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# the HTTP library this SDK version uses: httpx2 from 1.0, httpx before
httpx: Any = getattr(anthropic._base_client, "httpx2", None) or anthropic._base_client.httpx

PROVIDERS = ("first_party", "bedrock")
MODELS = {"first_party": "claude-opus-4-7", "bedrock": "global.anthropic.claude-opus-4-7"}
CONTENT_TYPES = {"first_party": "text/event-stream", "bedrock": "application/vnd.amazon.eventstream"}
# (API, sync or async): `create(stream=True)` read to the end, or the `stream()` helper's events read to the end
PATHS = tuple(f"{provider}/{api}/{mode}" for provider in PROVIDERS for api in ("create", "helper")
              for mode in ("sync", "async"))
# long: one 2,000-event stream per repetition (the cost per event); short: 100 streams of 20 events (per stream)
WORKLOADS = {"long": (2000, 1), "short": (20, 100)}


@dataclass(frozen=True)
class Pipeline:
    """The telemetry pipeline every configuration shares."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    @classmethod
    def build(cls) -> Pipeline:
        spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
        metrics = InMemoryMetricReader()
        return cls(tracer_provider, MeterProvider(metric_readers=[metrics]), spans, metrics)

    def export(self) -> None:
        """What a periodic exporter does between repetitions (untimed): collect the metrics, drop the spans. No
        deadline on the collection: under valgrind (instructions.py) it ran past the reader's default 10 s and
        raised MetricsTimeoutError."""
        self.metrics.collect(timeout_millis=3_600_000)
        self.spans.clear()


# what a scrape of the configuration's Prometheus endpoint renders, besides the OpenTelemetry metrics collection
# every configuration pays (bedrock_otel's own registry)
SCRAPES: list[Callable[[], Any]] = []


def _bedrock_otel(**settings: Any) -> Callable[[Pipeline], dict[str, Any]]:
    def setup(pipeline: Pipeline) -> dict[str, Any]:
        from prometheus_client import CollectorRegistry

        import bedrock_otel
        from bedrock_otel.exporters.exposition import generate

        registry = CollectorRegistry()
        bedrock_otel.instrument(tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider,
                                registry=registry, **settings)
        SCRAPES.append(lambda: generate(registry))
        return {}
    return setup


def _sdk_builtin(pipeline: Pipeline) -> dict[str, Any]:
    return {"open_telemetry": {"tracer_provider": pipeline.tracer_provider}}


def _instrumentor(module: str, meters: bool) -> Callable[[Pipeline], dict[str, Any]]:
    """A peer that is an OpenTelemetry BaseInstrumentor named AnthropicInstrumentor in `module`."""

    def setup(pipeline: Pipeline) -> dict[str, Any]:
        instrumentor = __import__(module, fromlist=["AnthropicInstrumentor"]).AnthropicInstrumentor()
        providers = {"meter_provider": pipeline.meter_provider} if meters else {}
        instrumentor.instrument(tracer_provider=pipeline.tracer_provider, **providers)
        return {}
    return setup


def _logfire(pipeline: Pipeline) -> dict[str, Any]:
    import logfire

    logfire.configure(send_to_logfire=False, console=False, metrics=False, inspect_arguments=False,
                      additional_span_processors=[SimpleSpanProcessor(pipeline.spans)])
    logfire.instrument_anthropic()
    return {}


@dataclass(frozen=True)
class Configuration:
    name: str
    setup: Callable[[Pipeline], dict[str, Any]]  # instruments; returns extra client options
    requirements: tuple[str, ...] = ()  # what a peer's own environment installs (empty: bedrock_otel's env)
    min_sdk: tuple[int, ...] = (0,)
    # telemetry around the caller's loop instead of instrumentation: given the pipeline, wraps a stream's events
    wrap: Callable[[Pipeline], Callable[[Any], Any]] | None = None


def _hand_written(pipeline: Pipeline) -> Callable[[Any], Any]:
    from floor import hand_written  # bedrock_otel's environment only (the floor uses its semantic conventions)
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    SCRAPES.append(lambda: generate_latest(registry))  # its /metrics, scraped as bedrock_otel's is
    return hand_written(pipeline.tracer_provider, pipeline.meter_provider, registry)


BARE = Configuration("bare", lambda pipeline: {})
CONFIGURATIONS = {c.name: c for c in (
    BARE,
    Configuration("bedrock_otel", _bedrock_otel()),
    Configuration("bedrock_otel metrics-only", _bedrock_otel(traces=False)),
    Configuration("bedrock_otel spans-only", _bedrock_otel(metrics="none")),
    Configuration("bedrock_otel prometheus-only", _bedrock_otel(traces=False, metrics="prometheus")),
    Configuration("bedrock_otel hooks-only", _bedrock_otel(traces=False, metrics="none")),  # the hooks' own cost
    Configuration("bedrock_otel retry", _bedrock_otel(retry=True)),  # healthy streams: the read-ahead's cost
    Configuration("floor", lambda pipeline: {}, wrap=_hand_written),  # the same telemetry by hand, sync paths
    Configuration("sdk built-in tracing", _sdk_builtin, min_sdk=(1, 14)),
    Configuration("traceloop", _instrumentor("opentelemetry.instrumentation.anthropic", meters=True),
                  ("opentelemetry-instrumentation-anthropic==0.62.4",)),
    Configuration("openinference", _instrumentor("openinference.instrumentation.anthropic", meters=False),
                  ("openinference-instrumentation-anthropic==3.1.0",)),
    Configuration("otel genai-anthropic", _instrumentor("opentelemetry.instrumentation.genai.anthropic", meters=True),
                  ("opentelemetry-instrumentation-genai-anthropic==1.3b0",)),
    Configuration("logfire", _logfire, ("logfire==5.2.0",)),
)}


def make_body(provider: str, events: int) -> bytes:
    """A recorded stream of `events` events (start, ping-free text block, end) in the provider's wire format.
    Only in bedrock_otel's environment: the encoders are its testing toolkit's."""
    from bedrock_otel.testing import scenarios
    from bedrock_otel.testing.server import encode_bedrock, encode_sse

    encode = encode_bedrock if provider == "bedrock" else encode_sse
    return b"".join(encode(part) for part in scenarios.normal_parts(tuple(f"token{i} " for i in range(events - 5))))


def write_bodies(directory: Path) -> None:
    for provider in PROVIDERS:
        for events, _streams in WORKLOADS.values():
            (directory / f"{provider}-{events}.bin").write_bytes(make_body(provider, events))


def sdk_version() -> tuple[int, ...]:
    return tuple(int(part) for part in anthropic.__version__.split(".")[:2])


def make_client(provider: str, asynchronous: bool, body: bytes, options: dict[str, Any]) -> Any:
    headers = {"content-type": CONTENT_TYPES[provider]}

    def handler(request: Any) -> Any:
        return httpx.Response(200, headers=headers, content=body)

    transport = httpx.MockTransport(handler)
    http_client = httpx.AsyncClient(transport=transport) if asynchronous else httpx.Client(transport=transport)
    if provider == "bedrock":
        cls = anthropic.AsyncAnthropicBedrock if asynchronous else anthropic.AnthropicBedrock
        credentials = {"aws_access_key": "AKIDEXAMPLE", "aws_secret_key": "secret", "aws_region": "us-east-1"}
    else:
        cls = anthropic.AsyncAnthropic if asynchronous else anthropic.Anthropic
        credentials = {"api_key": "sk-ant-benchmark"}
    if "open_telemetry" in inspect.signature(cls.__init__).parameters:
        options = {"open_telemetry": False, **options}
    return cls(base_url="http://replay.invalid", max_retries=0, http_client=http_client, **credentials, **options)


def stream_runner(path: str, client: Any, streams: int,
                  wrap: Callable[[Any], Any] | None = None) -> Callable[[], Any]:
    """A callable that reads `streams` streams to the end (for async paths: a coroutine function); `wrap`
    (sync paths) is put around each stream's events."""
    provider, api, mode = path.split("/")
    request = {"model": MODELS[provider], "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    messages = client.messages
    around = wrap or (lambda events: events)
    if mode == "sync":
        def run() -> None:
            for _ in range(streams):
                if api == "create":
                    for _ in around(messages.create(stream=True, **request)):
                        pass
                else:
                    with messages.stream(**request) as stream:
                        for _ in around(stream):
                            pass
        return run
    if wrap is not None:
        raise ValueError(f"{path}: a wrapped configuration runs the sync paths only")

    async def arun() -> None:
        for _ in range(streams):
            if api == "create":
                async for _ in await messages.create(stream=True, **request):
                    pass
            else:
                async with messages.stream(**request) as stream:
                    async for _ in stream:
                        pass
    return arun


def time_reps(run: Callable[[], Any], reps: int, pipeline: Pipeline,
              loop: asyncio.AbstractEventLoop) -> tuple[list[float], list[float]]:
    """Per repetition: the stream loop's wall time, and the process's CPU time (every thread) for the loop and
    the telemetry work it leaves behind: the metric reader's collection and export, and a scrape of the
    configuration's /metrics (what a reader thread and a scraper would spend on it, counted here)."""
    call = (lambda: loop.run_until_complete(run())) if inspect.iscoroutinefunction(run) else run
    call()  # warm-up: imports, botocore's service model, first-time class caches
    times, cpu = [], []
    for _ in range(reps):
        pipeline.export()
        gc.collect()
        started_cpu = time.process_time()
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
        pipeline.export()
        for scrape in SCRAPES:
            scrape()
        cpu.append(time.process_time() - started_cpu)
    return times, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", choices=sorted(CONFIGURATIONS))
    parser.add_argument("bodies", type=Path, help="directory of recorded bodies: {provider}-{events}.bin")
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    args = parser.parse_args()
    configuration = CONFIGURATIONS[args.config]
    if sdk_version() < configuration.min_sdk:
        sys.exit(f"{configuration.name} needs anthropic >= {'.'.join(map(str, configuration.min_sdk))}")
    pipeline = Pipeline.build()
    options = configuration.setup(pipeline)
    wrap = configuration.wrap(pipeline) if configuration.wrap is not None else None
    loop = asyncio.new_event_loop()
    results: dict[str, dict[str, list[float]]] = {}
    cpu: dict[str, dict[str, list[float]]] = {}
    for workload in args.workloads.split(","):
        events, streams = WORKLOADS[workload]
        for path in args.paths.split(","):
            provider, _api, mode = path.split("/")
            if wrap is not None and mode != "sync":
                continue
            body = (args.bodies / f"{provider}-{events}.bin").read_bytes()
            client = make_client(provider, mode == "async", body, options)
            run = stream_runner(path, client, streams, wrap)
            times, cpu_times = time_reps(run, args.reps, pipeline, loop)
            results.setdefault(workload, {})[path] = times
            cpu.setdefault(workload, {})[path] = cpu_times
    loop.close()
    print(json.dumps({"config": configuration.name, "anthropic": anthropic.__version__,
                      "python": sys.version.split()[0], "seconds": results, "cpu_seconds": cpu,
                      "scrape_ms": scrape_ms(pipeline)}))


def scrape_ms(pipeline: Pipeline, times: int = 5) -> float:
    """Median time to collect what the run recorded: the OpenTelemetry metrics (what a periodic or Prometheus
    reader does for the peers and for bedrock_otel's OTel recorder) plus bedrock_otel's own /metrics text."""
    spent = []
    for _ in range(times):
        start = time.perf_counter()
        pipeline.metrics.get_metrics_data()
        for scrape in SCRAPES:
            scrape()
        spent.append(time.perf_counter() - start)
    return sorted(spent)[times // 2] * 1e3


if __name__ == "__main__":
    main()
