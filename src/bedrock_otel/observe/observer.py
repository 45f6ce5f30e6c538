"""One observer per streamed call: the per-event hot path and everything a stream learns until it ends.

Two layers of the SDK feed it (see docs/architecture.md):

- raw: `Stream._iter_events` yields every decoded `ServerSentEvent` before the SDK drops `ping` or raises on
  `error`. The hot loop here counts events by their wire name; everything but `content_block_delta` takes
  the rare path (`_on_event`).
- typed: `Stream.__stream__` yields what the caller gets. The hot loop skips items of classes known to be
  uninteresting; start and delta events carry usage, ids and the #1472 masquerade.

The stream ends exactly once (`finish`), whichever comes first: the typed generator returning, raising or
being closed, the caller closing the stream, the response being garbage-collected, or the request failing.
Metrics and span attributes are recorded only then.
"""

from __future__ import annotations

import json
import logging
import weakref
from array import array
from collections.abc import AsyncIterator, Iterator
from time import perf_counter_ns
from typing import Any, Protocol

from .. import semconv as sc
from ..errors import source_of
from . import classify, repair
from .labels import CallLabels
from .retry import InBandError, PendingRetry
from .summary import StreamSummary

log = logging.getLogger("bedrock_otel")

DELTA = sc.CONTENT_BLOCK_DELTA
_NEVER = object()  # a wire name that matches nothing: sends every event down the rare path
_NO_RETRIES: list[str] = []  # a summary's `retried` when nothing was (shared, never written to)


class _Replace:
    """Repair mode: what the caller gets instead of a masquerading item (nothing, or an exception)."""

    __slots__ = ("exception",)

    def __init__(self, exception: Exception | None) -> None:
        self.exception = exception


_DROP = _Replace(None)

# span-events levels
NONE, ERRORS, BOUNDARIES, ALL = range(4)
SPAN_EVENT_LEVELS = {"none": NONE, "errors": ERRORS, "boundaries": BOUNDARIES, "all": ALL}

# how a stream ended, as seen by the hook that noticed
BODY_ENDED, RAISED, CALLER_STOPPED = "body_ended", "raised", "caller_stopped"

# item classes: 0 = nothing to look at, 1 = *MessageStartEvent, 2 = *MessageDeltaEvent (learned per class)
_PLAIN, _START, _MESSAGE_DELTA = 0, 1, 2
_ITEM_KINDS: dict[type, int] = {}
_PLAIN_CLASSES: set[type] = set()


def _item_kind(cls: type) -> int:
    kind = _ITEM_KINDS.get(cls)
    if kind is None:
        name = cls.__name__
        kind = _START if name.endswith("MessageStartEvent") else _MESSAGE_DELTA if name.endswith(
            "MessageDeltaEvent") else _PLAIN
        _ITEM_KINDS[cls] = kind
        if kind == _PLAIN:
            _PLAIN_CLASSES.add(cls)
    return kind


class StreamSink(Protocol):
    """What an observer needs of the running instrumentation (`Runtime` is one): its settings, where its own
    failures are counted, and where an ended stream goes."""

    span_event_level: int
    capture_content: bool
    repair_mode: bool

    def internal_error(self, component: str) -> None: ...

    def warn_malformed(self, reason: str, event_type: str) -> None: ...

    def stream_ended(self, observer: StreamObserver, outcome: str, duration_ns: int) -> None: ...


class CallContext:
    """What one call learns from its HTTP attempts (set in a context variable while the call runs). `family` is
    the client family that made it (`families/`); `request` the call's own request while it runs (its identity:
    an inner call of the same family made with the same request is this one), released when it returns."""

    __slots__ = ("__weakref__", "attempts", "family", "labels", "pending_retry", "request", "request_id", "turn_at")

    def __init__(self, family: Any, labels: CallLabels, request: Any = None) -> None:
        self.family = family
        self.labels = labels
        self.request = request
        self.request_id: str | None = None
        self.attempts = 0
        # retry mode: an in-band error handed to the client as an HTTP error, resolved by the next attempt
        # (retried) or the end of the call (exhausted)
        self.pending_retry: PendingRetry | None = None
        self.turn_at = 0.0  # pressure mode: when the latest attempt took its turn to be sent (its clock)


class StreamObserver(CallContext):
    """Per-stream state. Holds no reference to the stream or its response, so lifetimes stay the client's."""

    __slots__ = (
        "_finalizer",
        "_open",
        "chunk_gaps",
        "counts",
        "deltas",
        "errors",
        "exception_type",
        "exhausted",
        "first_chunk_ns",
        "handled",
        "last_chunk_ns",
        "level",
        "malformed",
        "output_text",
        "response_id",
        "response_model",
        "retried",
        "sink",
        "span",
        "started_ns",
        "stop_reason",
        "taps",
        "typed_attached",
        "usage",
    )
    delta_event = DELTA  # the event that carries output (the hot path's; time to first chunk)
    stop_event = sc.MESSAGE_STOP  # the last event of a complete stream

    def __init__(self, family: Any, labels: CallLabels, request: Any, sink: StreamSink, span: Any,
                 started_ns: int) -> None:
        super().__init__(family, labels, request)
        self.sink = sink
        self.span = span
        self.level = sink.span_event_level if span is not None and span.is_recording() else NONE
        self.started_ns = started_ns
        self.first_chunk_ns: int | None = None
        self.last_chunk_ns = 0
        self.chunk_gaps = array("q")  # ns between consecutive content_block_deltas: 8 bytes each, no objects
        self.deltas = 0  # content_block_delta events seen on the hot path (a slot: cheaper than a dict entry)
        self.counts: dict[Any, int] = {}  # every other event, by wire name; bounded to contract values at the end
        self.malformed: list[tuple[str, str]] = []
        self.errors: list[tuple[str, str, str]] = []  # (error type, source, message)
        self.retried: list[tuple[str, str, str]] = []  # retry mode: in-band errors of attempts that were retried
        self.exhausted: str | None = None  # retry mode: the error type that was not retried (the caller got it)
        self.taps: list[Any] | None = None  # the tapped bodies of the attempts of a client with middleware
        self.handled: list[tuple[str, str, str]] = []  # in-band errors of bodies the caller did not get
        self.exception_type: str | None = None
        self.usage: dict[str, int] = {}
        self.response_id: str | None = None
        self.response_model: str | None = None
        self.stop_reason: str | None = None
        self.typed_attached = False
        self.output_text: list[str] | None = [] if sink.capture_content else None
        self._open = [True]  # list.pop() is atomic: the first finisher wins, from any thread
        self._finalizer: weakref.finalize | None = None

    def bind(self, response: object) -> None:
        """Tie the observer to the response: it ends as `abandoned` if the response is collected first."""
        self._finalizer = weakref.finalize(response, self.finish, CALLER_STOPPED)

    # -- raw layer: every decoded SSE event ---------------------------------------------------------

    def watch_events(self, events: Iterator[Any]) -> Iterator[Any]:
        hot = DELTA if self.level < ALL else _NEVER
        gap = self.chunk_gaps.append
        try:
            for sse in events:
                try:
                    name = sse._event  # what the `event` property returns, without a call per event
                except AttributeError:
                    name = sse.event
                if name == hot:
                    self.deltas += 1
                    now = perf_counter_ns()
                    if self.last_chunk_ns:
                        gap(now - self.last_chunk_ns)
                    else:
                        self.first_chunk_ns = now
                    self.last_chunk_ns = now
                else:
                    self._on_event(name, sse)
                yield sse
        except Exception as exc:
            self._on_raw_exception(exc)
            raise
        finally:
            events.close()  # type: ignore[attr-defined]
            if not self.typed_attached:
                self.finish(BODY_ENDED)

    async def awatch_events(self, events: AsyncIterator[Any]) -> AsyncIterator[Any]:
        hot = DELTA if self.level < ALL else _NEVER
        gap = self.chunk_gaps.append
        try:
            async for sse in events:
                try:
                    name = sse._event  # what the `event` property returns, without a call per event
                except AttributeError:
                    name = sse.event
                if name == hot:
                    self.deltas += 1
                    now = perf_counter_ns()
                    if self.last_chunk_ns:
                        gap(now - self.last_chunk_ns)
                    else:
                        self.first_chunk_ns = now
                    self.last_chunk_ns = now
                else:
                    self._on_event(name, sse)
                yield sse
        except Exception as exc:
            self._on_raw_exception(exc)
            raise
        finally:
            await events.aclose()  # type: ignore[attr-defined]
            if not self.typed_attached:
                self.finish(BODY_ENDED)

    def _output_chunk(self) -> None:
        """A `content_block_delta` off the hot path (the same bookkeeping as the hot path's, inlined there)."""
        now = perf_counter_ns()
        if self.last_chunk_ns:
            self.chunk_gaps.append(now - self.last_chunk_ns)
        else:
            self.first_chunk_ns = now
        self.last_chunk_ns = now

    def _on_event(self, name: Any, sse: Any) -> None:
        """The rare path: every event that is not a `content_block_delta` under a proper name."""
        try:
            payload: Any = None
            if name == "completion" or name is None:
                name, payload = self._resolve_unnamed(sse.data)
                if name is None:
                    return
            counts = self.counts
            counts[name] = counts.get(name, 0) + 1
            if name == DELTA:
                self._output_chunk()
            elif name == sc.ERROR:
                if payload is None:
                    payload = classify.decode_chunk(sse.data)
                error_type, message = classify.error_from_payload(payload)
                self.error_frame(error_type, source_of(error_type), message)
                return
            if self.level == ALL or (self.level == BOUNDARIES and name != sc.PING and name != DELTA):
                self.span.add_event(classify.event_type_label(name))
        except Exception:
            self.sink.internal_error("observer.event")

    def _resolve_unnamed(self, data: str) -> tuple[str | None, Any]:
        """Type of a chunk the SDK names `completion` (Bedrock <= 0.109) or not at all; flags type-less ones."""
        peeked = classify.peek_type(data)
        if peeked is not None and peeked != sc.ERROR:
            return peeked, None
        payload = classify.decode_chunk(data)
        if not isinstance(payload, dict):
            return sc.OTHER, payload  # undecodable: the SDK raises, and the typed layer reports it
        event_type = payload.get("type")
        if isinstance(event_type, str):
            return event_type, payload
        self.counts[sc.OTHER] = self.counts.get(sc.OTHER, 0) + 1
        if "completion" not in payload:  # a legacy Text Completions chunk is not malformed
            self.malformed_event(sc.NONE, sc.REASON_MISSING_TYPE)
        return None, payload

    def dropped_chunk(self, payload: Any) -> None:
        """A Bedrock frame the SDK decoder dropped (SDK >= 1.0 drops chunks without a type)."""
        try:
            self.counts[sc.OTHER] = self.counts.get(sc.OTHER, 0) + 1
            if isinstance(payload, dict) and not isinstance(payload.get("type"), str):
                if "completion" not in payload:
                    self.malformed_event(sc.NONE, sc.REASON_MISSING_TYPE)
        except Exception:
            self.sink.internal_error("observer.frame")

    def _on_raw_exception(self, exc: Exception) -> None:
        try:
            if isinstance(exc, ValueError):
                frame = classify.exception_frame_from_message(str(exc))
                if frame is not None:  # SDK <= 1.6: a Bedrock exception frame raised as ValueError
                    self.counts[sc.ERROR] = self.counts.get(sc.ERROR, 0) + 1
                    self.error_frame(frame[0], sc.SOURCE_EXCEPTION_FRAME, frame[1])
        except Exception:
            self.sink.internal_error("observer.exception")

    def error_frame(self, error_type: str, source: str, message: str) -> None:
        self.errors.append((error_type, source, message))
        self._error_frame_event(error_type, source, message)

    def _error_frame_event(self, error_type: str, source: str, message: str) -> None:
        if self.level >= ERRORS:
            attributes = {sc.ERROR_TYPE: error_type, sc.ERROR_SOURCE: source}
            if message:
                attributes[sc.ERROR_MESSAGE] = message[:512]
            self.span.add_event(sc.SPAN_EVENT_ERROR_FRAME, attributes)

    def malformed_event(self, carried_type: str, reason: str) -> None:
        self.malformed.append((carried_type, reason))
        if self.level >= ERRORS:
            self.span.add_event(sc.SPAN_EVENT_MALFORMED, {sc.MALFORMED_REASON: reason, sc.EVENT_TYPE: carried_type})
        if self.labels.api == sc.API_MESSAGES:  # the warning is about the SDK's handling, which boto3 has none of
            self.sink.warn_malformed(reason, carried_type)

    # -- retry mode: attempts whose stream opened with a retryable in-band error ----------------------

    def absorb(self, events: list[str], error: InBandError) -> None:
        """The events read ahead of an attempt that the SDK now handles as an HTTP error (counted as they
        arrived on the wire; the error is the call's only if no further attempt is made)."""
        counts = self.counts
        for name in events:
            counts[name] = counts.get(name, 0) + 1
        self._error_frame_event(error.error_type, error.source, error.message)
        self.pending_retry = PendingRetry(error, self.attempts, perf_counter_ns())

    def retrying(self) -> None:
        """The client sends another attempt after a pending in-band error: that error was retried."""
        pending, self.pending_retry = self.pending_retry, None
        if pending is None:
            return
        error = pending.error
        self.retried.append((error.error_type, error.source, error.message))
        if self.level >= ERRORS:
            delay = (perf_counter_ns() - pending.at_ns) / 1e9
            self.span.add_event(sc.SPAN_EVENT_RETRY, {sc.RETRY_ATTEMPT: pending.attempt,
                                                      sc.ERROR_TYPE: error.error_type, sc.RETRY_DELAY: delay})

    def _resolve_exhausted(self) -> None:
        """At the end of the call, a pending in-band error was not retried: it is what the call failed with."""
        pending, self.pending_retry = self.pending_retry, None
        if pending is not None:
            error = pending.error
            self.exhausted = error.error_type
            self.errors.insert(0, (error.error_type, error.source, error.message))

    def settle_taps(self, returned: Any) -> None:
        """The call returned `returned` (the response of the stream the caller got) or raised (None): each other
        attempt's body that something read (a middleware) is parsed as far as it was read, and its events and
        in-band error are counted as they came on the wire. The caller's own body is the stream hooks' to see."""
        taps, self.taps = self.taps, None
        for tapped in taps or ():
            chunks = tapped.settle()
            if not chunks or tapped.response() is returned:
                continue
            look = tapped.look
            for chunk in chunks:
                if look.feed(chunk):
                    break
            if look.failed:  # bedrock_otel's own failure, at the end of the call
                self.sink.internal_error(self.family.components.call)
            if look.error is not None:
                counts = self.counts
                for name in look.events:
                    counts[name] = counts.get(name, 0) + 1
                self.handled.append(look.error)
                self._error_frame_event(*look.error)

    # -- typed layer: what the caller gets ----------------------------------------------------------

    def watch_items(self, items: Iterator[Any], response: Any) -> Iterator[Any]:
        self.typed_attached = True
        plain = _PLAIN_CLASSES if self.output_text is None else frozenset()
        how, error = BODY_ENDED, None
        try:
            for item in items:
                if type(item) not in plain:  # type(): item.__class__ goes through pydantic's __getattr__ hook
                    item = self._on_item(item, response)
                    if type(item) is _Replace:
                        if item.exception is None:
                            continue
                        raise item.exception
                yield item
        except Exception as exc:
            how, error = RAISED, exc
            replacement = self._on_exception(exc, response)
            if replacement is not None:
                raise replacement from exc
            raise
        except BaseException:  # GeneratorExit, KeyboardInterrupt, CancelledError: the caller stopped
            how = CALLER_STOPPED
            raise
        finally:
            items.close()  # type: ignore[attr-defined]
            self.finish(how, error)

    async def awatch_items(self, items: AsyncIterator[Any], response: Any) -> AsyncIterator[Any]:
        self.typed_attached = True
        plain = _PLAIN_CLASSES if self.output_text is None else frozenset()
        how, error = BODY_ENDED, None
        try:
            async for item in items:
                if type(item) not in plain:  # type(): item.__class__ goes through pydantic's __getattr__ hook
                    item = self._on_item(item, response)
                    if type(item) is _Replace:
                        if item.exception is None:
                            continue
                        raise item.exception
                yield item
        except Exception as exc:
            how, error = RAISED, exc
            replacement = self._on_exception(exc, response)
            if replacement is not None:
                raise replacement from exc
            raise
        except BaseException:  # GeneratorExit, KeyboardInterrupt, CancelledError: the caller stopped
            how = CALLER_STOPPED
            raise
        finally:
            await items.aclose()  # type: ignore[attr-defined]
            self.finish(how, error)

    def _on_item(self, item: Any, response: Any) -> Any:
        try:
            kind = _item_kind(type(item))
            if kind == _START:
                message = getattr(item, "message", None)
                if message is None:
                    return self._on_masquerade(item, response)
                self.response_id = getattr(message, "id", None)
                self.response_model = getattr(message, "model", None)
                self._take_usage(getattr(message, "usage", None))
            elif kind == _MESSAGE_DELTA:
                self._take_usage(getattr(item, "usage", None))
                self.stop_reason = getattr(getattr(item, "delta", None), "stop_reason", None) or self.stop_reason
            elif self.output_text is not None:
                text = getattr(getattr(item, "delta", None), "text", None)
                if isinstance(text, str):
                    self.output_text.append(text)
        except Exception:
            self.sink.internal_error("observer.item")
        return item

    def _on_masquerade(self, item: Any, response: Any) -> Any:
        """#1472: a *MessageStartEvent with no message; `type` tells what the chunk really was."""
        carried = getattr(item, "type", None)
        if carried is not None:  # type-less chunks were already counted by the raw layer
            self.malformed_event(classify.carried_type_label(carried), sc.REASON_START_WITHOUT_MESSAGE)
        if not self.sink.repair_mode:
            return item
        if carried == sc.ERROR:
            return _Replace(repair.exception_for(_item_payload(item), response))
        return _DROP

    def _on_exception(self, exc: Exception, response: Any) -> Exception | None:
        """Note why the stream failed; in repair mode return the exception the caller should get instead."""
        try:
            self.exception_type = type(exc).__name__
            if isinstance(exc, json.JSONDecodeError):
                self.malformed_event(sc.NONE, sc.REASON_INVALID_JSON)
            if self.sink.repair_mode:
                return repair.replacement_for(exc, self.errors, response)
        except Exception:
            self.sink.internal_error("observer.exception")
        return None

    def _take_usage(self, usage: Any) -> None:
        if usage is None:
            return
        for field, key in USAGE_FIELDS:
            value = getattr(usage, field, None)
            if isinstance(value, int):
                self.usage[key] = value  # message_delta usage is cumulative: the last value is the total

    # -- the end --------------------------------------------------------------------------------------

    def outcome(self, how: str) -> str:
        if self.errors or how == RAISED:
            return sc.OUTCOME_ERROR
        if self.counts.get(self.stop_event):
            return sc.OUTCOME_COMPLETED
        return sc.OUTCOME_ABANDONED if how == CALLER_STOPPED else sc.OUTCOME_TRUNCATED

    def summary(self, outcome: str, duration_ns: int) -> StreamSummary:
        """What this stream hands to telemetry, built once: event types bounded, error frames in order."""
        events: dict[str, int] = {}
        for name, count in self.counts.items():
            if count:
                label = classify.event_type_label(name)
                events[label] = events.get(label, 0) + count
        if self.deltas:  # the delta type may also be in `counts`
            label = classify.event_type_label(self.delta_event)
            events[label] = events.get(label, 0) + self.deltas
        failed = outcome == sc.OUTCOME_ERROR
        retried = self.retried
        return StreamSummary(
            self.labels, outcome, duration_ns / 1e9, events, self.malformed,
            [*retried, *self.handled, *self.errors] if retried or self.handled else self.errors,
            [error[0] for error in retried] if retried else _NO_RETRIES, self.exhausted,
            ((self.errors[0][0] if self.errors else self.exception_type) or sc.OTHER) if failed else "",
            None if self.first_chunk_ns is None else (self.first_chunk_ns - self.started_ns) / 1e9,
            self.chunk_gaps, self.usage, self.response_id, self.response_model, self.stop_reason, self.request_id,
            self.attempts, "".join(self.output_text) if self.output_text else None)

    def is_open(self) -> bool:
        return bool(self._open)

    def disown(self) -> None:
        """End without recording or ending the span (a forked child's copy of a stream of its parent's)."""
        try:
            self._open.pop()
        except IndexError:
            return
        if self._finalizer is not None:
            self._finalizer.detach()

    def finish(self, how: str, error: BaseException | None = None) -> None:
        try:
            self._open.pop()
        except IndexError:
            return  # already ended
        try:
            if self._finalizer is not None:
                self._finalizer.detach()
            if self.pending_retry is not None:
                self._resolve_exhausted()
            if error is not None and self.exception_type is None:
                self.exception_type = type(error).__name__
            self.sink.stream_ended(self, self.outcome(how), perf_counter_ns() - self.started_ns)
        except Exception:
            self.sink.internal_error("observer.finish")


USAGE_FIELDS = (  # the Messages API's usage fields, by token type
    ("input_tokens", sc.TOKEN_INPUT),
    ("output_tokens", sc.TOKEN_OUTPUT),
    ("cache_read_input_tokens", sc.TOKEN_CACHE_READ),
    ("cache_creation_input_tokens", sc.TOKEN_CACHE_CREATION),
)


def _item_payload(item: Any) -> dict[str, Any]:
    """The wire payload behind a masquerading item (`to_dict()` restores it exactly)."""
    to_dict = getattr(item, "to_dict", None) or getattr(item, "dict", None)
    payload = to_dict() if callable(to_dict) else {}
    return payload if isinstance(payload, dict) else {}

