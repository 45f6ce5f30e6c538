"""The alerts, once: Prometheus rule files (Prometheus, Mimir, Grafana data-source-managed) and Grafana-managed
rules in Grafana's file-provisioning format are both generated from `ALERTS`. Runbooks: docs/alerts.md."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import semconv as sc
from ..telemetry import catalog as c
from .promql import INSTANCE, JOB, MODEL, PLATFORM, PROVIDER, REGION, increase, label, quantile, rate, ratio

BY_STREAM = (JOB, PROVIDER, PLATFORM, REGION, MODEL)
BY_PROVIDER = (JOB, PROVIDER, PLATFORM, REGION)
RESOURCE = label(sc.RATE_LIMIT_RESOURCE)
SOURCE = label(sc.RATE_LIMIT_SOURCE)
OUTCOME = label(sc.OUTCOME)
RESULT = label(sc.RETRY_RESULT)
IN_BAND = f"~{sc.SOURCE_ERROR_EVENT}|{sc.SOURCE_EXCEPTION_FRAME}"  # rate limits inside HTTP 200 streams
GROUP = "bedrock_otel"
DATASOURCE_UID = "prometheus"  # the uid pinned in provisioning/datasources
# Where the runbooks are by default (docs/alerts.md, one section per alert); `bedrock-otel dashboards --runbook-url`
# points the rules at another copy (a wiki, a fork)
RUNBOOK_URL = "https://github.com/bedrock-otel/bedrock_otel/blob/main/docs/alerts.md"


@dataclass(frozen=True)
class Alert:
    name: str
    query: str  # what the alert is about, without the threshold (Grafana thresholds it separately)
    op: str  # ">" or "<"
    threshold: float
    for_: str
    severity: str
    summary: str
    description: str  # Prometheus templating; `$value` is the query's value
    window_s: int = 600  # how far back the query looks (Grafana's relativeTimeRange)

    @property
    def expr(self) -> str:
        return f"({self.query}) {self.op} {self.threshold:g}"

    @property
    def uid(self) -> str:
        return "bedrock-otel-" + "".join(f"-{ch.lower()}" if ch.isupper() else ch for ch in
                                         self.name.removeprefix("BedrockOtel")).lstrip("-")

    def runbook(self, base: str = RUNBOOK_URL) -> str:
        return f"{base}#{self.name.lower()}"


def _where(first: str, *more: str) -> str:
    """`a, b, c` from alert labels; labels after the first are left out when empty (cloud_region off Bedrock)."""
    return f"{{{{ $labels.{first} }}}}" + "".join(f"{{{{ with $labels.{name} }}}}, {{{{ . }}}}{{{{ end }}}}"
                                                  for name in more)


ALERTS: tuple[Alert, ...] = (
    Alert("BedrockOtelInBandRateLimited",
          rate(c.RATE_LIMIT_HITS, "5m", BY_STREAM, **{SOURCE: IN_BAND}) + " * 60", ">", 1, "5m", "warning",
          f"In-band rate limiting: {_where(MODEL, REGION)}",
          "{{ $value | humanize }} rate-limit errors per minute arrive inside HTTP 200 streams (rate_limit_error "
          "events or throttlingException frames) for " + _where(PLATFORM, MODEL, REGION) + ", job {{ $labels.job }}. "
          "The SDK never raises RateLimitError for these, so back-off code may not run."),
    Alert("BedrockOtelInBandRetriesExhausted",
          increase(c.STREAM_RETRIES, "10m", BY_STREAM, **{RESULT: sc.RETRY_EXHAUSTED}), ">", 3, "5m", "warning",
          f"In-band retries exhausted: {_where(MODEL, REGION)}",
          "{{ $value | humanize }} calls in the last 10 minutes for " + _where(PLATFORM, MODEL, REGION)
          + " failed with an in-band error after every retry the client allows (job {{ $labels.job }}): retry mode "
          "is no longer absorbing the errors, and the application sees them."),
    Alert("BedrockOtelMalformedStartEvent",
          increase(c.MALFORMED_EVENTS, "10m", (JOB, PROVIDER, MODEL),
                   **{label(sc.MALFORMED_REASON): sc.REASON_START_WITHOUT_MESSAGE}), ">", 0, "0m", "warning",
          f"The anthropic SDK in {{{{ $labels.job }}}} mishandles in-band stream errors ({_where(MODEL)})",
          "{{ $value | humanize }} stream events in the last 10 minutes reached the application as a message_start "
          "whose message is None (anthropics/anthropic-sdk-python#1472): event.message.model raises AttributeError "
          "and the real error is lost. Upgrade anthropic to >= 0.110.0, or enable bedrock_otel repair mode "
          "(BEDROCK_OTEL_REPAIR=1)."),
    Alert("BedrockOtelStreamErrorRatioHigh",
          ratio(rate(c.STREAMS, "5m", BY_STREAM, **{OUTCOME: sc.OUTCOME_ERROR}),
                rate(c.STREAMS, "5m", BY_STREAM)), ">", 0.05, "10m", "warning",
          f"Streams ending in errors: {_where(MODEL, REGION)}",
          "{{ $value | humanizePercentage }} of streams for " + _where(PLATFORM, MODEL, REGION)
          + " ended with an error over the last 5 minutes (job {{ $labels.job }})."),
    Alert("BedrockOtelStreamsTruncated",
          increase(c.STREAMS, "15m", BY_STREAM, **{OUTCOME: sc.OUTCOME_TRUNCATED}), ">", 2, "0m",
          "warning", f"Truncated streams: {_where(MODEL, REGION)}",
          "{{ $value | humanize }} streams for " + _where(PLATFORM, MODEL, REGION) + " ended without message_stop "
          "and without an error in the last 15 minutes: the application may have used partial completions as if "
          "they were whole."),
    Alert("BedrockOtelTimeToFirstChunkSlow",
          quantile(0.95, c.TIME_TO_FIRST_CHUNK, "5m", BY_STREAM), ">", 5, "10m", "warning",
          f"Slow first chunk: {_where(MODEL, REGION)}",
          "p95 time to first chunk for " + _where(PLATFORM, MODEL, REGION) + " is {{ $value | humanizeDuration }} "
          "(threshold 5s), job {{ $labels.job }}."),
    Alert("BedrockOtelHttp429Burst",
          increase(c.RATE_LIMIT_HITS, "5m", BY_PROVIDER, **{SOURCE: sc.SOURCE_HTTP_429}), ">", 10,
          "1m", "warning", f"HTTP 429 burst: {_where(PLATFORM, REGION)}",
          "{{ $value | humanize }} HTTP 429 responses (retried attempts included) in 5 minutes from "
          + _where(PLATFORM, REGION) + ", job {{ $labels.job }}."),
    Alert("BedrockOtelRateLimitHeadroomLow",
          f"min by ({', '.join((*BY_PROVIDER, RESOURCE))}) ({c.RATE_LIMIT_REMAINING.prometheus_name} / "
          f"({c.RATE_LIMIT_LIMIT.prometheus_name} > 0))", "<", 0.1, "5m", "warning",
          f"Rate-limit headroom low: {_where(RESOURCE)} on {_where(PLATFORM)}",
          "Only {{ $value | humanizePercentage }} of the " + _where(RESOURCE) + " rate limit is left on "
          + _where(PLATFORM, REGION) + " (anthropic-ratelimit-* headers), job {{ $labels.job }}."),
    Alert("BedrockOtelRetryBudgetExhausted",
          rate(c.PRESSURE_REFUSED, "5m", (JOB, PROVIDER, PLATFORM, MODEL, REGION),
               **{label(sc.PRESSURE_REASON): sc.REFUSED_RETRY_BUDGET}) + " * 60", ">", 0, "10m", "warning",
          f"Retry budget exhausted: {_where(MODEL, REGION)}",
          "Pressure mode has refused {{ $value | humanize }} retries per minute for " + _where(PLATFORM, MODEL, REGION)
          + " for 10 minutes on end (job {{ $labels.job }}): the calls it refuses fail with the client's typed "
          "throttling error. The key is over its quota for longer than retries can bridge: raise the quota, "
          "move load to another region or inference profile, or send less."),
    Alert("BedrockOtelTelemetryExportFailing",
          increase(c.TELEMETRY_DROPPED, "10m", (JOB, INSTANCE), **{label(sc.DROPPED_REASON): sc.DROPPED_EXPORT_FAILED}),
          ">", 0, "10m", "warning",
          "bedrock_otel cannot deliver OTLP telemetry from {{ $labels.job }}/{{ $labels.instance }}",
          "{{ $value | humanize }} spans or metric points were dropped in the last 10 minutes because the OTLP "
          "backend did not take them (down, slow, refusing). The application is not slowed; traces of this "
          "period are incomplete. Check the Collector and `bedrock-otel doctor` on the host."),
    Alert("BedrockOtelTelemetryAbsent",
          f"(count by ({JOB}, {INSTANCE}) (up) unless count by ({JOB}, {INSTANCE}) "
          f"({c.INTERNAL_ERRORS.prometheus_name})) and on ({JOB}) "
          f"count by ({JOB}) (max_over_time({c.INTERNAL_ERRORS.prometheus_name}[1h])) or "
          f"absent_over_time({c.INTERNAL_ERRORS.prometheus_name}[10m])", ">", 0, "5m", "critical",
          "bedrock_otel telemetry is missing{{ if $labels.instance }} from {{ $labels.instance }}{{ end }}",
          "No bedrock_otel metrics{{ if $labels.instance }} from {{ $labels.job }}/{{ $labels.instance }}, a target "
          "Prometheus still scrapes, in a job that exported them within the last hour: the target is down or no "
          "longer instrumented{{ else }} from any target for 10 minutes{{ end }}. Stream, error-frame and "
          "rate-limit alerts cannot fire. A target that left service discovery (scale-in, a rolling deploy) is not "
          "missing.",
          window_s=3600),
)


def prometheus_rules(for_override: str | None = None, runbooks: str = RUNBOOK_URL) -> dict[str, Any]:
    """The Prometheus rule file (`for_override` shortens every `for`, for end-to-end tests)."""
    rules = []
    for alert in ALERTS:
        rule: dict[str, Any] = {"alert": alert.name, "expr": alert.expr}
        duration = for_override if for_override is not None else alert.for_
        if duration != "0m":
            rule["for"] = duration
        rule["labels"] = {"severity": alert.severity}
        rule["annotations"] = {"summary": alert.summary, "description": alert.description,
                               "runbook_url": alert.runbook(runbooks)}
        rules.append(rule)
    return {"groups": [{"name": GROUP, "rules": rules}]}


def _grafana_template(text: str) -> str:
    """Grafana-managed rules expose the reduced value as $values.B.Value rather than $value."""
    return text.replace("$value", "$values.B.Value")


def grafana_rules(runbooks: str = RUNBOOK_URL) -> dict[str, Any]:
    """Grafana-managed alert rules in the file-provisioning format: query A, reduce B (last), threshold C."""
    rules = []
    for alert in ALERTS:
        rules.append({
            "uid": alert.uid,
            "title": alert.name,
            "condition": "C",
            "data": [
                {"refId": "A", "relativeTimeRange": {"from": alert.window_s, "to": 0}, "datasourceUid": DATASOURCE_UID,
                 "model": {"refId": "A", "expr": alert.query, "instant": True, "intervalMs": 1000,
                           "maxDataPoints": 43200}},
                {"refId": "B", "datasourceUid": "__expr__",
                 "model": {"refId": "B", "type": "reduce", "expression": "A", "reducer": "last",
                           "settings": {"mode": "dropNN"}}},
                {"refId": "C", "datasourceUid": "__expr__",
                 "model": {"refId": "C", "type": "threshold", "expression": "B",
                           "conditions": [{"evaluator": {"type": "gt" if alert.op == ">" else "lt",
                                                         "params": [alert.threshold]}}]}},
            ],
            "noDataState": "OK",  # an empty query result means nothing is wrong
            "execErrState": "Error",
            "for": alert.for_,
            "labels": {"severity": alert.severity},
            "annotations": {"summary": _grafana_template(alert.summary),
                            "description": _grafana_template(alert.description),
                            "runbook_url": alert.runbook(runbooks)},
            "isPaused": False,
        })
    return {"apiVersion": 1, "groups": [{"orgId": 1, "name": GROUP, "folder": GROUP, "interval": "1m",
                                         "rules": rules}]}


def grafana_notifications(webhook_url: str = "http://alert-receiver.example:8080/bedrock-otel") -> dict[str, Any]:
    """An example contact point and notification policy (note: `policies` replaces the org's policy tree)."""
    return {
        "apiVersion": 1,
        "contactPoints": [{"orgId": 1, "name": "bedrock-otel-oncall", "receivers": [
            {"uid": "bedrock-otel-webhook", "type": "webhook", "settings": {"url": webhook_url, "httpMethod": "POST"}},
        ]}],
        "policies": [{"orgId": 1, "receiver": "bedrock-otel-oncall", "group_by": ["grafana_folder", "alertname"],
                      "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h",
                      "routes": [{"receiver": "bedrock-otel-oncall", "object_matchers": [["severity", "=", "critical"]],
                                  "group_wait": "10s", "repeat_interval": "1h"}]}],
    }
