"""The native prometheus_client recorder: fast cached children, and works in multiprocess mode."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any, Callable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, values

from .catalog import CATALOG, Instrument, Kind

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
    """Records measurements into prometheus_client metrics registered in `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = REGISTRY if registry is None else registry
        self._metrics = {instrument: _build(instrument, self.registry) for instrument in CATALOG}
        self._children: dict[tuple[Instrument, tuple[str, ...]], Any] = {}

    def record(self, instrument: Instrument, values: tuple[str, ...], value: float) -> None:
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
        if values.ValueClass is not values.MutexValue:
            return
        self._children.clear()
        for metric in self._metrics.values():
            metric.clear()

    def close(self) -> None:
        """Unregister the metrics, so that a later recorder can register the same names."""
        for metric in self._metrics.values():
            try:
                self.registry.unregister(metric)
            except KeyError:
                pass
