"""The OpenTelemetry Metrics API recorder (OTLP and any other OpenTelemetry reader).

Counters, up-down counters and gauges are observable instruments reporting totals kept here: a dictionary
update per stream instead of a synchronous `add()` of several microseconds each. Histograms are recorded
synchronously with attribute dictionaries built once per label set.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from .catalog import CATALOG, Instrument, Kind


class OtelRecorder:
    def __init__(self, meter: Meter) -> None:
        self._totals: dict[Instrument, dict[tuple[str, ...], float]] = {}
        self._histograms: dict[Instrument, Any] = {}
        self._attributes: dict[tuple[Instrument, tuple[str, ...]], dict[str, str]] = {}
        for instrument in CATALOG:
            if instrument.kind is Kind.HISTOGRAM:
                self._histograms[instrument] = _histogram(meter, instrument)
                continue
            self._totals[instrument] = {}
            create = {
                Kind.COUNTER: meter.create_observable_counter,
                Kind.UP_DOWN_COUNTER: meter.create_observable_up_down_counter,
                Kind.GAUGE: meter.create_observable_gauge,
            }[instrument.kind]
            create(instrument.name, [self._observer(instrument)], unit=instrument.unit,
                   description=instrument.description)

    def attributes(self, instrument: Instrument, values: tuple[str, ...]) -> dict[str, str]:
        """Attribute dict for a label tuple; empty values (the Bedrock pair off Bedrock) are left out."""
        key = (instrument, values)
        attributes = self._attributes.get(key)
        if attributes is None:
            attributes = {k: v for k, v in zip(instrument.attributes, values) if v != ""}
            self._attributes[key] = attributes
        return attributes

    def record(self, instrument: Instrument, values: tuple[str, ...], value: float) -> None:
        histogram = self._histograms.get(instrument)
        if histogram is not None:
            histogram.record(value, self.attributes(instrument, values))
        elif instrument.kind is Kind.GAUGE:
            self._totals[instrument][values] = value
        else:
            totals = self._totals[instrument]
            totals[values] = totals.get(values, 0) + value

    def _observer(self, instrument: Instrument) -> Callable[[CallbackOptions], Iterable[Observation]]:
        totals = self._totals[instrument]

        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(value, self.attributes(instrument, values)) for values, value in list(totals.items())]

        return observe

    def forget(self) -> None:
        """Drop every total (in a forked child: the parent's are the parent's to report)."""
        for totals in self._totals.values():
            totals.clear()  # the same dicts: the instruments' callbacks hold them

    def close(self) -> None:
        """OpenTelemetry instruments cannot be unregistered; they stop changing once instrumentation stops."""


def _histogram(meter: Meter, instrument: Instrument) -> Any:
    return meter.create_histogram(instrument.name, unit=instrument.unit, description=instrument.description,
                                  explicit_bucket_boundaries_advisory=list(instrument.buckets or ()))
