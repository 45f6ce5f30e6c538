"""The demo's summary: what bedrock_otel recorded, read back from Prometheus metric families (the registry
in-process, or a scrape of /metrics, which must give the same summary)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .. import semconv as sc
from ..telemetry import catalog as c
from ..telemetry.catalog import prometheus_label

PLATFORM = prometheus_label(sc.PLATFORM)
API = prometheus_label(sc.STREAM_API)
TOTAL = "total"
# boto3's APIs get a column each; the Anthropic SDK's Messages API a column per platform (Bedrock and Mantle are
# one provider)
BOTO3_COLUMNS = {sc.API_INVOKE: "boto3 invoke", sc.API_CONVERSE: "boto3 converse"}
# section title -> (instrument, the labels that name a row, the sample's suffix)
SECTIONS: dict[str, tuple[c.Instrument, tuple[str, ...], str]] = {
    "streams by outcome": (c.STREAMS, (sc.OUTCOME,), ""),
    "SSE events by type": (c.STREAM_EVENTS, (sc.EVENT_TYPE,), ""),
    "error frames by error.type (source)": (c.ERROR_FRAMES, (sc.ERROR_TYPE, sc.ERROR_SOURCE), ""),
    "malformed events by type (reason)": (c.MALFORMED_EVENTS, (sc.EVENT_TYPE, sc.MALFORMED_REASON), ""),
    "rate-limit hits by source": (c.RATE_LIMIT_HITS, (sc.RATE_LIMIT_SOURCE,), ""),
    "HTTP responses by status": (c.HTTP_RESPONSES, (sc.HTTP_STATUS,), ""),
    "in-band retries by error.type (result)": (c.STREAM_RETRIES, (sc.ERROR_TYPE, sc.RETRY_RESULT), ""),
    "streams recovered by retry, by model": (c.STREAMS_RECOVERED, (sc.REQUEST_MODEL,), ""),
    "pressure: attempts that waited, by model": (c.PRESSURE_WAIT, (sc.REQUEST_MODEL,), "_count"),
    "pressure: attempts refused, by reason": (c.PRESSURE_REFUSED, (sc.PRESSURE_REASON,), ""),
}
TTFC = "time to first chunk (s)"
QUANTILES = (("p50", 0.5), ("p95", 0.95))

Table = dict[str, dict[str, float]]  # row -> column (platform, or boto3 API) -> value


def column(labels: dict[str, str]) -> str:
    """The summary column of a series: its platform for the Messages API, else boto3's API."""
    return BOTO3_COLUMNS.get(labels.get(API, ""), labels[PLATFORM])


def _row(labels: dict[str, str], names: tuple[str, ...]) -> str:
    first, *rest = (labels.get(prometheus_label(n), "") for n in names)
    return first + "".join(f" ({r})" for r in rest)


def summarize(families: Iterable[Any]) -> dict[str, Any]:
    """{section: {row: {column: value}}} for the counters, {column: {p50, p95}} for time to first chunk."""
    by_name: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in families:
        for sample in family.samples:
            by_name.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    summary: dict[str, Any] = {}
    for title, (instrument, names, suffix) in SECTIONS.items():
        table: Table = {}
        for labels, value in by_name.get(instrument.prometheus_name + suffix, ()):
            if value:
                cells, key = table.setdefault(_row(labels, names), {}), column(labels)
                cells[key] = cells.get(key, 0) + value
        summary[title] = {row: table[row] for row in sorted(table)}
    buckets: dict[str, dict[float, float]] = {}
    for labels, value in by_name.get(c.TIME_TO_FIRST_CHUNK.prometheus_name + "_bucket", ()):
        for provider in (column(labels), TOTAL):
            le = float(labels["le"])
            buckets.setdefault(provider, {})[le] = buckets.setdefault(provider, {}).get(le, 0) + value
    summary[TTFC] = {provider: {name: histogram_quantile(q, sorted(b.items())) for name, q in QUANTILES}
                     for provider, b in sorted(buckets.items())}
    return summary


def worst_error(families: Iterable[Any]) -> dict[str, Any] | None:
    """The in-band error type with the most error frames, with the trace and span id of the latest stream that had
    it (its series' exemplars, from an OpenMetrics exposition); None without error frames."""
    counts: dict[tuple[str, str], float] = {}
    latest: dict[tuple[str, str], Any] = {}
    names = (prometheus_label(sc.ERROR_TYPE), prometheus_label(sc.ERROR_SOURCE))
    for family in families:
        for sample in family.samples:
            if sample.name != c.ERROR_FRAMES.prometheus_name or not sample.value:
                continue
            key = (sample.labels[names[0]], sample.labels[names[1]])
            counts[key] = counts.get(key, 0) + sample.value
            exemplar = sample.exemplar
            if exemplar is not None and (key not in latest or exemplar.timestamp > latest[key].timestamp):
                latest[key] = exemplar
    if not counts:
        return None
    key = max(counts, key=lambda k: (counts[k], k))
    exemplar = latest.get(key)
    return {"error_type": key[0], "source": key[1], "frames": counts[key],
            "trace_id": exemplar.labels["trace_id"] if exemplar else None,
            "span_id": exemplar.labels["span_id"] if exemplar else None}


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over cumulative (upper bound, count) pairs: linear within a bucket."""
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for upper_bound, count in buckets:
        if count >= rank:
            if math.isinf(upper_bound):
                return lower_bound
            if count == lower_count:
                return upper_bound
            return lower_bound + (upper_bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = upper_bound, count
    return lower_bound


def render(summary: dict[str, Any]) -> str:
    """The summary as aligned text tables, one column per platform (boto3: per API) plus the total."""
    columns = sorted({p for title in SECTIONS for cells in summary[title].values() for p in cells})
    header = [*columns, TOTAL]
    lines: list[str] = []
    for title in SECTIONS:
        lines.append(f"{title:<44}" + "".join(f"{h:>16}" for h in header))
        rows = summary[title] or {"(none)": {}}
        for row, cells in rows.items():
            values = [cells.get(p, 0) for p in columns]
            lines.append(f"  {row:<42}" + "".join(f"{v:>16,.0f}" for v in [*values, sum(values)]))
        lines.append("")
    lines.append(f"{TTFC:<44}" + "".join(f"{h:>16}" for h in header))
    for name, _q in QUANTILES:
        cells = [summary[TTFC].get(p, {}).get(name) for p in header]
        lines.append(f"  {name:<42}" + "".join(f"{v:>16.3f}" if v is not None else f"{'-':>16}" for v in cells))
    return "\n".join(lines)
