"""bedrock_otel's own Prometheus families, for a single process: values in plain Python storage, the label text
of every series rendered once, when the series is first recorded.

prometheus_client spends ~10 µs per exposed sample (a `Sample` tuple, a labels dict, sorting and escaping every
label on every scrape). Here a scrape of our families is string joins over text made once per series
(`render`), while `collect()` still gives prometheus_client's own objects to anything else that reads the
registry (`get_sample_value`, another exporter, a restricted `name[]` scrape).

OpenTelemetry readers are fed from the same store (`telemetry/otel_feed.py`), so a histogram keeps its min and
max as well.

Writes come in batches (one per stream end) under one lock; a scrape reads without it. Every read of a value or
a histogram's bucket list (copied in one C call) is atomic, and a histogram's count is the sum of the buckets it
renders, so a scrape never shows a histogram that contradicts itself. Not for multiprocess mode: there, values
must live in prometheus_client's files (`telemetry/prometheus.py` decides).
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import metrics as _client_metrics
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar as ClientExemplar
from prometheus_client.utils import floatToGoString

from .catalog import Instrument, Kind

# prometheus_client's own types for the kinds (an up-down counter is a gauge there)
_TYPES = {Kind.COUNTER: "counter", Kind.UP_DOWN_COUNTER: "gauge", Kind.GAUGE: "gauge", Kind.HISTOGRAM: "histogram"}
_SMALL = tuple(f"{n}.0" for n in range(4096))  # the text of most counts and bucket counts


def number(value: float) -> str:
    """A sample value as prometheus_client writes it (Go's float formatting), fast for small integers."""
    if value.__class__ is int:
        if 0 <= value < 4096:  # type: ignore[operator]
            return _SMALL[value]  # type: ignore[index]
    elif value.__class__ is float and 0 <= value < 4096 and value.is_integer():  # type: ignore[attr-defined]
        return _SMALL[int(value)]
    return floatToGoString(value)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _use_created() -> bool:
    """prometheus_client's switch for `_created` samples (PROMETHEUS_DISABLE_CREATED_SERIES, or its function)."""
    return getattr(_client_metrics, "_use_created", True)


# an exemplar as kept: ((trace id, span id) in hex, the measured value, when (seconds since the epoch), and its
# OpenMetrics text (` # {trace_id="…",span_id="…"} value timestamp`), made when it is kept: a scrape only joins it
Kept = tuple[tuple[str, str], float, float, str]


def _exemplar_value(value: float) -> str:
    """An exemplar's value as text: a count through `number`, a finite float by repr (a quarter of
    floatToGoString's cost; OpenMetrics reads either)."""
    if value.__class__ is float and math.isfinite(value):
        return repr(value)
    return number(value)


def _client_exemplar(kept: Kept | None) -> ClientExemplar | None:
    if kept is None:
        return None
    (trace_id, span_id), value, when, _text = kept
    return ClientExemplar({"trace_id": trace_id, "span_id": span_id}, value, round(when, 3))


class _Series:
    """One label combination: its value(s), when it was created, and its label text (`a="x",b="y"`)."""

    __slots__ = ("buckets", "created", "created_text", "exemplar", "exemplars", "labels", "max", "min", "rendered",
                 "rendered_exemplars", "sum", "value", "version")

    def __init__(self, labels: str, bucket_count: int) -> None:
        self.labels = labels
        self.created = time.time()
        self.created_text = floatToGoString(self.created)
        self.value: float = 0
        self.sum: float = 0.0
        self.min, self.max = math.inf, -math.inf  # a histogram's, for OpenTelemetry (`telemetry/otel_feed.py`)
        self.buckets = [0] * bucket_count if bucket_count else None
        self.exemplar: Kept | None = None  # a counter's latest
        self.exemplars: list[Kept | None] | None = None  # a histogram's latest per bucket, once there is one
        # a histogram's bucket, count and sum lines as of `version` (bumped by every write): a series that did
        # not change since the last scrape is not rendered again; OpenMetrics' with exemplars apart
        self.version = 0
        self.rendered: tuple[int, str] | None = None
        self.rendered_exemplars: tuple[int, str] | None = None


class Family:
    """The series of one instrument."""

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.kind = instrument.kind
        self.type = _TYPES[instrument.kind]
        name = instrument.prometheus_name
        self.name = name.removesuffix("_total") if instrument.kind is Kind.COUNTER else name
        self.label_names = instrument.prometheus_labels
        self.bounds = list(instrument.buckets or ()) if instrument.kind is Kind.HISTOGRAM else []
        self.le = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        self.series: dict[tuple[str, ...], _Series] = {}
        # HELP text, escaped once: the text format escapes backslash and newline, OpenMetrics the quote too
        help_text = instrument.description.replace("\\", r"\\").replace("\n", r"\n")
        self.help = {False: help_text, True: help_text.replace('"', r"\"")}

    def new_series(self, values: tuple[str, ...]) -> _Series:
        """Add the series of a label combination not seen before (its label text made here, once)."""
        if len(values) != len(self.label_names):
            raise ValueError(f"{self.name}: {len(values)} label values for {len(self.label_names)} labels")
        text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(zip(self.label_names, values)))
        series = self.series[values] = _Series(text, len(self.le) if self.bounds else 0)
        return series

    # -- the exposition formats --------------------------------------------------------------------------

    def render(self, out: list[str], openmetrics: bool, created: bool) -> None:
        """Append this family's lines: the Prometheus text format 0.0.4, or OpenMetrics 1.0 (a family without
        series still has its HELP and TYPE, as prometheus_client writes it)."""
        series = list(self.series.values())  # a copy: a stream may add a series while we render
        help_text = self.help[openmetrics]
        name, kind = self.name, self.kind
        if kind is Kind.HISTOGRAM:
            self._render_histograms(out, series, help_text, openmetrics, created)
            return
        family = name if openmetrics or kind is not Kind.COUNTER else name + "_total"
        out.append(f"# HELP {family} {help_text}\n# TYPE {family} {self.type}\n")
        sample = name + "_total{" if kind is Kind.COUNTER else name + "{"
        created = created and kind is Kind.COUNTER
        if openmetrics:
            for s in series:
                kept = s.exemplar
                out.append(f"{sample}{s.labels}}} {number(s.value)}{kept[3] if kept else ''}\n")
                if created:
                    out.append(f"{name}_created{{{s.labels}}} {s.created_text}\n")
            return
        out.extend([f"{sample}{s.labels}}} {number(s.value)}\n" for s in series])
        if created and series:
            self._render_created(out, series, help_text)

    def _render_histograms(self, out: list[str], series: Sequence[_Series], help_text: str, openmetrics: bool,
                           created: bool) -> None:
        name, le, small = self.name, self.le, _SMALL
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} histogram\n")
        bucket = name + "_bucket{"
        for s in series:
            labels, version = s.labels, s.version  # the version first: see _Series
            exemplars = s.exemplars[:] if openmetrics and s.exemplars is not None else None
            rendered = s.rendered if exemplars is None else s.rendered_exemplars
            if rendered is None or rendered[0] != version:
                counts, total = s.buckets[:], s.sum  # type: ignore[index]
                head = f"{bucket}{labels},le=\"" if labels else f'{bucket}le="'
                cumulative = list(accumulate(counts))
                if exemplars is None:
                    text = "".join([f'{head}{bound}"}} {small[c] if c < 4096 else number(c)}\n'
                                    for bound, c in zip(le, cumulative)])
                else:
                    text = "".join([f'{head}{bound}"}} {small[c] if c < 4096 else number(c)}{kept[3] if kept else ""}\n'
                                    for bound, c, kept in zip(le, cumulative, exemplars)])
                text += f"{name}_count{{{labels}}} {number(cumulative[-1])}\n{name}_sum{{{labels}}} {number(total)}\n"
                rendered = (version, text)
                if exemplars is None:
                    s.rendered = rendered
                else:
                    s.rendered_exemplars = rendered
            out.append(rendered[1])
            if openmetrics and created:
                out.append(f"{name}_created{{{labels}}} {s.created_text}\n")
        if created and series and not openmetrics:
            self._render_created(out, series, help_text)

    def _render_created(self, out: list[str], series: Sequence[_Series], help_text: str) -> None:
        """The text format's separate gauge family of `_created` timestamps, as prometheus_client writes it."""
        family = self.name + "_created"
        out.append(f"# HELP {family} {help_text}\n# TYPE {family} gauge\n")
        out.extend([f"{family}{{{s.labels}}} {s.created_text}\n" for s in series])

    # -- prometheus_client's objects, for every other reader of the registry ------------------------------

    def collect(self, created: bool) -> Metric:
        metric = Metric(self.name, self.instrument.description, self.type)
        for values, s in list(self.series.items()):
            labels = dict(zip(self.label_names, values))
            if self.kind is Kind.HISTOGRAM:
                cumulative = list(accumulate(s.buckets[:]))  # type: ignore[index]
                exemplars = s.exemplars[:] if s.exemplars is not None else [None] * len(cumulative)
                for bound, count, kept in zip(self.le, cumulative, exemplars):
                    metric.add_sample(self.name + "_bucket", {**labels, "le": bound}, float(count),
                                      exemplar=_client_exemplar(kept))
                metric.add_sample(self.name + "_count", labels, float(cumulative[-1]))
                metric.add_sample(self.name + "_sum", labels, float(s.sum))
            else:
                metric.add_sample(self.name + "_total" if self.kind is Kind.COUNTER else self.name, labels,
                                  float(s.value), exemplar=_client_exemplar(s.exemplar))
            if created and self.kind in (Kind.COUNTER, Kind.HISTOGRAM):
                metric.add_sample(self.name + "_created", labels, s.created)
        return metric


class NativeFamilies:
    """A prometheus_client collector holding bedrock_otel's families (register it in a registry)."""

    def __init__(self, instruments: Iterable[Instrument]) -> None:
        self.families = {instrument: Family(instrument) for instrument in instruments}
        self._lock = threading.Lock()
        self._rendering = threading.local()  # set while our own exposition renders this collector natively

    def __len__(self) -> int:
        """Series held, over every family."""
        return sum(len(family.series) for family in self.families.values())

    def record_all(self, items: Iterable[tuple[Instrument, tuple[str, ...], Any]],
                   exemplar: tuple[str, str] | None = None) -> list[Instrument]:
        """Apply (instrument, label values, value) measurements, all under one lock; return the instruments of
        those that could not be taken (a wrong label count, a value that is not a number). `exemplar`: the trace
        and span id (hex) of the sampled span the measurements belong to, kept where the catalogue asks."""
        families = self.families
        failed: list[Instrument] = []
        if exemplar is not None:  # the text every exemplar of this batch shares, made once
            now = time.time()
            head, tail = f' # {{trace_id="{exemplar[0]}",span_id="{exemplar[1]}"}} ', f" {now:.3f}"
        with self._lock:
            for instrument, values, value in items:
                try:
                    family = families[instrument]
                    series = family.series.get(values)
                    if series is None:
                        series = family.new_series(values)
                    kind = family.kind
                    keep = exemplar is not None and instrument.exemplars and instrument.keeps_exemplar(values)
                    if kind is Kind.COUNTER:
                        if value < 0:
                            raise ValueError(f"{family.name}: a counter cannot go down ({value})")
                        series.value += value
                        if keep:
                            series.exemplar = (exemplar, value, now, head + _exemplar_value(value) + tail)
                    elif kind is Kind.UP_DOWN_COUNTER:
                        series.value += value
                    elif kind is Kind.GAUGE:
                        series.value = value
                    else:
                        try:
                            if instrument.points:
                                _observe_points(family.bounds, series, value)
                            else:
                                index = bisect_left(family.bounds, value)
                                series.buckets[index] += 1  # type: ignore[index]
                                series.sum += value
                                if keep:
                                    if series.exemplars is None:
                                        series.exemplars = [None] * len(series.buckets)  # type: ignore[arg-type]
                                    series.exemplars[index] = (exemplar, value, now,
                                                                 head + _exemplar_value(value) + tail)
                                if value < series.min:
                                    series.min = value
                                if value > series.max:
                                    series.max = value
                        finally:  # after the change (a scrape reads the version first), even a partial one
                            series.version += 1
                except Exception:
                    failed.append(instrument)
        return failed

    def forget(self) -> None:
        """In a forked child: drop every series, with a new lock (the parent's may have been held by a thread
        that does not exist here, and would never be released)."""
        self._lock = threading.Lock()
        for family in self.families.values():
            family.series.clear()  # new series start their versions again, their rendered text with them

    def render(self, openmetrics: bool = False) -> str:
        """Our families in the text format (or OpenMetrics, without its `# EOF`)."""
        out: list[str] = []
        created = _use_created()
        for family in self.families.values():
            family.render(out, openmetrics, created)
        return "".join(out)

    # -- the Collector protocol ------------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        if getattr(self._rendering, "active", False):
            return  # our exposition renders these itself, after the rest of the registry
        created = _use_created()
        for family in self.families.values():
            yield family.collect(created)

    def describe(self) -> list[Metric]:
        """The family names, so that the registry refuses a second collector of the same names."""
        return [Metric(family.name, family.instrument.description, family.type) for family in self.families.values()]

    def rendering_natively(self, active: bool) -> None:
        self._rendering.active = active


def _observe_points(bounds: list[float], series: _Series, points: Sequence[float]) -> None:
    buckets = series.buckets
    for point in points:
        buckets[bisect_left(bounds, point)] += 1  # type: ignore[index]
    series.sum += sum(points)
    if points:
        series.min, series.max = min(series.min, min(points)), max(series.max, max(points))


# registry -> the families a recorder keeps natively in it, for the exposition (`exporters/exposition.py`)
NATIVE: weakref.WeakKeyDictionary[CollectorRegistry, NativeFamilies] = weakref.WeakKeyDictionary()
