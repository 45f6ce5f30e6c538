"""The botocore family: boto3's `bedrock-runtime` streams of Claude. Which calls are observed, their labels, and
the observer of their events.

A call is `BaseClient._make_api_call(operation, params)` (its `request` here is `(operation, params)`, and
`params` its identity while it runs); its attempts are botocore `AWSResponse`s; its stream is the `EventStream`
under the result's `body` (invoke) or `stream` (Converse) key.

botocore hands the application an `EventStream` whose iterator yields parsed events, one dict per frame:

- InvokeModelWithResponseStream: `{"chunk": {"bytes": b'{"type":"content_block_delta",...}'}}`, the Anthropic
  Messages events inside `chunk.bytes`, counted with the SDK path's event types;
- ConverseStream: `{"contentBlockDelta": {...}}` and the other Converse events, counted by their wire names.

An exception frame (`throttlingException`, ...) makes the iterator raise botocore's `EventStreamError`, whose error
code is the AWS exception name: it counts as an `error` event and an error frame with source `exception_frame`.
The hot loop matches `content_block_delta` / `contentBlockDelta` and hands every other event to the rare path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, Callable

from .. import semconv as sc
from ..errors import source_of
from ..observe import classify, replay
from ..observe.labels import CallLabels
from ..observe.live import LIVE
from ..observe.observer import ALL, BODY_ENDED, BOUNDARIES, CALLER_STOPPED, RAISED, USAGE_FIELDS, StreamObserver
from ..observe.retry import Lookahead
from ..telemetry.spans import server_of_url
from . import Call, Components, Family, numeric_parameters

SERVICE = "bedrock-runtime"
# botocore operation -> anthropic.stream.api, and the key of the EventStream in the operation's result
OPERATIONS = {"InvokeModelWithResponseStream": (sc.API_INVOKE, "body"), "ConverseStream": (sc.API_CONVERSE, "stream")}
_DELTA_CHUNK = b'{"type":"content_block_delta"'  # how Bedrock serialises a delta chunk: `type` first, compact
_NEVER = b"\x00"  # a prefix no chunk starts with: every event takes the rare path
_CONVERSE_USAGE = (("inputTokens", sc.TOKEN_INPUT), ("outputTokens", sc.TOKEN_OUTPUT),
                   ("cacheReadInputTokens", sc.TOKEN_CACHE_READ), ("cacheWriteInputTokens", sc.TOKEN_CACHE_CREATION))


def observed_api(client: Any, operation: str, params: Mapping[str, Any]) -> tuple[str, str] | None:
    """(api, result key) if this call is a bedrock-runtime stream of an Anthropic model, else None."""
    found = OPERATIONS.get(operation)
    if found is None or client.meta.service_model.service_name != SERVICE:
        return None
    model = params.get("modelId")
    if not isinstance(model, str) or not is_anthropic(model, found[0], params):
        return None
    return found


def is_anthropic(model: str, api: str, params: Mapping[str, Any]) -> bool:
    """Whether the model is Claude: named in the id (`anthropic.claude-…`, `us.anthropic.claude-…`, the same in a
    foundation-model or inference-profile ARN); for an ARN that names no model (application inference profile,
    provisioned throughput), only an invoke body declaring `anthropic_version` tells (Converse bodies never do)."""
    parts = model.rsplit("/", 1)[-1].split(".")
    if "anthropic" in parts[:2] and len(parts) >= 2:
        return True
    if api != sc.API_INVOKE or not model.startswith("arn:"):
        return False
    body = params.get("body")
    if isinstance(body, (bytes, bytearray)):
        return b'"anthropic_version"' in body
    return isinstance(body, str) and '"anthropic_version"' in body


def event_stream_of(value: Any) -> Any:
    """The botocore EventStream itself under any proxies (the OpenTelemetry botocore instrumentation wraps it)."""
    for _ in range(8):
        inner = getattr(value, "__wrapped__", None)
        if inner is None:
            break
        value = inner
    return value


class BotoStreamObserver(StreamObserver):
    """A StreamObserver fed by a botocore EventStream instead of the SDK's two layers."""

    __slots__ = ()

    def watch(self, events: Iterator[Any], stream: Any) -> Iterator[Any]:
        """The EventStream's iterator, observed: the same events and exceptions, in the same order. Holding
        `stream` keeps it alive until the loop has ended: botocore's generator lets go of it as it finishes, and
        its collection would end the stream as abandoned before the end of the body is seen."""
        converse = self.labels.api == sc.API_CONVERSE
        plain = self.level < ALL and self.output_text is None
        delta_key, prefix = sc.CONVERSE_BLOCK_DELTA, _DELTA_CHUNK if plain else _NEVER
        how: str = BODY_ENDED
        error: BaseException | None = None
        try:
            for event in events:
                if converse:
                    hot = plain and delta_key in event
                else:
                    chunk = event.get("chunk")
                    hot = chunk is not None and chunk.get("bytes", b"").startswith(prefix)
                if hot:
                    self.deltas += 1
                    self._output_chunk()
                else:
                    self._on_boto_event(event, converse)
                yield event
        except Exception as exc:
            how, error = RAISED, exc
            self._on_stream_exception(exc)
            raise
        except BaseException:  # GeneratorExit (break, close, collection), KeyboardInterrupt: the caller stopped
            how = CALLER_STOPPED
            raise
        finally:
            self.finish(how, error)
            del stream

    def _on_boto_event(self, event: Any, converse: bool) -> None:
        try:
            name = self._converse_event(event) if converse else self._invoke_chunk(event)
            if name is None:
                return
            counts = self.counts
            counts[name] = counts.get(name, 0) + 1
            if self.level == ALL or (self.level == BOUNDARIES and name not in (sc.PING, self.delta_event)):
                self.span.add_event(classify.event_type_label(name))
        except Exception:
            self.sink.internal_error("observer.boto_event")

    def _converse_event(self, event: Any) -> str | None:
        name = next(iter(event), sc.OTHER)
        body = event.get(name)
        if not isinstance(body, dict):
            return name
        if name == sc.CONVERSE_BLOCK_DELTA:
            self._content_delta(body.get("delta"))
        elif name == sc.CONVERSE_MESSAGE_STOP:
            self.stop_reason = body.get("stopReason") or self.stop_reason
        elif name == sc.CONVERSE_METADATA:
            self._take_counts(body.get("usage"), _CONVERSE_USAGE)
        return name

    def _invoke_chunk(self, event: Any) -> str | None:
        """The Anthropic event inside a `chunk`: its type, or None when it has none (flagged, as on the SDK path)."""
        chunk = event.get("chunk")
        payload = classify.decode_chunk(chunk.get("bytes")) if isinstance(chunk, dict) else None
        if payload is classify.INVALID_JSON:
            self.counts[sc.OTHER] = self.counts.get(sc.OTHER, 0) + 1
            self.malformed_event(sc.NONE, sc.REASON_INVALID_JSON)
            return None
        name = payload.get("type") if isinstance(payload, dict) else None
        if not isinstance(name, str):
            self.dropped_chunk(payload)  # counted _OTHER; flagged unless a legacy completion chunk
            return None
        if name == sc.CONTENT_BLOCK_DELTA:
            self._content_delta(payload.get("delta"))
        elif name == sc.MESSAGE_START:
            message = payload.get("message")
            if not isinstance(message, dict):  # the #1472 shape on the wire: a start event with no message
                self.malformed_event(sc.MESSAGE_START, sc.REASON_START_WITHOUT_MESSAGE)
            else:
                self.response_id, self.response_model = message.get("id"), message.get("model")
                self._take_counts(message.get("usage"), USAGE_FIELDS)
        elif name == sc.MESSAGE_DELTA:
            self._take_counts(payload.get("usage"), USAGE_FIELDS)
            delta = payload.get("delta")
            if isinstance(delta, dict):
                self.stop_reason = delta.get("stop_reason") or self.stop_reason
        elif name == sc.ERROR:
            error_type, message = classify.error_from_payload(payload)
            self.error_frame(error_type, source_of(error_type), message)
        return name

    def _take_counts(self, usage: Any, fields: tuple[tuple[str, str], ...]) -> None:
        if isinstance(usage, dict):
            for field, key in fields:
                value = usage.get(field)
                if isinstance(value, int):
                    self.usage[key] = value  # cumulative where repeated: the last value is the total

    def _content_delta(self, delta: Any) -> None:
        """An output chunk off the hot path; with content capture, its text (`{"text": ...}` on both APIs)."""
        self._output_chunk()
        if self.output_text is not None:
            text = delta.get("text") if isinstance(delta, dict) else None
            if isinstance(text, str):
                self.output_text.append(text)

    def _on_stream_exception(self, exc: Exception) -> None:
        """An exception frame (botocore's EventStreamError: the AWS exception name is its error code)."""
        try:
            self.exception_type = type(exc).__name__
            response = getattr(exc, "response", None)
            if self.exception_type != "EventStreamError" or not isinstance(response, dict):
                return
            error = response.get("Error") or {}
            self.counts[sc.ERROR] = self.counts.get(sc.ERROR, 0) + 1
            message = error.get("Message")
            self.error_frame(classify.error_type_label(error.get("Code")), sc.SOURCE_EXCEPTION_FRAME,
                             message if isinstance(message, str) else "")
        except Exception:
            self.sink.internal_error("observer.exception")


class ConverseStreamObserver(BotoStreamObserver):
    """ConverseStream: the output event and the last event of a complete stream have Converse's names."""

    __slots__ = ()
    delta_event = sc.CONVERSE_BLOCK_DELTA
    stop_event = sc.CONVERSE_MESSAGE_STOP


class BotoFamily(Family):
    components = Components(call="hooks.boto_call", send="hooks.boto_send", stream="hooks.boto_stream",
                            close="hooks.boto_stream")
    observers = {sc.API_INVOKE: BotoStreamObserver, sc.API_CONVERSE: ConverseStreamObserver}

    def call(self, client: Any, request: Any, cap_model: Callable[[str], str]) -> Call | None:
        """A bedrock-runtime stream of Claude (see `observed_api`), else None."""
        operation, params = request
        found = observed_api(client, operation, params)
        if found is None:
            return None
        model: str = params["modelId"]
        region = classify.region_label(getattr(client.meta, "region_name", None))
        labels = CallLabels(sc.PROVIDER_BEDROCK, sc.PLATFORM_BEDROCK, cap_model(model), region,
                            classify.inference_profile(model), found[0])
        return labels, True, params

    def span_attributes(self, client: Any, request: Any) -> dict[str, Any]:
        """`server.*`, and Converse's numeric inference parameters under the GenAI names (an invoke body is not
        parsed: it is the application's JSON, possibly large, and parsing it would cost per call)."""
        operation, params = request
        config = params.get("inferenceConfig") if OPERATIONS[operation][0] == sc.API_CONVERSE else None
        attributes = server_of_url(getattr(client.meta, "endpoint_url", None))
        attributes.update(numeric_parameters(config, sc.CONVERSE_REQUEST_PARAMETERS))
        return attributes

    def request_messages(self, request: Any) -> Any:
        operation, params = request
        if OPERATIONS[operation][0] == sc.API_CONVERSE:
            return params.get("messages")
        body = params.get("body")
        try:
            return json.loads(body).get("messages") if isinstance(body, (bytes, bytearray, str)) else None
        except (ValueError, AttributeError):
            return None

    def find(self, stream: Any) -> StreamObserver | None:
        """By the EventStream itself; only while its stream is open (a later iteration yields nothing new)."""
        observer = LIVE.get(stream)
        return observer if observer is not None and observer.is_open() else None

    def returned_stream(self, ctx: StreamObserver, result: Any) -> Any:
        """The EventStream under the result's key for the call's operation."""
        return event_stream_of(result.get(_RESULT_KEYS[ctx.labels.api])) if isinstance(result, dict) else None

    def refusal(self, request: Any) -> Any:
        return replay.aws_refusal(request)

    def read_ahead(self, response: Any) -> tuple[Any, Lookahead | None]:
        return replay.read_ahead_aws(response)


BOTO = BotoFamily()
_RESULT_KEYS = {api: key for api, key in OPERATIONS.values()}
