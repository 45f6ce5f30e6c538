"""The native prometheus_client recorder: fast cached children, and works in multiprocess mode."""

from __future__ import annotations

from typing import Any

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
            apply = self._children[key] = getattr(child, _APPLY[instrument.kind])
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
