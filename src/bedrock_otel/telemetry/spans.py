"""The CLIENT span of a streamed call: started with the request, ended once with the stream."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from .. import semconv as sc
from ..observe import classify
from .measurements import billable_input_tokens

if TYPE_CHECKING:
    from ..config import Settings
    from ..observe.labels import CallLabels
    from ..observe.observer import StreamObserver


def start_span(tracer: Tracer, labels: CallLabels, settings: Settings, options: Any, client: Any) -> Any:
    attributes = labels.span_attributes()
    attributes[sc.REQUEST_STREAM] = True
    _server(attributes, client)
    body = getattr(options, "json_data", None)
    if isinstance(body, dict):
        for key, attribute in sc.REQUEST_PARAMETERS:
            value = body.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                attributes[attribute] = value
        if settings.capture_content and "messages" in body:
            attributes[sc.INPUT_MESSAGES] = _truncate(body["messages"], settings.content_max_length)
    name = f"{sc.OPERATION_CHAT} {labels.model}" if labels.model else sc.OPERATION_CHAT
    return tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)


def _server(attributes: dict[str, Any], client: Any) -> None:
    """`server.address` and `server.port` from the client's base URL (the host the SDK sends to; the port as
    the conventions want it, the scheme's default when the URL has none)."""
    url = getattr(client, "base_url", None)
    host = getattr(url, "host", None)
    if isinstance(host, str) and host:
        attributes[sc.SERVER_ADDRESS] = host
        port = getattr(url, "port", None) or {"https": 443, "http": 80}.get(getattr(url, "scheme", ""))
        if isinstance(port, int):
            attributes[sc.SERVER_PORT] = port


def end_span(span: Any, obs: StreamObserver, outcome: str, settings: Settings) -> None:
    attributes: dict[str, Any] = {sc.OUTCOME: outcome}
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
    if obs.first_chunk_ns is not None:
        attributes[sc.TIME_TO_FIRST_CHUNK] = (obs.first_chunk_ns - obs.started_ns) / 1e9
    for name, count in obs.event_counts():
        if count:
            key = sc.EVENTS_PREFIX + classify.event_type_label(name)
            attributes[key] = attributes.get(key, 0) + count
    if obs.output_text:
        attributes[sc.OUTPUT_MESSAGES] = "".join(obs.output_text)[: settings.content_max_length]
    span.set_attributes(attributes)
    if outcome == sc.OUTCOME_ERROR:
        error_type = obs.error_type() or sc.OTHER
        span.set_attribute(sc.ERROR_TYPE, error_type)
        span.set_status(Status(StatusCode.ERROR, error_type))
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
