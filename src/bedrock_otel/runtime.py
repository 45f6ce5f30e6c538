"""The live instrumentation: settings, recorders and tracer, and the one path every client family's hooks call.

`ACTIVE` is the one running `Runtime` (None when not instrumented). Hooks read it on every call, so
uninstrumenting stops all recording at once, even for streams that are still open.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Iterable
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any, Callable, cast

from opentelemetry import context as otel_context
from opentelemetry import trace

from . import semconv as sc
from .config import Settings
from .errors import THROTTLE_STATUSES, THROTTLES
from .observe import classify
from .observe.live import LIVE
from .observe.observer import CALLER_STOPPED, ERRORS, RAISED, SPAN_EVENT_LEVELS, CallContext, StreamObserver
from .observe.retry import Lookahead
from .pressure import Pressure
from .telemetry import catalog, measurements
from .telemetry.spans import end_span, exemplar_of, open_span

if TYPE_CHECKING:
    from .families import Family

log = logging.getLogger("bedrock_otel")

ACTIVE: Runtime | None = None
CURRENT_CALL: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar("bedrock_otel_call", default=None)

_WARNING_INTERVAL_S = 60.0
_warning_lock = threading.Lock()
_last_warning = [-_WARNING_INTERVAL_S]  # per process, across instrument() calls


class ActiveCall:
    """One call in progress: its context is current (for the attempt hook, and the span for tracing); `on_end`
    takes what the call returned or raised."""

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
    """One path for every client family (`families/`): a call, its HTTP attempts, its stream, its end. What
    differs between families is asked of the family; everything else happens here once."""

    def __init__(self, settings: Settings, recorders: Iterable[Any], tracer: Any) -> None:
        self.settings = settings
        self.recorders = tuple(recorders)
        self.tracer = tracer if settings.traces else None
        # what observers read (observe/observer.py `StreamSink`)
        self.span_event_level = SPAN_EVENT_LEVELS[settings.span_events]
        self.capture_content = settings.capture_content
        self.repair_mode = settings.repair
        self._model_cap = classify.ValueCap(settings.max_models)
        self.pressure = Pressure(settings.pressure_max_wait) if settings.pressure else None
        self._record_baseline()

    def _record_baseline(self) -> None:
        """The self-telemetry series, at 0 from the start: an absent series then means missing telemetry."""
        self.record([(catalog.INTERNAL_ERRORS, (component,), 0) for component in sc.INTERNAL_COMPONENTS])
        self.record([(catalog.TELEMETRY_DROPPED, (reason,), 0) for reason in sc.DROPPED_REASONS])

    def restart_in_child(self, tracer: Any) -> None:
        """In a forked child whose recorders forgot the parent's values: this process's own model cap, the
        baseline again, and a tracer carrying the child's resource."""
        self._model_cap = classify.ValueCap(self.settings.max_models)
        if self.pressure is not None:  # the parent's budget and rates were the parent's
            self.pressure = Pressure(self.settings.pressure_max_wait)
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

    # -- calls -------------------------------------------------------------------------------------------

    def start_call(self, family: Family, client: Any, request: Any) -> ActiveCall | None:
        """Enter one call of `family` (None: not one it observes). A streamed call gets an observer and its span,
        current while the client sends; it is in flight from now. Never raises."""
        try:
            call = family.call(client, request, self.cap_model)
            if call is None:
                return None
            labels, streamed, identity = call
            if not streamed:
                return ActiveCall(self.end_call, CallContext(family, labels, identity), None)
            started = perf_counter_ns()
            span = None
            if self.tracer is not None:
                span = open_span(self.tracer, labels, self.settings, family.span_attributes(client, request),
                                 family.request_messages(request) if self.capture_content else None)
            observer = self._observer(family, labels, identity, span, started)
            if family.has_middleware(client):
                observer.taps = []
            token = otel_context.attach(trace.set_span_in_context(span)) if span is not None else None
            return ActiveCall(self.end_call, observer, token)
        except Exception:
            self.internal_error(family.components.call)
            return None

    def end_call(self, ctx: CallContext, result: Any = None, error: BaseException | None = None) -> None:
        """The call returned (a stream, for streamed calls) or raised before any stream existed."""
        try:
            ctx.request = None  # the call is over: let its request go
            if not isinstance(ctx, StreamObserver):
                return
            if error is not None:
                if ctx.taps:
                    ctx.settle_taps(None)
                ctx.finish(RAISED, error)
                return
            handle = ctx.family.returned_stream(ctx, result)
            if ctx.taps:
                ctx.settle_taps(handle)
            if handle is None:
                ctx.finish(CALLER_STOPPED)
            else:  # the stream hooks will find the observer by it; it ends as abandoned if collected first
                LIVE[handle] = ctx
                ctx.bind(handle)
        except Exception:
            self.internal_error(ctx.family.components.call)

    # -- HTTP attempts --------------------------------------------------------------------------------------

    def attempt_starting(self, ctx: CallContext) -> None:
        """The client sends an attempt after one whose in-band error was handed over as an HTTP error (retry
        mode, `ctx.pending_retry`, which the attempt hooks check): that error was retried."""
        try:
            ctx.retrying()  # type: ignore[attr-defined]  # only observers have pending retries
        except Exception:
            self.internal_error("retry.read_ahead")

    def attempt_answered(self, ctx: CallContext, response: Any) -> Any:
        """One attempt's response: recorded; the response the client gets (retry mode may read ahead), its body
        tapped for the middleware chain above."""
        self._attempt(ctx, response)
        if isinstance(ctx, StreamObserver):
            if self.settings.retry:
                response = self._looked_ahead(ctx, *ctx.family.read_ahead(response))
            if ctx.taps is not None:
                self._tap(ctx, response, False)
        return response

    async def aattempt_answered(self, ctx: CallContext, response: Any) -> Any:
        self._attempt(ctx, response)
        if isinstance(ctx, StreamObserver):
            if self.settings.retry:
                response = self._looked_ahead(ctx, *await ctx.family.aread_ahead(response))
            if ctx.taps is not None:
                self._tap(ctx, response, True)
        return response

    def _tap(self, observer: StreamObserver, response: Any, asynchronous: bool) -> None:
        """A call through a client with middleware: tap the attempt's body (`observe/tap.py`)."""
        try:
            tapped = observer.family.tap(response, asynchronous)
            if tapped is not None:
                observer.taps.append(tapped)  # type: ignore[union-attr]
        except Exception:
            self.internal_error(observer.family.components.send)

    def _attempt(self, ctx: CallContext, response: Any) -> None:
        try:
            ctx.family.attempt_answered(ctx, response)  # first: whatever fails below, the stream must be found
            headers = classify.headers_read(response.headers)
            ctx.attempts += 1
            ctx.request_id = classify.request_id(headers) or ctx.request_id
            self.record(measurements.http_response(ctx.labels, response.status_code, headers),
                        exemplar_of(getattr(ctx, "span", None)))
        except Exception:
            self.internal_error(ctx.family.components.send)
            return
        if self.pressure is not None:
            status = response.status_code
            if status in THROTTLE_STATUSES:
                self.throttled(ctx, classify.retry_after_seconds(headers))
            elif status < 400:
                self._succeeded(ctx)

    def _looked_ahead(self, observer: StreamObserver, response: Any, look: Lookahead | None) -> Any:
        """Retry mode: a retryable error read ahead is absorbed by the observer (pending until the next attempt
        or the end of the call); `response` is what the client gets."""
        if look is not None:
            if look.failed:
                self.internal_error("retry.read_ahead")
            if look.retryable is not None:
                try:
                    observer.absorb(look.events, look.retryable)
                except Exception:
                    self.internal_error("retry.read_ahead")
                if self.pressure is not None and look.retryable.error_type in THROTTLES:
                    self.throttled(observer, None)
        return response

    # -- pressure mode (pressure.py) ----------------------------------------------------------------------

    def pace(self, ctx: CallContext, request: Any) -> Any:
        """Before an attempt is sent: wait for the key's turn (sync: `time.sleep`, which KeyboardInterrupt ends).
        None: send it now; else the response the client gets instead (refused: its turn is too far away)."""
        wait = self._turn(ctx)
        if wait:
            started, ended = perf_counter_ns(), False
            try:
                time.sleep(wait)
                ended = True
            finally:
                self._waited(ctx, started, cancelled=not ended)
        return self._go(ctx, request, wait)

    async def apace(self, ctx: CallContext, request: Any) -> Any:
        """The async twin of `pace`: `await`s (anyio, as the SDK does), so cancelling the task ends the wait."""
        wait = self._turn(ctx)
        if wait:
            import anyio

            started, ended = perf_counter_ns(), False
            try:
                await anyio.sleep(wait)
                ended = True
            finally:
                self._waited(ctx, started, cancelled=not ended)
        return self._go(ctx, request, wait)

    def _turn(self, ctx: CallContext) -> float | None:
        """The attempt takes its turn (`ctx.turn_at`: a throttle of an attempt whose turn came before the rate last
        fell says nothing new): the seconds it waits, None if refused."""
        pressure = cast(Pressure, self.pressure)
        try:
            ctx.turn_at = now = pressure.now()
            return pressure.before_send(ctx.labels.pressure_key, ctx.attempts == 0, now)
        except Exception:
            self.internal_error("pressure")
            return 0.0

    def _go(self, ctx: CallContext, request: Any, waited: float | None) -> Any:
        """After the turn: None, the attempt is sent now (the send rate counts it); or, refused, the response the
        client gets instead."""
        if waited is None:
            return self._refused_attempt(ctx, request)
        if waited:  # (an attempt sent at once was counted when it took its turn)
            pressure = cast(Pressure, self.pressure)
            try:
                pressure.sent(ctx.labels.pressure_key, pressure.now())
            except Exception:
                self.internal_error("pressure")
        return None

    def _waited(self, ctx: CallContext, started_ns: int, cancelled: bool = False) -> None:
        """A wait ended (a cancelled one gives its turn back): its histogram point and span event."""
        try:
            if cancelled:
                cast(Pressure, self.pressure).gave_back(ctx.labels.pressure_key)
            waited = (perf_counter_ns() - started_ns) / 1e9
            self.record(measurements.pressure_wait(ctx.labels, waited))
            self._span_event(ctx, sc.SPAN_EVENT_PRESSURE_WAIT, {sc.PRESSURE_WAIT_S: waited})
        except Exception:
            self.internal_error("pressure")

    def _refused_attempt(self, ctx: CallContext, request: Any) -> Any:
        """An attempt not sent: the throttle the client gets instead, from its family (None: send it after all)."""
        try:
            response = ctx.family.refusal(request)
            self._refused(ctx, sc.REFUSED_MAX_WAIT)
            return response
        except Exception:
            self.internal_error("pressure")
            return None

    def _refused(self, ctx: CallContext, reason: str) -> None:
        self.record(measurements.pressure_refused(ctx.labels, reason))
        self._span_event(ctx, sc.SPAN_EVENT_PRESSURE_REFUSED,
                         {sc.PRESSURE_REASON: reason, sc.RETRY_ATTEMPT: ctx.attempts})

    @staticmethod
    def _span_event(ctx: CallContext, name: str, attributes: dict[str, Any]) -> None:
        """An event on a streamed call's span, at the level of error frames and retries (BEDROCK_OTEL_SPAN_EVENTS)."""
        if isinstance(ctx, StreamObserver) and ctx.span is not None and ctx.level >= ERRORS:
            ctx.span.add_event(name, attributes)

    def throttled(self, ctx: CallContext, retry_after: float | None) -> None:
        """A throttle answered the call's latest attempt: the key slows down (and pauses for a `retry-after`)."""
        try:
            rate = cast(Pressure, self.pressure).throttled(ctx.labels.pressure_key, ctx.turn_at, retry_after)
            if rate is not None:
                self.record(measurements.pressure_rate(ctx.labels, rate))
        except Exception:
            self.internal_error("pressure")

    def _succeeded(self, ctx: CallContext) -> None:
        try:
            rate = cast(Pressure, self.pressure).succeeded(ctx.labels.pressure_key)
            if rate is not None:
                self.record(measurements.pressure_rate(ctx.labels, rate))
        except Exception:
            self.internal_error("pressure")

    def retry_refused(self, ctx: CallContext) -> bool:
        """The client would retry the call's latest attempt: True if the key's retry budget has none left (the
        client must not retry: counted, and a span event), False if it had one (now spent)."""
        try:
            if cast(Pressure, self.pressure).spend_retry(ctx.labels.pressure_key):
                return False
            self._refused(ctx, sc.REFUSED_RETRY_BUDGET)
            return True
        except Exception:
            self.internal_error("pressure")
            return False

    def retry_not_taken(self, ctx: CallContext) -> None:
        """A retry spent from the budget was not made after all (the client decided against it): refunded."""
        try:
            cast(Pressure, self.pressure).refund_retry(ctx.labels.pressure_key)
        except Exception:
            self.internal_error("pressure")

    # -- streams ----------------------------------------------------------------------------------------------

    def _observer(self, family: Family, labels: Any, identity: Any, span: Any, started_ns: int) -> StreamObserver:
        """A streamed call's observer, of its family's class for its API; the stream is in flight from now."""
        observer = family.observers.get(labels.api, StreamObserver)(family, labels, identity, self, span, started_ns)
        self.record(measurements.in_flight(labels, 1))
        return observer

    def stream_observer(self, family: Family, stream: Any) -> StreamObserver | None:
        """The observer that is to watch a stream of `family` (the family's `find` says which); a stream made
        outside an observed call is adopted if the family labels it."""
        try:
            observer = family.find(stream)
            if observer is None:
                adopted = family.adopt(stream, self.cap_model)
                if adopted is None:
                    return None
                handle, labels = adopted
                observer = self._observer(family, labels, None, None, perf_counter_ns())
                LIVE[handle] = observer
                observer.bind(handle)
                family.find(stream)  # registered: anything else its hooks look it up by too
            return observer
        except Exception:
            self.internal_error(family.components.stream)
            return None

    def caller_closed(self, family: Family, stream: Any) -> None:
        """The caller closed a stream: it ends now, not at collection."""
        try:
            observer = family.find(stream)
            if observer is not None:
                observer.finish(CALLER_STOPPED)
        except Exception:
            self.internal_error(family.components.close)

    def stream_ended(self, observer: StreamObserver, outcome: str, duration_ns: int) -> None:
        """A stream ended (once): the in-flight gauge goes down, its measurements are recorded and its span ends.
        Uninstrumented while it was open: it closes what it opened (gauge, span) and records nothing more."""
        if self.pressure is not None and any(error[0] in THROTTLES for error in observer.errors):
            self.throttled(observer, None)  # in-band, on the stream the caller read
        span = observer.span
        if not self.recorders and span is None:
            return  # nothing records (hooks only)
        summary = observer.summary(outcome, duration_ns)
        if self.recorders:  # one batch per recorder
            batch = measurements.in_flight(observer.labels, -1)
            if ACTIVE is self:
                batch += measurements.of_stream(summary)
            self.record(batch, exemplar_of(span))
        if span is not None:
            end_span(span, summary, self.settings)

    # -- recording ------------------------------------------------------------------------------------

    def record(self, items: Iterable[measurements.Measurement], exemplar: tuple[str, str] | None = None) -> None:
        """One batch per recorder (a stream's measurements are taken under one lock, not one call each), with the
        trace and span id of the call's sampled span for exemplars. With no recorder (`BEDROCK_OTEL_METRICS=none`)
        nothing is computed."""
        if not self.recorders:
            return
        batch = items if isinstance(items, list) else list(items)
        for recorder in self.recorders:
            try:
                failed = recorder.record_all(batch, exemplar)
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


def sdk_version() -> str:
    try:
        from importlib.metadata import version

        return version("anthropic")
    except Exception:
        return "unknown"
