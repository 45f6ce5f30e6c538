"""The main Grafana dashboard ("bedrock_otel / Claude streams"), generated: every query is built from the
catalogue and honours the template variables (data source, job, provider, platform, API, model, region,
inference profile)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import semconv as sc
from ..telemetry import catalog as c
from .promql import (
    API,
    JOB,
    MODEL,
    PLATFORM,
    PROFILE,
    REGION,
    VARIABLES,
    label,
    or_zero,
    quantile,
    rate,
    ratio,
    selector,
)

UID = "bedrock-otel-streams"
TITLE = "bedrock_otel / Claude streams"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
W = "$__rate_interval"  # the rate window Grafana computes from the scrape interval
OUTCOME, SOURCE, EVENT = label(sc.OUTCOME), label(sc.RATE_LIMIT_SOURCE), label(sc.EVENT_TYPE)
ERROR_TYPE, ERROR_SOURCE, REASON = label(sc.ERROR_TYPE), label(sc.ERROR_SOURCE), label(sc.MALFORMED_REASON)
STATUS, RESOURCE, TOKEN = label(sc.HTTP_STATUS), label(sc.RATE_LIMIT_RESOURCE), label(sc.TOKEN_TYPE)
RESULT, REASON_REFUSED = label(sc.RETRY_RESULT), label(sc.PRESSURE_REASON)
# the series that carry exemplars (catalogue): a time series panel querying one shows them, each a link to its trace
EXEMPLAR_SERIES = tuple(i.prometheus_name for i in c.CATALOG if i.exemplars)


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str


@dataclass
class Panel:
    title: str
    targets: list[Target]
    unit: str
    description: str
    kind: str = "timeseries"
    width: int = 12
    height: int = 8
    options: dict[str, Any] = field(default_factory=dict)


def series(title: str, unit: str, description: str, *targets: tuple[str, str], width: int = 12,
           stack: bool = False, zero: bool = True) -> Panel:
    """A time series panel. `zero`: rates and counts show 0 rather than "No data" while bedrock_otel reports and
    nothing has happened (`promql.or_zero`); percentiles and last-seen values have no such 0 and stay empty."""
    options = {"stack": stack}
    return Panel(title, [Target(or_zero(e, W) if zero else e, legend) for e, legend in targets], unit, description,
                 "timeseries", width, options=options)


def stat(title: str, expr: str, unit: str, description: str, thresholds: tuple[float, float] | None = None,
         zero: bool = True) -> Panel:
    return Panel(title, [Target(or_zero(expr, W) if zero else expr, title)], unit, description, "stat", 4, 4,
                 {"thresholds": thresholds})


EMPTY_UNTIL = " Empty until there is something to take a percentile of"


def _legend(*labels: str) -> str:
    return " ".join(f"{{{{{name}}}}}" for name in labels)


BY_MODEL = (PLATFORM, MODEL)
PER_MINUTE = " * 60"

ROWS: list[tuple[str, list[Panel]]] = [
    ("Overview", [
        stat("Streams per second", rate(c.STREAMS, W, dashboard=True), "reqps",
             "Streamed calls ending per second, every outcome."),
        stat("Error-outcome ratio", ratio(rate(c.STREAMS, W, dashboard=True, **{OUTCOME: sc.OUTCOME_ERROR}),
                                          rate(c.STREAMS, W, dashboard=True)), "percentunit",
             "Share of streams that ended with an error (HTTP errors, error frames, exceptions).", (0.01, 0.05)),
        stat("Rate-limit hits per minute", rate(c.RATE_LIMIT_HITS, W, dashboard=True) + PER_MINUTE, "short",
             "HTTP 429s (every attempt), in-band rate_limit_error events and throttlingException frames.", (1, 10)),
        stat("Malformed start events per minute",
             rate(c.MALFORMED_EVENTS, W, dashboard=True, **{REASON: sc.REASON_START_WITHOUT_MESSAGE}) + PER_MINUTE,
             "short", "#1472: error frames the SDK handed over as message_start with message=None. Anything above "
                      "0: upgrade anthropic to >= 0.110.0 or enable repair mode.", (0.001, 0.001)),
        stat("Active streams", f"sum({selector(c.STREAMS_ACTIVE, dashboard=True)})", "short",
             "Streams in flight now (request sent, stream not yet ended)."),
        stat("Time to first chunk p95", quantile(0.95, c.TIME_TO_FIRST_CHUNK, W, dashboard=True), "s",
             "95th percentile from the first request attempt to the first content_block_delta." + EMPTY_UNTIL
             + " (a stream that produced output in the window).", (2, 5), zero=False),
    ]),
    ("SSE events", [
        series("Events per second by type", "short", "Every SSE event on the wire, including ping and error events "
               "the SDK drops or raises on.", (rate(c.STREAM_EVENTS, W, (EVENT,), dashboard=True), _legend(EVENT)),
               stack=True),
        series("Malformed events per second by type and reason", "short",
               "start_without_message (#1472), missing_type (chunks without a type), invalid_json.",
               (rate(c.MALFORMED_EVENTS, W, (EVENT, REASON), dashboard=True), _legend(EVENT, REASON))),
    ]),
    ("Error frames", [
        series("Error frames per second by error.type and source", "short",
               "In-band errors inside HTTP 200 streams: error events and Bedrock exception frames.",
               (rate(c.ERROR_FRAMES, W, (ERROR_TYPE, ERROR_SOURCE), dashboard=True), _legend(ERROR_TYPE, ERROR_SOURCE)),
               stack=True),
        series("Error frames per second by model and region", "short", "Where the in-band errors come from.",
               (rate(c.ERROR_FRAMES, W, (*BY_MODEL, REGION), dashboard=True), _legend(MODEL, REGION))),
    ]),
    ("Rate limits", [
        series("Rate-limit hits per second by source", "short",
               "http_429 (every attempt, retries included), error_event (in-band rate_limit_error), exception_frame "
               "(throttlingException).", (rate(c.RATE_LIMIT_HITS, W, (SOURCE, PLATFORM), dashboard=True),
                                          _legend(PLATFORM, SOURCE)), width=8, stack=True),
        series("HTTP responses per second by status", "reqps", "Every HTTP attempt the SDK made, by status code.",
               (rate(c.HTTP_RESPONSES, W, (PLATFORM, STATUS), dashboard=True), _legend(PLATFORM, STATUS)), width=8,
               stack=True),
        series("retry-after (p50, p95)", "s", "retry-after header values on HTTP responses." + EMPTY_UNTIL
               + ": empty while no response carried retry-after (no 429 or 529 in the window).",
               (quantile(0.5, c.RETRY_AFTER, W, (STATUS,), dashboard=True), "p50 " + _legend(STATUS)),
               (quantile(0.95, c.RETRY_AFTER, W, (STATUS,), dashboard=True), "p95 " + _legend(STATUS)), width=8,
               zero=False),
    ]),
    ("In-band errors absorbed by retry", [
        series("In-band retries per second by error.type and result", "short",
               "Retry mode (BEDROCK_OTEL_RETRY=1; 0 without it): streams that opened with a retryable in-band "
               "error before anything reached the caller. retried: the client's retry policy made another attempt; "
               "exhausted: no budget left (or x-should-retry: false), the caller got the SDK's typed exception.",
               (rate(c.STREAM_RETRIES, W, (ERROR_TYPE, RESULT), dashboard=True), _legend(ERROR_TYPE, RESULT)),
               stack=True),
        series("Recovered versus exhausted by model and region", "reqps",
               "Retry mode: calls that completed after at least one in-band retry, against calls that failed with "
               "the in-band error after every retry.",
               (rate(c.STREAMS_RECOVERED, W, (*BY_MODEL, REGION), dashboard=True),
                "recovered " + _legend(MODEL, REGION)),
               (rate(c.STREAM_RETRIES, W, (*BY_MODEL, REGION), dashboard=True, **{RESULT: sc.RETRY_EXHAUSTED}),
                "exhausted " + _legend(MODEL, REGION))),
    ]),
    ("Request pressure", [
        series("Allowed rate by model and region", "reqps",
               "Pressure mode (BEDROCK_OTEL_PRESSURE=1): the requests a second each key is paced to after "
               "throttles; 0 once pacing stopped (nothing waits)." + EMPTY_UNTIL + ": a key's first throttle in "
               "pressure mode.",
               (f"max by ({PLATFORM}, {MODEL}, {REGION}) ({selector(c.PRESSURE_RATE, dashboard=True)})",
                _legend(PLATFORM, MODEL, REGION)), width=8, zero=False),
        series("Waits per second and wait p95", "short",
               "Pressure mode: HTTP attempts held back for their key's turn (or a retry-after pause), and how long "
               "the slowest waited." + EMPTY_UNTIL + ": a wait (pressure mode, after a throttle).",
               (rate(c.PRESSURE_WAIT, W, (PLATFORM,), dashboard=True, suffix="_count"), "waits/s " + _legend(PLATFORM)),
               (quantile(0.95, c.PRESSURE_WAIT, W, (PLATFORM,), dashboard=True), "p95 s " + _legend(PLATFORM)),
               width=8, zero=False),
        series("Attempts refused per second by reason", "short",
               "Pressure mode: attempts not made, each a call that got the client's typed throttling error at once. "
               "retry_budget: a retry over the key's retry budget (as if max_retries were spent; sustained, see the "
               "BedrockOtelRetryBudgetExhausted alert); max_wait: an attempt whose turn was further away than "
               "BEDROCK_OTEL_PRESSURE_MAX_WAIT.",
               (rate(c.PRESSURE_REFUSED, W, (PLATFORM, MODEL, REGION, REASON_REFUSED), dashboard=True),
                _legend(MODEL, REGION, REASON_REFUSED)), width=8),
    ]),
    ("Stream outcomes", [
        series("Streams per second by outcome", "reqps", "completed, error, truncated (ended without message_stop "
               "or error), abandoned (the caller stopped reading).",
               (rate(c.STREAMS, W, (OUTCOME,), dashboard=True), _legend(OUTCOME)), stack=True),
        series("Error-outcome ratio by model", "percentunit", "Share of each model's streams ending in error.",
               (ratio(rate(c.STREAMS, W, BY_MODEL, dashboard=True, **{OUTCOME: sc.OUTCOME_ERROR}),
                      rate(c.STREAMS, W, BY_MODEL, dashboard=True)), _legend(MODEL))),
    ]),
    ("Latency", [
        series("Time to first chunk (p50, p95, p99)", "s", "From the first request attempt to the first "
               "content_block_delta (retries and back-off included)." + EMPTY_UNTIL + ".",
               *[(quantile(q, c.TIME_TO_FIRST_CHUNK, W, (PLATFORM,), dashboard=True), f"p{int(q * 100)} "
                  + _legend(PLATFORM)) for q in (0.5, 0.95, 0.99)], width=8, zero=False),
        series("Time per output chunk (p50, p95, p99)", "s", "Time between consecutive content_block_delta "
               "events (gen_ai.client.operation.time_per_output_chunk): how fast output streams once it started."
               + EMPTY_UNTIL + " (streams with two deltas or more).",
               *[(quantile(q, c.TIME_PER_OUTPUT_CHUNK, W, (PLATFORM,), dashboard=True), f"p{int(q * 100)} "
                  + _legend(PLATFORM)) for q in (0.5, 0.95, 0.99)], width=8, zero=False),
        series("Operation duration (p50, p95, p99)", "s", "From the first request attempt to the end of the stream."
               + EMPTY_UNTIL + ".",
               *[(quantile(q, c.OPERATION_DURATION, W, (PLATFORM,), dashboard=True), f"p{int(q * 100)} "
                  + _legend(PLATFORM)) for q in (0.5, 0.95, 0.99)], width=8, zero=False),
    ]),
    ("Tokens", [
        series("Tokens per second by type", "short", "input, output, cache_read, cache_creation from stream usage.",
               (rate(c.USAGE_TOKENS, W, (TOKEN,), dashboard=True), _legend(TOKEN)), stack=True),
        series("Tokens per call (p50, p95) by type", "short", "gen_ai.client.token.usage per streamed call."
               + EMPTY_UNTIL + " (a stream that reported usage).",
               (quantile(0.5, c.TOKEN_USAGE, W, (TOKEN,), dashboard=True), "p50 " + _legend(TOKEN)),
               (quantile(0.95, c.TOKEN_USAGE, W, (TOKEN,), dashboard=True), "p95 " + _legend(TOKEN)), zero=False),
    ]),
    ("Rate-limit headroom", [
        series("Headroom (remaining / limit) by resource", "percentunit",
               "From the last anthropic-ratelimit-*-remaining and -limit headers; low means the next requests will "
               "be rate-limited. Empty while no response carried these headers (Bedrock and Vertex do not send "
               "them): no value is not full headroom.", (f"min by ({PLATFORM}, {REGION}, {RESOURCE}) "
                                    f"({selector(c.RATE_LIMIT_REMAINING, dashboard=True)} / "
                                    f"({selector(c.RATE_LIMIT_LIMIT, dashboard=True)} > 0))",
                                    _legend(PLATFORM, RESOURCE)), zero=False),
        series("Remaining by resource", "short", "The last anthropic-ratelimit-*-remaining header values (empty "
               "while no response carried them).",
               (f"max by ({PLATFORM}, {REGION}, {RESOURCE}) ({selector(c.RATE_LIMIT_REMAINING, dashboard=True)})",
                _legend(PLATFORM, RESOURCE)), zero=False),
    ]),
    ("By model, API, region and inference profile", [
        series("Streams per second by model", "reqps", "Every stream, by platform and model.",
               (rate(c.STREAMS, W, BY_MODEL, dashboard=True), _legend(PLATFORM, MODEL)), width=8),
        series("Streams per second by API", "reqps", "The Anthropic SDK's Messages API (messages) and boto3's "
               "bedrock-runtime calls (invoke_model_with_response_stream, converse_stream), by outcome.",
               (rate(c.STREAMS, W, (API, OUTCOME), dashboard=True), _legend(API, OUTCOME)), width=8),
        series("Error frames per second by API", "short", "In-band errors and exception frames by API and "
               "error.type: the same throttling seen by each way in.",
               (rate(c.ERROR_FRAMES, W, (API, ERROR_TYPE), dashboard=True), _legend(API, ERROR_TYPE)), width=8),
        series("Streams per second by region and inference profile", "reqps",
               "Bedrock region and cross-region inference profile (global, us, eu, apac; empty off Bedrock).",
               (rate(c.STREAMS, W, (PLATFORM, REGION, PROFILE), dashboard=True), _legend(PLATFORM, REGION, PROFILE)),
               width=8),
        series("Rate-limit hits per second by region and inference profile", "short",
               "Which regions and profiles are being rate-limited.",
               (rate(c.RATE_LIMIT_HITS, W, (PLATFORM, REGION, PROFILE, SOURCE), dashboard=True),
                _legend(REGION, PROFILE, SOURCE)), width=8),
        series("bedrock_otel internal errors per second", "short", "Errors bedrock_otel caught in itself (the "
               "application never sees them); anything above 0 is worth a bug report.",
               (rate(c.INTERNAL_ERRORS, W, (JOB, label(sc.INTERNAL_COMPONENT)), dashboard=True),
                _legend(JOB, label(sc.INTERNAL_COMPONENT))), width=12),
        series("bedrock_otel dropped telemetry per second", "short", "Model ids folded into _OTHER by "
               "BEDROCK_OTEL_MAX_MODELS (label_overflow), measurements a recorder failed to take (record_failed), "
               "spans and metric points the OTLP backend did not take (export_failed).",
               (rate(c.TELEMETRY_DROPPED, W, (JOB, label(sc.DROPPED_REASON)), dashboard=True),
                _legend(JOB, label(sc.DROPPED_REASON))), width=12),
    ]),
]


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.kind == "stat":
        steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
        if panel.options.get("thresholds"):
            warn, bad = panel.options["thresholds"]
            steps += [{"color": "orange", "value": warn}, {"color": "red", "value": bad}]
        defaults["thresholds"] = {"mode": "absolute", "steps": steps}
        options: dict[str, Any] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                                   "colorMode": "value", "graphMode": "area", "textMode": "auto"}
    else:
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if panel.options["stack"] else 0,
                              "stacking": {"mode": "normal" if panel.options["stack"] else "none"}}
        options = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                   "tooltip": {"mode": "multi", "sort": "desc"}}
    return {
        "id": panel_id, "type": panel.kind, "title": panel.title, "description": panel.description,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": t.expr, "legendFormat": t.legend,
                     "range": True, "instant": False,
                     "exemplar": panel.kind == "timeseries" and any(name in t.expr for name in EXEMPLAR_SERIES)}
                    for i, t in enumerate(panel.targets)],
    }


def _variables() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"name": "datasource", "label": "Data source", "type": "datasource",
                                  "query": "prometheus", "current": {}, "hide": 0, "refresh": 1}]
    chain: list[str] = []
    for var, name in VARIABLES.items():
        filters = ", ".join(f'{VARIABLES[v]}=~"${v}"' for v in chain)
        query = f"label_values({c.STREAMS.prometheus_name}{{{filters}}}, {name})"
        title = {"profile": "Inference profile", "api": "API"}.get(var, var.capitalize())
        out.append({"name": var, "label": title,
                    "type": "query", "datasource": DATASOURCE, "query": {"query": query, "refId": var},
                    "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"}, "sort": 1, "hide": 0})
        chain.append(var)
    return out


def build() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y, panel_id = 0, 1
    for title, row_panels in ROWS:
        panels.append({"id": panel_id, "type": "row", "title": title, "collapsed": False, "panels": [],
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})
        panel_id, y, x, row_height = panel_id + 1, y + 1, 0, 0
        for panel in row_panels:
            if x + panel.width > 24:
                x, y, row_height = 0, y + row_height, 0
            panels.append(_panel_json(panel, panel_id, x, y))
            panel_id, x, row_height = panel_id + 1, x + panel.width, max(row_height, panel.height)
        y += row_height
    return {
        "uid": UID, "title": TITLE, "tags": ["bedrock_otel", "anthropic", "bedrock", "llm"],
        "description": "Are we being rate-limited on Bedrock, where, and is our SDK mishandling it? Streams, SSE "
                       "events, in-band error frames, rate limits and latency from bedrock_otel.",
        "schemaVersion": 39, "version": 1, "editable": False, "graphTooltip": 1, "timezone": "browser",
        "time": {"from": "now-6h", "to": "now"}, "refresh": "30s",
        "templating": {"list": _variables()},
        "annotations": {"list": []}, "links": [],
        "panels": panels,
    }
