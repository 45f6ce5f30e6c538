"""bedrock_otel's families handed to an OpenTelemetry MeterProvider's readers already aggregated.

The OpenTelemetry Metrics API takes a histogram one point at a time, several µs per `record()` in the SDK, and a
stream of N chunks has N-1 chunk times. The native store (`telemetry/store.py`) already keeps every family
aggregated, a stream's chunk times added into bucket counts once. Here each reader of the provider gets those
families at its own collection, as the SDK's public data classes (`opentelemetry.sdk.metrics.export`), in a
scope of their own next to what the SDK collected: the same resource, exporter, interval, outage handling and
exit flush as every other metric of the provider, and no OpenTelemetry work per measurement.

A reader is fed through its collect callback (`MetricReader._set_collect_callback`, there since
opentelemetry-sdk 1.12). Where the result could differ from what the SDK's own instruments give, the provider is
not fed and the per-point recorder (`telemetry/otel.py`) is used instead, so the numbers stay exact:
`unfeedable()` says why (a reader that wants delta temporality or another aggregation, a view that may select
our instruments, a provider that is not the SDK's).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Any, Callable

from .catalog import CATALOG, Instrument, Kind
from .measurements import Measurement
from .otel import Attributes
from .store import NativeFamilies

log = logging.getLogger("bedrock_otel")

# the SDK instrument classes whose reader preferences our families take (by name: `_Histogram` in the SDK)
_AS = {Kind.COUNTER: "ObservableCounter", Kind.UP_DOWN_COUNTER: "ObservableUpDownCounter",
       Kind.GAUGE: "ObservableGauge", Kind.HISTOGRAM: "Histogram"}


def unfeedable(provider: Any, scope: str) -> str | None:
    """Why `provider` cannot be fed pre-aggregated families exactly as its own instruments would report them
    (None: it can)."""
    config = getattr(provider, "_sdk_config", None)
    readers = _readers(provider)
    if config is None or readers is None:
        return "not an OpenTelemetry SDK MeterProvider"
    from opentelemetry.sdk.metrics.export import AggregationTemporality
    from opentelemetry.sdk.metrics.view import DefaultAggregation

    for reader in readers:
        if not callable(getattr(reader, "_set_collect_callback", None)) or not hasattr(reader, "_collect"):
            return f"{type(reader).__name__} has no collect callback"
        temporality = _by_name(getattr(reader, "_instrument_class_temporality", {}))
        aggregation = _by_name(getattr(reader, "_instrument_class_aggregation", {}))
        for kind, name in _AS.items():
            if kind is not Kind.GAUGE and temporality.get(name) is not AggregationTemporality.CUMULATIVE:
                return f"{type(reader).__name__} wants {name} in delta temporality"
            if not isinstance(aggregation.get(name, DefaultAggregation()), DefaultAggregation):
                return f"{type(reader).__name__} wants another aggregation for {name}"
    for view in getattr(config, "views", ()):
        if _may_select(view, scope):
            return f"a view ({getattr(view, '_instrument_name', None) or 'any instrument'}) may select them"
    return None


def _readers(provider: Any) -> Any:
    """The provider's metric readers: its own attribute from opentelemetry-sdk 1.40 or so, its configuration's
    before."""
    readers = getattr(provider, "_metric_readers", None)
    return readers if readers is not None else getattr(getattr(provider, "_sdk_config", None), "metric_readers", None)


def _by_name(per_class: dict[Any, Any]) -> dict[str, Any]:
    return {cls.__name__.lstrip("_"): value for cls, value in per_class.items()}


def _may_select(view: Any, scope: str) -> bool:
    """Whether a view could match one of our instruments (conservatively: criteria we do not check match)."""
    name, meter = getattr(view, "_instrument_name", None), getattr(view, "_meter_name", None)
    if meter is not None and meter != scope:
        return False
    return name is None or any(fnmatchcase(i.name, name.lower()) for i in CATALOG)


class Feed:
    """Attached to every reader of one provider: appends our families, read from `families`, to each collection.
    Never raises into the collection: a failure leaves the SDK's own data as it was and is logged at debug."""

    def __init__(self, provider: Any, families: NativeFamilies, scope: Any) -> None:
        self.families = families
        self._provider = provider
        self._scope = scope
        self.attributes = Attributes()
        self._originals: list[tuple[Any, Callable[..., Any]]] = []
        # the store's exemplars are sampled spans' (trace-based); a provider told to keep none gets none
        from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter

        exemplar_filter = getattr(getattr(provider, "_sdk_config", None), "exemplar_filter", None)
        self.exemplars = not isinstance(exemplar_filter, AlwaysOffExemplarFilter)

    def attach(self) -> None:
        for reader in _readers(self._provider):
            original = reader._collect
            self._originals.append((reader, original))
            reader._set_collect_callback(self._collector(original))

    def close(self) -> None:
        """Give every reader back its own callback."""
        while self._originals:
            reader, original = self._originals.pop()
            reader._set_collect_callback(original)

    def _collector(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def collect(reader: Any, *args: Any, **kwargs: Any) -> Any:
            data = original(reader, *args, **kwargs)
            try:
                return self._with_ours(data)
            except Exception:
                log.debug("bedrock_otel: adding our families to a metric collection failed", exc_info=True)
                return data

        return collect

    def _with_ours(self, data: Any) -> Any:
        from opentelemetry.sdk.metrics.export import MetricsData, ResourceMetrics, ScopeMetrics

        metrics = self.metrics(time.time_ns())
        if not metrics:
            return data
        ours = ScopeMetrics(scope=self._scope, metrics=metrics, schema_url=self._scope.schema_url or "")
        if data is None or not data.resource_metrics:
            resource = self._provider._sdk_config.resource
            return MetricsData(resource_metrics=[ResourceMetrics(resource=resource, scope_metrics=[ours],
                                                                 schema_url=resource.schema_url)])
        first, *rest = data.resource_metrics
        merged = ResourceMetrics(resource=first.resource, scope_metrics=[*first.scope_metrics, ours],
                                 schema_url=first.schema_url)
        return MetricsData(resource_metrics=[merged, *rest])

    def metrics(self, now_ns: int) -> list[Any]:
        """Every family with series, as the SDK's cumulative data: what its observable instruments (totals) and
        histograms (min and max included) would report for the same measurements."""
        from opentelemetry.sdk.metrics.export import (
            AggregationTemporality,
            Gauge,
            Histogram,
            HistogramDataPoint,
            Metric,
            NumberDataPoint,
            Sum,
        )

        cumulative = AggregationTemporality.CUMULATIVE
        exemplars = _exemplars if self.exemplars else _no_exemplars
        out = []
        for instrument, family in self.families.families.items():
            series = list(family.series.items())  # a copy: a stream may add a series meanwhile
            if not series:
                continue
            kind = instrument.kind
            if kind is Kind.HISTOGRAM:
                bounds = tuple(family.bounds)
                points: list[Any] = []
                for values, s in series:
                    counts = tuple(s.buckets)  # type: ignore[arg-type]
                    points.append(HistogramDataPoint(
                        attributes=self.attributes(instrument, values), start_time_unix_nano=int(s.created * 1e9),
                        time_unix_nano=now_ns, count=sum(counts), sum=s.sum, bucket_counts=counts,
                        explicit_bounds=bounds, min=s.min, max=s.max, exemplars=exemplars(s.exemplars)))
                data: Any = Histogram(data_points=points, aggregation_temporality=cumulative)
            else:
                numbers = [NumberDataPoint(attributes=self.attributes(instrument, values),
                                           start_time_unix_nano=None if kind is Kind.GAUGE else int(s.created * 1e9),
                                           time_unix_nano=now_ns, value=s.value, exemplars=exemplars((s.exemplar,)))
                           for values, s in series]
                data = Gauge(data_points=numbers) if kind is Kind.GAUGE else \
                    Sum(data_points=numbers, aggregation_temporality=cumulative,
                        is_monotonic=kind is Kind.COUNTER)
            out.append(Metric(name=instrument.name, description=instrument.description, unit=instrument.unit,
                              data=data))
        return out


def _exemplars(kept: Any) -> list[Any]:
    """The store's exemplars of a series (a histogram: per bucket) as the SDK's, ids as the integers it holds."""
    from opentelemetry.sdk.metrics import Exemplar

    return [Exemplar({}, value, int(when * 1e9), int(span_id, 16), int(trace_id, 16))
            for (trace_id, span_id), value, when, _text in filter(None, kept or ())]


def _no_exemplars(_kept: Any) -> list[Any]:
    return []


class LateFeed:
    """The recorder while the global MeterProvider is still the API's placeholder (the application sets its own
    later, or never): nothing is recorded through it, so nothing piles up for a provider that does not exist. At
    each stream end it checks (one call) whether a provider has been set since; from then on `connect(provider)`
    feeds that one, or returns the per-point recorder to hand over to."""

    def __init__(self, placeholder: Any, own: FeedRecorder | None, connect: Callable[[Any], Any]) -> None:
        from opentelemetry import metrics

        self._current = metrics.get_meter_provider
        self._placeholder = placeholder
        self._own = own  # the store to keep when there is no Prometheus one to share (None: there is)
        self._connect = [connect]  # popped (atomically) by the one stream end that connects
        self._delegate: Any = None

    def record_all(self, items: Iterable[Measurement], exemplar: tuple[str, str] | None = None) -> list[Instrument]:
        if self._connect and self._current() is not self._placeholder:
            try:
                connect = self._connect.pop()
            except IndexError:  # another thread's stream end is connecting it
                pass
            else:
                self._delegate = connect(self._current())
        if self._delegate is not None:
            return self._delegate.record_all(items, exemplar)  # type: ignore[no-any-return]
        return self._own.record_all(items, exemplar) if self._own is not None else []

    def forget(self) -> None:
        for recorder in (self._own, self._delegate):
            if recorder is not None:
                recorder.forget()

    def close(self) -> None:
        """Nothing to release: a provider it fed is released by its Feed's close."""


class FeedRecorder:
    """The recorder of a fed provider with a store of its own (no native Prometheus store to share)."""

    def __init__(self) -> None:
        self.families = NativeFamilies(CATALOG)

    def record_all(self, items: Iterable[Measurement], exemplar: tuple[str, str] | None = None) -> list[Instrument]:
        return self.families.record_all(items, exemplar)

    def forget(self) -> None:
        self.families.forget()

    def close(self) -> None:
        """The store stays: a later instrument() of the same provider continues its cumulative totals."""
