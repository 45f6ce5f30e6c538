"""Every instrument bedrock_otel records: name, kind, unit, description, buckets and attributes.

This module is the single source of truth for metric names. Both recorders (prometheus_client and the
OpenTelemetry Metrics API) build their instruments from `CATALOG`; the Prometheus names are derived here
with the standard OpenTelemetry-to-Prometheus translation, never written by hand elsewhere.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from .. import semconv as sc


class Kind(enum.Enum):
    COUNTER = "counter"
    UP_DOWN_COUNTER = "updowncounter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


# GenAI semantic-convention bucket advice.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1 … 67108864, x4
RETRY_AFTER_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)

# Label sets. "P, M" in the contract: provider and model, plus the Bedrock pair (empty off Bedrock) and the API
# that streamed. "P" metrics carry the provider and, as an allowed extra label, the region.
STREAM_LABELS = (sc.PROVIDER, sc.PLATFORM, sc.REQUEST_MODEL, sc.CLOUD_REGION, sc.INFERENCE_PROFILE, sc.STREAM_API)
PROVIDER_LABELS = (sc.PROVIDER, sc.PLATFORM, sc.CLOUD_REGION)
# pressure mode's key: where one quota applies
PRESSURE_LABELS = (sc.PROVIDER, sc.PLATFORM, sc.REQUEST_MODEL, sc.CLOUD_REGION)


@dataclass(frozen=True, eq=False)  # identity hash: instruments are dictionary keys on the hot path
class Instrument:
    name: str
    kind: Kind
    unit: str
    description: str
    base_labels: tuple[str, ...]
    extra_labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None
    # prometheus_client multiprocess mode for gauges (how worker values combine in one scrape).
    multiprocess_mode: str = "all"
    # a histogram whose measurement is a sequence of points, one per output chunk, taken in one record() call
    # per stream so that a long stream does not pay a recorder call per chunk
    points: bool = False
    # each series (a histogram: each bucket) keeps the trace and span id of the latest sampled stream that
    # touched it, as an exemplar: where an operator clicks from a spike to the failing stream's trace
    exemplars: bool = False
    # a value of the last label whose series keep none (the healthy outcome: every completed stream would
    # replace the last one, for nothing to look at)
    exemplars_except: str | None = None

    def keeps_exemplar(self, values: tuple[str, ...]) -> bool:
        """Whether the series of these label values keeps an exemplar (ask only where `exemplars` is set)."""
        return values[-1] != self.exemplars_except

    @property
    def attributes(self) -> tuple[str, ...]:
        return self.base_labels + self.extra_labels

    @property
    def prometheus_name(self) -> str:
        """The full Prometheus family name, as the OpenTelemetry Prometheus translation spells it."""
        return prometheus_name(self.name, self.unit, self.kind)

    @property
    def prometheus_labels(self) -> tuple[str, ...]:
        return tuple(prometheus_label(a) for a in self.attributes)


_UNIT_SUFFIXES = {"s": "seconds", "By": "bytes", "ms": "milliseconds", "1": ""}


def prometheus_label(attribute: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", attribute)


def prometheus_name(name: str, unit: str, kind: Kind) -> str:
    base = prometheus_label(name)
    suffix = "" if unit.startswith("{") else _UNIT_SUFFIXES.get(unit, unit)
    if suffix and not base.endswith("_" + suffix):
        base = f"{base}_{suffix}"
    if kind is Kind.COUNTER and not base.endswith("_total"):
        base += "_total"
    return base


STREAM_EVENTS = Instrument(
    "anthropic.stream.events", Kind.COUNTER, "{event}",
    "SSE events that arrived on the wire, by event type (including ones the SDK drops or raises on).",
    STREAM_LABELS, (sc.EVENT_TYPE,),
)
MALFORMED_EVENTS = Instrument(
    "anthropic.stream.malformed_events", Kind.COUNTER, "{event}",
    "Malformed stream events (the #1472 start-event masquerade, chunks without a type, undecodable chunks).",
    STREAM_LABELS, (sc.EVENT_TYPE, sc.MALFORMED_REASON), exemplars=True,
)
ERROR_FRAMES = Instrument(
    "anthropic.stream.error_frames", Kind.COUNTER, "{frame}",
    "In-band error payloads and Bedrock exception frames received inside HTTP 200 streams.",
    STREAM_LABELS, (sc.ERROR_TYPE, sc.ERROR_SOURCE), exemplars=True,
)
RATE_LIMIT_HITS = Instrument(
    "anthropic.rate_limit.hits", Kind.COUNTER, "{hit}",
    "Rate-limit signals: HTTP 429 on any attempt, in-band rate_limit_error, throttlingException frames.",
    STREAM_LABELS, (sc.RATE_LIMIT_SOURCE,), exemplars=True,
)
STREAMS = Instrument(
    "anthropic.streams", Kind.COUNTER, "{stream}",
    "Streamed calls by final outcome; every stream ends exactly once.",
    STREAM_LABELS, (sc.OUTCOME,), exemplars=True, exemplars_except=sc.OUTCOME_COMPLETED,
)
STREAMS_ACTIVE = Instrument(
    "anthropic.streams.active", Kind.UP_DOWN_COUNTER, "{stream}",
    "Streamed calls in flight (request sent, stream not yet ended).",
    PROVIDER_LABELS, multiprocess_mode="livesum",
)
HTTP_RESPONSES = Instrument(
    "anthropic.http.responses", Kind.COUNTER, "{response}",
    "HTTP responses received by the SDK, one per attempt including retried ones.",
    PROVIDER_LABELS, (sc.HTTP_STATUS,),
)
RATE_LIMIT_REMAINING = Instrument(
    "anthropic.rate_limit.remaining", Kind.GAUGE, "1",
    "Last anthropic-ratelimit-*-remaining header value, by resource.",
    PROVIDER_LABELS, (sc.RATE_LIMIT_RESOURCE,), multiprocess_mode="mostrecent",
)
RATE_LIMIT_LIMIT = Instrument(
    "anthropic.rate_limit.limit", Kind.GAUGE, "1",
    "Last anthropic-ratelimit-*-limit header value, by resource.",
    PROVIDER_LABELS, (sc.RATE_LIMIT_RESOURCE,), multiprocess_mode="mostrecent",
)
RETRY_AFTER = Instrument(
    "anthropic.retry_after", Kind.HISTOGRAM, "s",
    "retry-after header values on HTTP responses.",
    PROVIDER_LABELS, (sc.HTTP_STATUS,), buckets=RETRY_AFTER_BUCKETS,
)
STREAM_RETRIES = Instrument(
    "anthropic.stream.retries", Kind.COUNTER, "{retry}",
    "Retry mode: retryable in-band errors that opened an HTTP 200 stream before anything reached the caller, "
    "by whether another attempt was made (retried) or not (exhausted).",
    STREAM_LABELS, (sc.ERROR_TYPE, sc.RETRY_RESULT), exemplars=True,
)
STREAMS_RECOVERED = Instrument(
    "anthropic.streams.recovered", Kind.COUNTER, "{stream}",
    "Retry mode: streamed calls that completed after at least one in-band error was retried.",
    STREAM_LABELS, exemplars=True,
)
USAGE_TOKENS = Instrument(
    "anthropic.usage.tokens", Kind.COUNTER, "{token}",
    "Tokens reported in stream usage, by type (input, output, cache_read, cache_creation).",
    STREAM_LABELS, (sc.TOKEN_TYPE,),
)
OPERATION_DURATION = Instrument(
    "gen_ai.client.operation.duration", Kind.HISTOGRAM, "s",
    "Duration of streamed calls from the first request attempt to the end of the stream.",
    STREAM_LABELS, (sc.OPERATION_NAME, sc.ERROR_TYPE), buckets=DURATION_BUCKETS, exemplars=True,
)
TIME_TO_FIRST_CHUNK = Instrument(
    "gen_ai.client.operation.time_to_first_chunk", Kind.HISTOGRAM, "s",
    "Time from the first request attempt to the first content_block_delta of the stream.",
    STREAM_LABELS, (sc.OPERATION_NAME,), buckets=DURATION_BUCKETS, exemplars=True,
)
TIME_PER_OUTPUT_CHUNK = Instrument(
    "gen_ai.client.operation.time_per_output_chunk", Kind.HISTOGRAM, "s",
    "Time between consecutive content_block_delta events of a stream, one point per chunk after the first.",
    STREAM_LABELS, (sc.OPERATION_NAME,), buckets=DURATION_BUCKETS, points=True,
)
TOKEN_USAGE = Instrument(
    "gen_ai.client.token.usage", Kind.HISTOGRAM, "{token}",
    "Input and output tokens per streamed call.",
    STREAM_LABELS, (sc.OPERATION_NAME, sc.TOKEN_TYPE), buckets=TOKEN_BUCKETS,
)
PRESSURE_RATE = Instrument(
    "bedrock_otel.pressure.allowed_rate", Kind.GAUGE, "{request}/s",
    "Pressure mode: requests a second a key is paced to after throttles; 0 while it is not paced.",
    PRESSURE_LABELS,
)
PRESSURE_WAIT = Instrument(
    "bedrock_otel.pressure.wait.duration", Kind.HISTOGRAM, "s",
    "Pressure mode: how long HTTP attempts waited for their turn before being sent (one point per wait).",
    PRESSURE_LABELS, buckets=DURATION_BUCKETS,
)
PRESSURE_REFUSED = Instrument(
    "bedrock_otel.pressure.refused", Kind.COUNTER, "{attempt}",
    "Pressure mode: attempts not made, by reason: a retry over the retry budget, an attempt whose turn was more "
    "than the maximum wait away. The client raised its throttling error at once.",
    PRESSURE_LABELS, (sc.PRESSURE_REASON,),
)
INTERNAL_ERRORS = Instrument(
    "bedrock_otel.internal.errors", Kind.COUNTER, "{error}",
    "Exceptions caught inside bedrock_otel itself (the application never sees them).",
    (sc.INTERNAL_COMPONENT,),
)

TELEMETRY_DROPPED = Instrument(
    "bedrock_otel.telemetry.dropped", Kind.COUNTER, "{measurement}",
    "Telemetry bedrock_otel could not record as asked: label values folded into _OTHER by a cardinality cap, "
    "measurements a recorder failed to take.",
    (sc.DROPPED_REASON,),
)

CATALOG: tuple[Instrument, ...] = (
    STREAM_EVENTS,
    MALFORMED_EVENTS,
    ERROR_FRAMES,
    RATE_LIMIT_HITS,
    STREAMS,
    STREAMS_ACTIVE,
    HTTP_RESPONSES,
    RATE_LIMIT_REMAINING,
    RATE_LIMIT_LIMIT,
    RETRY_AFTER,
    STREAM_RETRIES,
    STREAMS_RECOVERED,
    USAGE_TOKENS,
    OPERATION_DURATION,
    TIME_TO_FIRST_CHUNK,
    TIME_PER_OUTPUT_CHUNK,
    TOKEN_USAGE,
    PRESSURE_RATE,
    PRESSURE_WAIT,
    PRESSURE_REFUSED,
    INTERNAL_ERRORS,
    TELEMETRY_DROPPED,
)
