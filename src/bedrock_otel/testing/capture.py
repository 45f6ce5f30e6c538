"""Instrument with in-memory telemetry and read it back: for tests of bedrock_otel and of your own code."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry


class CapturedTelemetry:
    """`bedrock_otel.instrument()` into a private Prometheus registry, in-memory spans and OTel metrics."""

    def __init__(self, sampler: Any = None, **settings: Any) -> None:
        """`sampler`: the tracer provider's (default: the SDK's, which samples every root span)."""
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.registry = CollectorRegistry()
        self.span_exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.span_exporter))
        self.metric_reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metric_reader])
        self.settings = settings

    def __enter__(self) -> CapturedTelemetry:
        import bedrock_otel

        bedrock_otel.instrument(registry=self.registry, tracer_provider=self.tracer_provider,
                                meter_provider=self.meter_provider, **self.settings)
        return self

    def __exit__(self, *exc: object) -> None:
        import bedrock_otel

        bedrock_otel.uninstrument()

    # -- Prometheus ---------------------------------------------------------------------------------------

    def value(self, sample: str, **labels: str) -> float:
        """Sum of the Prometheus samples named `sample` whose labels include `labels`."""
        total = 0.0
        for family in self.registry.collect():
            for s in family.samples:
                if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
        return total

    def samples(self, sample: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Every sample named `sample`, keyed by its sorted label pairs."""
        return {tuple(sorted(s.labels.items())): s.value
                for family in self.registry.collect() for s in family.samples if s.name == sample}

    def exposition(self, accept: str | None = None) -> str:
        """What the /metrics endpoint serves for this registry (`accept`: the scraper's Accept header)."""
        from ..exporters.exposition import generate

        return generate(self.registry, accept)[0].decode()

    # -- OpenTelemetry --------------------------------------------------------------------------------------

    def spans(self, name_prefix: str = "chat") -> list[Any]:
        return [s for s in self.span_exporter.get_finished_spans() if s.name.startswith(name_prefix)]

    def otel_points(self, name: str) -> list[Any]:
        data = self.metric_reader.get_metrics_data()
        points: list[Any] = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points
