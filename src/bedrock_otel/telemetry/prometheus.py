"""The Prometheus recorder: bedrock_otel's own families in a single process (`telemetry/store.py`: a scrape is
mostly string joins), prometheus_client's metrics in multiprocess mode (their values live in its files)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any, Callable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, values

from .catalog import CATALOG, Instrument, Kind
from .measurements import Measurement, record_each
from .store import NATIVE, NativeFamilies

_APPLY = {Kind.COUNTER: "inc", Kind.UP_DOWN_COUNTER: "inc", Kind.GAUGE: "set", Kind.HISTOGRAM: "observe"}


def _build(instrument: Instrument, registry: CollectorRegistry) -> Any:
    name, labels, help_text = instrument.prometheus_name, instrument.prometheus_labels, instrument.description
    if instrument.kind is Kind.COUNTER:
        return Counter(name.removesuffix("_total"), help_text, labels, registry=registry)
    if instrument.kind is Kind.HISTOGRAM:
        return Histogram(name, help_text, labels, registry=registry, buckets=instrument.buckets)
    return Gauge(name, help_text, labels, registry=registry, multiprocess_mode=instrument.multiprocess_mode)


def _observe_points(child: Any) -> Callable[[Sequence[float]], None]:
    """`observe` for a sequence of points: the bucket counts are added up first, then each touched bucket and
    the sum are incremented once (what `observe` does per point, through the same value objects, so
    multiprocess mode works alike). Falls back to `observe` per point if the child's layout is not the one
    prometheus_client has had since 0.4."""
    try:
        bounds, buckets, total = list(child._upper_bounds), child._buckets, child._sum
    except AttributeError:
        bounds = None

    def observe_each(points: Sequence[float]) -> None:
        for point in points:
            child.observe(point)

    if bounds is None:
        return observe_each

    def observe_points(points: Sequence[float]) -> None:
        counts: dict[int, int] = {}
        for point in points:
            i = bisect_left(bounds, point)
            counts[i] = counts.get(i, 0) + 1
        total.inc(sum(points))
        for i, count in counts.items():
            buckets[i].inc(count)

    return observe_points


class PrometheusRecorder:
    """Records measurements into `registry`: natively in a single process, through prometheus_client's metrics
    (and so its multiprocess files) when `PROMETHEUS_MULTIPROC_DIR` is set."""

    def __init__(self, registry: CollectorRegistry | None = None, native: bool | None = None) -> None:
        """`native`: keep the families ourselves (default: unless in multiprocess mode, where only
        prometheus_client's metrics can write its files)."""
        self.registry = REGISTRY if registry is None else registry
        self.native: NativeFamilies | None = None
        self._metrics: dict[Instrument, Any] = {}
        self._children: dict[tuple[Instrument, tuple[str, ...]], Any] = {}
        if native is None:
            native = values.ValueClass is values.MutexValue
        if native:
            self.native = NativeFamilies(CATALOG)
            self.registry.register(self.native)
            NATIVE[self.registry] = self.native
        else:
            self._metrics = {instrument: _build(instrument, self.registry) for instrument in CATALOG}

    def __len__(self) -> int:
        """Series recorded so far."""
        return len(self.native) if self.native is not None else len(self._children)

    def record_all(self, items: Iterable[Measurement], exemplar: tuple[str, str] | None = None) -> list[Instrument]:
        """Take a batch of measurements (a stream's, at its end); return the instruments of those that failed.
        Exemplars are kept natively only: prometheus_client's multiprocess files have no place for them."""
        if self.native is not None:
            return self.native.record_all(items, exemplar)
        return record_each(self._record_client, items)

    def record(self, instrument: Instrument, values: tuple[str, ...], value: float) -> None:
        if self.record_all(((instrument, values, value),)):
            raise ValueError(f"{instrument.name}: cannot record {value!r} for {values!r}")

    def _record_client(self, instrument: Instrument, values: tuple[str, ...], value: float) -> None:
        key = (instrument, values)
        apply = self._children.get(key)
        if apply is None:
            child = self._metrics[instrument].labels(*values)
            apply = _observe_points(child) if instrument.points else getattr(child, _APPLY[instrument.kind])
            self._children[key] = apply
        apply(value)

    def forget(self) -> None:
        """Drop every value (in a forked child: the parent's are the parent's to report). In multiprocess mode
        prometheus_client does it by itself: each process writes its own files."""
        if self.native is not None:
            self.native.forget()
        elif values.ValueClass is values.MutexValue:
            self._children.clear()
            for metric in self._metrics.values():
                metric.clear()

    def close(self) -> None:
        """Unregister the metrics, so that a later recorder can register the same names."""
        collectors: list[Any] = list(self._metrics.values())
        if self.native is not None:
            collectors.append(self.native)
            if NATIVE.get(self.registry) is self.native:
                del NATIVE[self.registry]
        for collector in collectors:
            try:
                self.registry.unregister(collector)
            except KeyError:
                pass
