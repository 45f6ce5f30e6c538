"""What gets recorded, decided once for every recorder: (instrument, label values, value) triples.

The recorders only know how to apply a triple to their own kind of instrument, so the Prometheus and
OpenTelemetry paths cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .. import semconv as sc
from ..errors import RATE_LIMIT_SOURCES
from ..observe import classify
from . import catalog as c

if TYPE_CHECKING:
    from ..observe.labels import CallLabels
    from ..observe.summary import StreamSummary

# the value is a sequence of floats for an instrument with `points` set
Measurement = tuple[c.Instrument, tuple[str, ...], Any]


def record_each(record: Callable[[c.Instrument, tuple[str, ...], Any], None],
                items: Iterable[Measurement]) -> list[c.Instrument]:
    """Take measurements one `record` call each; return the instruments of those that failed."""
    failed = []
    for instrument, values, value in items:
        try:
            record(instrument, values, value)
        except Exception:
            failed.append(instrument)
    return failed


def in_flight(labels: CallLabels, delta: int) -> list[Measurement]:
    """A streamed call starts (+1) or its stream ends (-1): a batch of one, which a stream's end extends."""
    return [(c.STREAMS_ACTIVE, labels.provider_key, delta)]


def pressure_rate(labels: CallLabels, rate: float) -> list[Measurement]:
    return [(c.PRESSURE_RATE, labels.pressure_key, rate)]


def pressure_wait(labels: CallLabels, seconds: float) -> list[Measurement]:
    return [(c.PRESSURE_WAIT, labels.pressure_key, seconds)]


def pressure_refused(labels: CallLabels, reason: str) -> list[Measurement]:
    return [(c.PRESSURE_REFUSED, (*labels.pressure_key, reason), 1)]


def of_stream(obs: StreamSummary) -> Iterator[Measurement]:
    """Everything an ended stream records (the in-flight gauge aside)."""
    key = obs.labels.stream_key
    yield c.STREAMS, (*key, obs.outcome), 1
    for event_type, count in obs.events.items():
        yield c.STREAM_EVENTS, (*key, event_type), count
    for carried_type, reason in obs.malformed:
        yield c.MALFORMED_EVENTS, (*key, carried_type, reason), 1
    for error_type, source, _message in obs.error_frames:
        yield c.ERROR_FRAMES, (*key, error_type, source), 1
        if error_type in RATE_LIMIT_SOURCES:
            yield c.RATE_LIMIT_HITS, (*key, RATE_LIMIT_SOURCES[error_type]), 1
    if obs.retried or obs.exhausted:
        yield from _retries(obs, key)
    yield c.OPERATION_DURATION, (*key, sc.OPERATION_CHAT, obs.error_type), obs.duration_s
    if obs.time_to_first_chunk_s is not None:
        yield c.TIME_TO_FIRST_CHUNK, (*key, sc.OPERATION_CHAT), obs.time_to_first_chunk_s
    if obs.chunk_gaps_ns:
        yield c.TIME_PER_OUTPUT_CHUNK, (*key, sc.OPERATION_CHAT), [gap / 1e9 for gap in obs.chunk_gaps_ns]
    usage = obs.usage
    for token_type, count in usage.items():
        yield c.USAGE_TOKENS, (*key, token_type), count
    if usage:
        yield c.TOKEN_USAGE, (*key, sc.OPERATION_CHAT, sc.TOKEN_INPUT), billable_input_tokens(usage)
        if sc.TOKEN_OUTPUT in usage:
            yield c.TOKEN_USAGE, (*key, sc.OPERATION_CHAT, sc.TOKEN_OUTPUT), usage[sc.TOKEN_OUTPUT]


def _retries(obs: StreamSummary, key: tuple[str, ...]) -> Iterator[Measurement]:
    """Retry mode: each in-band error retried or not, and the call recovered if it then completed."""
    for error_type in obs.retried:
        yield c.STREAM_RETRIES, (*key, error_type, sc.RETRY_RETRIED), 1
    if obs.exhausted is not None:
        yield c.STREAM_RETRIES, (*key, obs.exhausted, sc.RETRY_EXHAUSTED), 1
    if obs.retried and obs.outcome == sc.OUTCOME_COMPLETED:
        yield c.STREAMS_RECOVERED, key, 1


def billable_input_tokens(usage: Mapping[str, int]) -> int:
    """GenAI conventions for Anthropic: input tokens include cache reads and cache writes."""
    return sum(usage.get(k, 0) for k in (sc.TOKEN_INPUT, sc.TOKEN_CACHE_READ, sc.TOKEN_CACHE_CREATION))


def http_response(
    labels: CallLabels, status: int, headers: Mapping[str, str]
) -> Iterator[Measurement]:
    status_label = str(status)
    yield c.HTTP_RESPONSES, (*labels.provider_key, status_label), 1
    if status == 429:
        yield c.RATE_LIMIT_HITS, (*labels.stream_key, sc.SOURCE_HTTP_429), 1
    for resource, kind, value in classify.rate_limit_headers(headers):
        instrument = c.RATE_LIMIT_LIMIT if kind == "limit" else c.RATE_LIMIT_REMAINING
        yield instrument, (*labels.provider_key, resource), value
    retry_after = classify.retry_after_seconds(headers)
    if retry_after is not None:
        yield c.RETRY_AFTER, (*labels.provider_key, status_label), retry_after


