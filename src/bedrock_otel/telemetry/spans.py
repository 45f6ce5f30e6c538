"""The CLIENT span of a streamed call: started with the request, ended once with the stream."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from .. import semconv as sc
from .measurements import billable_input_tokens

if TYPE_CHECKING:
    from ..config import Settings
    from ..observe.labels import CallLabels
    from ..observe.summary import StreamSummary


def open_span(tracer: Tracer, labels: CallLabels, settings: Settings, request: dict[str, Any],
              messages: Any = None) -> Any:
    """A started CLIENT span with the call's labels and `request` attributes; `messages` (the request's messages,
    which the caller reads only when content capture is on) go into `gen_ai.input.messages`."""
    attributes = labels.span_attributes()
    attributes[sc.REQUEST_STREAM] = True
    attributes.update(request)
    if settings.capture_content and messages is not None:
        attributes[sc.INPUT_MESSAGES] = _truncate(messages, settings.content_max_length)
    name = f"{sc.OPERATION_CHAT} {labels.model}" if labels.model else sc.OPERATION_CHAT
    return tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)


def exemplar_of(span: Any) -> tuple[str, str] | None:
    """The trace and span id (hex) of a sampled span, for the exemplars of what its call records; None without a
    span or for one not sampled (only traces that exist are linked to)."""
    if span is None:
        return None
    context = span.get_span_context()
    if not context.trace_flags.sampled:
        return None
    return "%032x" % context.trace_id, "%016x" % context.span_id  # noqa: UP031 (a third faster than format())


def server_of_url(url: Any) -> dict[str, Any]:
    """`server.address` and `server.port` of a URL string (botocore's endpoint URL)."""
    if not isinstance(url, str):
        return {}
    parsed = urlsplit(url)
    return server_attributes(parsed.hostname, parsed.port, parsed.scheme)


def server_attributes(host: Any, port: Any, scheme: Any) -> dict[str, Any]:
    """`server.address` and `server.port` of the host the client sends to (the port as the conventions want it,
    the scheme's default when the URL has none)."""
    if not isinstance(host, str) or not host:
        return {}
    found: dict[str, Any] = {sc.SERVER_ADDRESS: host}
    port = port or {"https": 443, "http": 80}.get(scheme)
    if isinstance(port, int):
        found[sc.SERVER_PORT] = port
    return found


def end_span(span: Any, obs: StreamSummary, settings: Settings) -> None:
    attributes: dict[str, Any] = {sc.OUTCOME: obs.outcome}
    if obs.response_id:
        attributes[sc.RESPONSE_ID] = obs.response_id
    if obs.response_model:
        attributes[sc.RESPONSE_MODEL] = obs.response_model
    if obs.stop_reason:
        attributes[sc.FINISH_REASONS] = [obs.stop_reason]
    if obs.request_id:
        attributes[sc.REQUEST_ID] = obs.request_id
    if obs.attempts > 1:
        attributes[sc.RESEND_COUNT] = obs.attempts - 1
    usage = obs.usage
    if usage:
        attributes[sc.USAGE_INPUT] = billable_input_tokens(usage)
        for key, attribute in _USAGE_ATTRIBUTES:
            if key in usage:
                attributes[attribute] = usage[key]
    if obs.time_to_first_chunk_s is not None:
        attributes[sc.TIME_TO_FIRST_CHUNK] = obs.time_to_first_chunk_s
    for event_type, count in obs.events.items():
        attributes[sc.EVENTS_PREFIX + event_type] = count
    if obs.output_text:
        attributes[sc.OUTPUT_MESSAGES] = obs.output_text[: settings.content_max_length]
    span.set_attributes(attributes)
    if obs.error_type:
        span.set_attribute(sc.ERROR_TYPE, obs.error_type)
        span.set_status(Status(StatusCode.ERROR, obs.error_type))
    span.end()


_USAGE_ATTRIBUTES = (
    (sc.TOKEN_OUTPUT, sc.USAGE_OUTPUT),
    (sc.TOKEN_CACHE_READ, sc.USAGE_CACHE_READ),
    (sc.TOKEN_CACHE_CREATION, sc.USAGE_CACHE_CREATION),
)


def _truncate(value: Any, limit: int) -> str:
    try:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = str(value)
    return text[:limit]
