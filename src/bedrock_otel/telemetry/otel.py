"""The OpenTelemetry Metrics API recorder (OTLP and any other OpenTelemetry reader).

Counters, up-down counters and gauges are observable instruments reporting totals kept here: a dictionary
update per stream instead of a synchronous `add()` of several microseconds each. Histogram points are queued
(an append) and recorded by the first instrument callback of the next collection, in the reader's thread, so
the ~8 µs the SDK spends per `record()` stays off the application's path. The queue is bounded: past
`PENDING_LIMIT` points (a provider whose readers never collect) points are recorded at once instead. Exemplars:
the series the catalogue marks are recorded, and observed, in a context holding the stream's sampled span, so the
SDK's own exemplar filter and reservoirs take them.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Callable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from .. import semconv as sc
from .catalog import CATALOG, TELEMETRY_DROPPED, Instrument, Kind
from .measurements import Measurement, record_each

log = logging.getLogger("bedrock_otel")
PENDING_LIMIT = 8192  # histogram points held between two collections (~90 bytes each)


class OtelRecorder:
    def __init__(self, meter: Meter) -> None:
        self._totals: dict[Instrument, dict[tuple[str, ...], float]] = {}
        self._histograms: dict[Instrument, Any] = {}
        self._gauges = frozenset(i for i in CATALOG if i.kind is Kind.GAUGE)
        self.attributes = Attributes()
        # (histogram, value, cached attributes, context): the label tuple is let go at once. Holding it instead
        # made the garbage collector's work per stream grow by ~35 µs (callgrind) with a queue of a thousand points
        self._pending: deque[tuple[Any, float, dict[str, str], Any]] = deque()  # append/popleft: thread-safe
        # a series' latest sampled span, as a context, for the SDK's exemplar filter (`record_all`)
        self._contexts: dict[Instrument, dict[tuple[str, ...], Any]] = {}
        for instrument in CATALOG:
            if instrument.kind is Kind.HISTOGRAM:
                histogram = _histogram(meter, instrument)
                self._histograms[instrument] = _Points(histogram) if instrument.points else histogram
                continue
            self._totals[instrument] = {}
            self._contexts[instrument] = {}
            create = {
                Kind.COUNTER: meter.create_observable_counter,
                Kind.UP_DOWN_COUNTER: meter.create_observable_up_down_counter,
                Kind.GAUGE: meter.create_observable_gauge,
            }[instrument.kind]
            create(instrument.name, [self._observer(instrument)], unit=instrument.unit,
                   description=instrument.description)

    def record_all(self, items: Iterable[Measurement], exemplar: tuple[str, str] | None = None) -> list[Instrument]:
        """Take a batch of measurements; return the instruments of those that failed. `exemplar`: the sampled
        span's ids; the series the catalogue marks are recorded, or observed, in a context holding that span, so
        the SDK's exemplar filter attaches it (the points are recorded and the totals observed in the reader's
        thread, outside the span)."""
        if exemplar is None:
            return record_each(self.record, items)
        context = _context_of(exemplar)

        def record(instrument: Instrument, values: tuple[str, ...], value: Any) -> None:
            keep = instrument.exemplars and instrument.keeps_exemplar(values)
            self.record(instrument, values, value, context if keep else None)

        return record_each(record, items)

    def record(self, instrument: Instrument, values: tuple[str, ...], value: float, context: Any = None) -> None:
        totals = self._totals.get(instrument)
        if totals is None:  # a histogram
            histogram, attributes = self._histograms[instrument], self.attributes(instrument, values)
            if len(self._pending) < PENDING_LIMIT:
                self._pending.append((histogram, value, attributes, context))
            else:
                histogram.record(value, attributes, context)
            return
        if instrument in self._gauges:
            totals[values] = value
        else:
            totals[values] = totals.get(values, 0) + value
        if context is not None:
            self._contexts[instrument][values] = context

    def _observer(self, instrument: Instrument) -> Callable[[CallbackOptions], Iterable[Observation]]:
        totals, contexts = self._totals[instrument], self._contexts[instrument]

        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            self.flush()  # callbacks run before the SDK reads its histograms: queued points are in this collection
            return [Observation(value, self.attributes(instrument, values), contexts.get(values))
                    for values, value in list(totals.items())]

        return observe

    def flush(self) -> None:
        """Record the queued histogram points (each taken once, whichever thread flushes). Never raises: it
        runs inside the SDK's collection, where an exception would cost the instrument's observations; a
        point the SDK refuses is counted as dropped (record_failed)."""
        pending = self._pending
        while pending:
            try:
                histogram, value, attributes, context = pending.popleft()
            except IndexError:
                return
            try:
                histogram.record(value, attributes, context)
            except Exception:
                log.debug("bedrock_otel: recording a histogram point failed", exc_info=True)
                self.record(TELEMETRY_DROPPED, (sc.DROPPED_RECORD_FAILED,), 1)

    def forget(self) -> None:
        """Drop every total (in a forked child: the parent's are the parent's to report)."""
        self._pending.clear()
        for totals in (*self._totals.values(), *self._contexts.values()):
            totals.clear()  # the same dicts: the instruments' callbacks hold them

    def close(self) -> None:
        """OpenTelemetry instruments cannot be unregistered; they stop changing once instrumentation stops."""


class Attributes(dict[tuple[Instrument, tuple[str, ...]], dict[str, str]]):
    """The attribute dict of each (instrument, label values), made once; empty values (the Bedrock pair off
    Bedrock) are left out."""

    def __call__(self, instrument: Instrument, values: tuple[str, ...]) -> dict[str, str]:
        attributes = self.get((instrument, values))
        if attributes is None:
            attributes = self[instrument, values] = {k: v for k, v in zip(instrument.attributes, values) if v != ""}
        return attributes


class _Points:
    """A histogram fed a sequence of points per measurement (one queue entry per stream, however long)."""

    __slots__ = ("histogram",)

    def __init__(self, histogram: Any) -> None:
        self.histogram = histogram

    def record(self, points: Sequence[float], attributes: dict[str, str], context: Any = None) -> None:
        record = self.histogram.record
        for point in points:
            record(point, attributes, context)


def _context_of(exemplar: tuple[str, str]) -> Any:
    """A context whose current span is the sampled span of these ids (what the SDK's exemplar filter reads)."""
    from opentelemetry import trace

    span = trace.NonRecordingSpan(trace.SpanContext(int(exemplar[0], 16), int(exemplar[1], 16), is_remote=False,
                                                    trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)))
    return trace.set_span_in_context(span)


def _histogram(meter: Meter, instrument: Instrument) -> Any:
    return meter.create_histogram(instrument.name, unit=instrument.unit, description=instrument.description,
                                  explicit_bucket_boundaries_advisory=list(instrument.buckets or ()))
