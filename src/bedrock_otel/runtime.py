"""The live instrumentation: settings, recorders and tracer, and what the hooks call into.

`ACTIVE` is the one running `Runtime` (None when not instrumented). Hooks read it on every call, so
uninstrumenting stops all recording at once, even for streams that are still open.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import weakref
from collections.abc import Iterable
from functools import partial
from time import perf_counter_ns
from typing import Any, Callable

from opentelemetry import context as otel_context
from opentelemetry import trace

from . import semconv as sc
from .config import Settings
from .observe import boto, classify, repair, retry
from .observe.labels import labels_for
from .observe.observer import NONE, SPAN_EVENT_LEVELS, CallContext, StreamObserver
from .telemetry import catalog, measurements
from .telemetry.spans import end_span, open_span, server_of_url, start_span

log = logging.getLogger("bedrock_otel")

ACTIVE: Runtime | None = None
CURRENT_CALL: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar("bedrock_otel_call", default=None)

# httpx(2).Response -> observer of the stream reading it (weak: the SDK decides the response's lifetime)
OBSERVERS: weakref.WeakKeyDictionary[Any, StreamObserver] = weakref.WeakKeyDictionary()
# AWSEventStreamDecoder -> observer, for frames the decoder drops before any stream hook sees them
DECODERS: weakref.WeakKeyDictionary[Any, StreamObserver] = weakref.WeakKeyDictionary()
# botocore EventStream -> observer of the bedrock-runtime call that returned it
BOTO_STREAMS: weakref.WeakKeyDictionary[Any, boto.BotoStreamObserver] = weakref.WeakKeyDictionary()

_WARNING_INTERVAL_S = 60.0
_warning_lock = threading.Lock()
_last_warning = [-_WARNING_INTERVAL_S]  # per process, across instrument() calls


class ActiveCall:
    """One SDK (or botocore) call in progress: its context is current (for the attempt hook, and the span for
    tracing); `on_end` takes what the call returned or raised."""

    __slots__ = ("_call_token", "_otel_token", "ctx", "on_end")

    def __init__(self, on_end: Callable[[Any, Any, BaseException | None], None], ctx: CallContext,
                 otel_token: Any) -> None:
        self.on_end = on_end
        self.ctx = ctx
        self._otel_token = otel_token
        self._call_token = CURRENT_CALL.set(ctx)

    def end(self, result: Any = None, error: BaseException | None = None) -> None:
        CURRENT_CALL.reset(self._call_token)
        if self._otel_token is not None:
            otel_context.detach(self._otel_token)
        self.on_end(self.ctx, result, error)


class Runtime:
    def __init__(self, settings: Settings, recorders: Iterable[Any], tracer: Any) -> None:
        self.settings = settings
        self.recorders = tuple(recorders)
        self.tracer = tracer if settings.traces else None
        self.span_event_level = SPAN_EVENT_LEVELS[settings.span_events]
        self._model_cap = classify.ValueCap(settings.max_models)
        self.repair = repair
        self._record_baseline()

    def _record_baseline(self) -> None:
        """The self-telemetry series, at 0 from the start: an absent series then means missing telemetry."""
        self.record([(catalog.INTERNAL_ERRORS, (component,), 0) for component in sc.INTERNAL_COMPONENTS])
        self.record([(catalog.TELEMETRY_DROPPED, (reason,), 0) for reason in sc.DROPPED_REASONS])

    def restart_in_child(self, tracer: Any) -> None:
        """In a forked child whose recorders forgot the parent's values: this process's own model cap, the
        baseline again, and a tracer carrying the child's resource."""
        self._model_cap = classify.ValueCap(self.settings.max_models)
        self._record_baseline()
        if self.tracer is not None:
            self.tracer = tracer

    def cap_model(self, model: str) -> str:
        """The model label: the id itself, or `_OTHER` (counted as dropped) past BEDROCK_OTEL_MAX_MODELS ids."""
        capped = self._model_cap(model)
        if capped is sc.OTHER:
            log.debug("bedrock_otel: model %r recorded as %s (BEDROCK_OTEL_MAX_MODELS=%d reached)", model, sc.OTHER,
                      self._model_cap.limit)
            self.record([(catalog.TELEMETRY_DROPPED, (sc.DROPPED_LABEL_OVERFLOW,), 1)])
        return capped

    # -- calls (SyncAPIClient.request / AsyncAPIClient.request) -------------------------------------

    def start_call(self, client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ActiveCall | None:
        """Enter one SDK call: its context (for streams, an observer with a current span). Never raises."""
        try:
            options = args[1] if len(args) > 1 else kwargs.get("options")
            labels = labels_for(client, options, self.cap_model)
            if not kwargs.get("stream"):
                return ActiveCall(self.end_call, CallContext(labels), None)
            started = perf_counter_ns()
            span = None
            if self.tracer is not None:
                span = start_span(self.tracer, labels, self.settings, options, client)
            return self._stream_call(StreamObserver(self, labels, span, started), self.end_call)
        except Exception:
            self.internal_error("hooks.request")
            return None

    def _stream_call(self, observer: StreamObserver, on_end: Callable[[Any, Any, BaseException | None], None]
                     ) -> ActiveCall:
        """A streamed call starts: in flight from now, its span current while the client sends."""
        span = observer.span
        if span is not None and not span.is_recording():
            observer.level = NONE
        self.record(measurements.stream_started(observer.labels))
        token = otel_context.attach(trace.set_span_in_context(span)) if span is not None else None
        return ActiveCall(on_end, observer, token)

    def end_call(self, ctx: CallContext, result: Any = None, error: BaseException | None = None) -> None:
        """The call returned (a stream for streamed calls) or raised before any stream existed."""
        try:
            if not isinstance(ctx, StreamObserver):
                return
            response = getattr(result, "response", None) or getattr(result, "http_response", None)
            _watch_or_end(ctx, error, response, OBSERVERS)
        except Exception:
            self.internal_error("hooks.request")

    # -- botocore calls (BaseClient._make_api_call): bedrock-runtime streams of Claude ------------------

    def start_boto_call(self, client: Any, operation: str, params: Any) -> ActiveCall | None:
        """Enter a botocore call if it is an observed stream (see `observe/boto.py`), else None. Never raises."""
        try:
            found = boto.observed_api(client, operation, params)
            if found is None:
                return None
            api = found[0]
            started = perf_counter_ns()
            labels = boto.labels_for(client, api, params, self.cap_model)
            span = None
            if self.tracer is not None:
                request = {**server_of_url(getattr(client.meta, "endpoint_url", None)),
                           **boto.request_parameters(api, params)}
                span = open_span(self.tracer, labels, self.settings, request,
                                 lambda: boto.request_messages(api, params))
            observer = boto.observer_class(api)(self, labels, span, started)
            observer.params = params
            return self._stream_call(observer, partial(self.end_boto_call, found[1]))
        except Exception:
            self.internal_error("hooks.boto_call")
            return None

    def end_boto_call(self, key: str, ctx: CallContext, result: Any, error: BaseException | None) -> None:
        """The call returned its EventStream (under `key` of the result), or raised before any stream existed."""
        try:
            if not isinstance(ctx, boto.BotoStreamObserver):
                return
            ctx.params = None  # the call is over: let the request go
            stream = boto.event_stream_of(result.get(key)) if isinstance(result, dict) else None
            _watch_or_end(ctx, error, stream, BOTO_STREAMS)
        except Exception:
            self.internal_error("hooks.boto_call")

    def boto_observer_for(self, stream: Any) -> boto.BotoStreamObserver | None:
        """The observer of an EventStream being iterated, if it is an open observed stream."""
        try:
            observer = BOTO_STREAMS.get(stream)
            return observer if observer is not None and observer.is_open() else None
        except Exception:
            self.internal_error("hooks.boto_stream")
            return None

    def boto_closed(self, stream: Any) -> None:
        try:
            observer = BOTO_STREAMS.get(stream)
            if observer is not None:
                observer.finish("caller_stopped")
        except Exception:
            self.internal_error("hooks.boto_stream")

    # -- HTTP attempts (httpx / httpx2 Client.send) --------------------------------------------------

    def http_response(self, ctx: CallContext, response: Any) -> None:
        """One HTTP attempt's httpx response."""
        try:
            if isinstance(ctx, StreamObserver):  # first: whatever fails below, the stream must find its observer
                OBSERVERS[response] = ctx  # SDKs <= 1.13 build the Stream before `request()` returns
            self._attempt(ctx, response)
        except Exception:
            self.internal_error("hooks.send")

    def boto_response(self, ctx: CallContext, response: Any) -> None:
        """One HTTP attempt's botocore `AWSResponse`."""
        try:
            self._attempt(ctx, response)
        except Exception:
            self.internal_error("hooks.boto_send")

    def _attempt(self, ctx: CallContext, response: Any) -> None:
        headers = classify.headers_read(response.headers)
        ctx.attempts += 1
        ctx.request_id = classify.request_id(headers) or ctx.request_id
        self.record(measurements.http_response(ctx.labels, response.status_code, headers))

    # -- retry mode (around the same HTTP attempts) ----------------------------------------------------

    def read_ahead(self, ctx: CallContext, response: Any, read: Callable[[Any], Any] = retry.read_ahead) -> Any:
        """The response the client gets for this attempt of a streamed call (see `observe/retry.py`): `read` is
        the SDK's look-ahead (httpx), or botocore's (`read_ahead_aws`)."""
        if not isinstance(ctx, StreamObserver):
            return response
        response, look = read(response)
        if look is not None:
            self._looked_ahead(ctx, look)
        return response

    async def aread_ahead(self, ctx: CallContext, response: Any) -> Any:
        if not isinstance(ctx, StreamObserver):
            return response
        response, look = await retry.aread_ahead(response)
        if look is not None:
            self._looked_ahead(ctx, look)
        return response

    def _looked_ahead(self, observer: StreamObserver, look: retry.Lookahead) -> None:
        if look.failed:
            self.internal_error("retry.read_ahead")
        if look.retryable is not None:
            try:
                observer.absorb(look.events, look.retryable)
            except Exception:
                self.internal_error("retry.read_ahead")

    def retrying(self, ctx: CallContext) -> None:
        """The SDK sends another attempt of a call whose last attempt opened with a retryable in-band error."""
        try:
            if isinstance(ctx, StreamObserver):
                ctx.retrying()
        except Exception:
            self.internal_error("retry.read_ahead")

    # -- streams ---------------------------------------------------------------------------------------

    def observer_for(self, stream: Any) -> StreamObserver | None:
        """The observer of a Stream (or its copy, SDK >= 1.14); adopts streams made outside `request()`."""
        try:
            response = stream.response
            observer = OBSERVERS.get(response)
            if observer is None:
                labels = labels_for(stream._client, None, self.cap_model)
                observer = StreamObserver(self, labels, None, perf_counter_ns())
                self.record(measurements.stream_started(labels))
                OBSERVERS[response] = observer
                observer.bind(response)
            decoder = getattr(stream, "_decoder", None)
            if decoder is not None and type(decoder).__name__ == "AWSEventStreamDecoder":
                DECODERS[decoder] = observer
            return observer
        except Exception:
            self.internal_error("hooks.stream")
            return None

    def caller_closed(self, stream: Any) -> None:
        try:
            observer = OBSERVERS.get(stream.response)
            if observer is not None:
                observer.finish("caller_stopped")
        except Exception:
            self.internal_error("hooks.close")

    def dropped_frame(self, decoder: Any, event: Any) -> None:
        try:
            observer = DECODERS.get(decoder)
            if observer is not None:
                observer.dropped_chunk(_frame_payload(event))
        except Exception:
            self.internal_error("hooks.frame")

    def stream_finished(self, observer: StreamObserver, outcome: str, duration_ns: int) -> None:
        if self.recorders:  # one batch per recorder
            batch = list(measurements.stream_ended(observer.labels))
            # uninstrumented while the stream was open: close what it opened (gauge, span), record nothing more
            if ACTIVE is self:
                batch += measurements.stream_finished(observer, outcome, duration_ns / 1e9)
            self.record(batch)
        if observer.span is not None:
            end_span(observer.span, observer, outcome, self.settings)

    # -- recording ------------------------------------------------------------------------------------

    def record(self, items: Iterable[measurements.Measurement]) -> None:
        """One batch per recorder (a stream's measurements are taken under one lock, not one call each)."""
        batch = items if isinstance(items, list) else list(items)
        for recorder in self.recorders:
            try:
                failed = recorder.record_all(batch)
            except Exception:
                log.debug("bedrock_otel: recording a batch failed", exc_info=True)
                failed = [instrument for instrument, _values, _value in batch]
            for instrument in failed:
                log.debug("bedrock_otel: recording %s failed", instrument.name)
                self._count_dropped(recorder)

    @staticmethod
    def _count_dropped(recorder: Any) -> None:
        """Count a failed measurement on the recorder that failed it (not through record(): no recursion)."""
        try:
            recorder.record(catalog.TELEMETRY_DROPPED, (sc.DROPPED_RECORD_FAILED,), 1)
        except Exception:
            log.debug("bedrock_otel: counting a dropped measurement failed", exc_info=True)

    def internal_error(self, component: str) -> None:
        """Fail open: note our own failure (debug log and a counter) and let the application carry on."""
        log.debug("bedrock_otel: internal error in %s", component, exc_info=True)
        self.record([(catalog.INTERNAL_ERRORS, (component,), 1)])

    def warn_malformed(self, reason: str, event_type: str) -> None:
        """At most one warning a minute per process: the SDK in use mishandles stream events."""
        now = time.monotonic()
        with _warning_lock:
            if now - _last_warning[0] < _WARNING_INTERVAL_S:
                return
            _last_warning[0] = now
        if reason == sc.REASON_START_WITHOUT_MESSAGE and event_type != sc.ERROR:
            what = "an event of an unknown type" if event_type == sc.OTHER else f"a {event_type} event"
            log.warning(
                "bedrock_otel: %s reached the application as a message start event without a message "
                "(anthropic %s cannot type it); code reading event.message fails on it. Repair mode "
                "(BEDROCK_OTEL_REPAIR=1 or instrument(repair=True)) drops such events.", what, sdk_version(),
            )
            return
        log.warning(
            "bedrock_otel: malformed stream event (%s) from anthropic %s: this SDK mishandles in-band stream "
            "errors (anthropics/anthropic-sdk-python#1472). Upgrade to anthropic >= 0.110.0 (>= 1.0.0 for "
            "chunks without a type), or turn on repair mode (BEDROCK_OTEL_REPAIR=1 or instrument(repair=True)).",
            reason, sdk_version(),
        )


def _watch_or_end(observer: StreamObserver, error: BaseException | None, handle: Any,
                  registry: weakref.WeakKeyDictionary[Any, Any]) -> None:
    """A streamed call is over: it raised before any stream existed (the stream ends as an error), returned none
    (it ends now), or returned `handle` (the response or EventStream) that its stream hooks will look it up by."""
    if error is not None:
        observer.finish("raised", error)
    elif handle is None:
        observer.finish("caller_stopped")
    else:
        registry[handle] = observer
        observer.bind(handle)


def disown_inherited_streams() -> None:
    """In a forked child: the streams open in the parent at fork are the parent's to count and end."""
    for observer in [*OBSERVERS.values(), *BOTO_STREAMS.values()]:
        observer.disown()
    OBSERVERS.clear()
    DECODERS.clear()
    BOTO_STREAMS.clear()


def sdk_version() -> str:
    try:
        from importlib.metadata import version

        return version("anthropic")
    except Exception:
        return "unknown"


def _frame_payload(event: Any) -> Any:
    """The decoded chunk inside an AWS event-stream frame, or None."""
    import base64
    import json

    try:
        envelope = json.loads(event.payload)
        return json.loads(base64.b64decode(envelope["bytes"]))
    except Exception:
        return None

