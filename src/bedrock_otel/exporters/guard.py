"""A failing telemetry backend must not slow the application, fill its memory or its logs. This guards the
exporters of the pipelines bedrock_otel builds (never the application's own):

- **A circuit breaker per exporter.** After a failed export the next ones fail at once, without a network call,
  until a probe is due (1 s after the failure, doubling to 30 s): the SDK's queues drain instead of filling, its
  export thread does not sit in retries, and what is dropped is counted
  (`bedrock_otel.telemetry.dropped{reason="export_failed"}`). A probe that succeeds closes the breaker.
- **One warning** when exports start failing (naming the endpoint and the setting), one line when they recover.
  The exporters' own per-retry log lines are dropped while they run for bedrock_otel (a thread-local flag and a
  filter on their loggers: the same exporters used by the application keep logging).
- **A bounded exit.** The providers are shut down at interpreter exit in a daemon thread, waited for at most
  `BEDROCK_OTEL_EXPORT_EXIT_TIMEOUT` seconds; what was still unsent is counted and said once.

Spans of a failed batch are lost (the SDK does not retry a batch). Metric points are cumulative: a failed export
loses nothing unless it is the last one, because the next successful export carries the totals.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from queue import SimpleQueue
from typing import Any, Callable

log = logging.getLogger("bedrock_otel")

PROBE_FIRST_S = 1.0  # the first probe after a failure
PROBE_MAX_S = 30.0  # probes back off to one every this many seconds
HOLD_SPANS = 2048  # spans held per exporter while the backend fails (the SDK's own queue holds as many again)
HELD_BATCH = 512  # held spans go out in exports of at most this many (the SDK's batch size: no oversized request)
# loggers of the OpenTelemetry exporters and of the SDK code that calls them (retry, failure and shutdown lines)
EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.proto.http",
    "opentelemetry.exporter.http_transport",
    "opentelemetry.sdk.metrics._internal.export",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.sdk._shared_internal",
)

_local = threading.local()  # .exporting: this thread is inside a guarded export
on_dropped: Callable[[int], None] | None = None  # set by the runtime: counts export_failed drops


class _Quiet(logging.Filter):
    """Drops the records an exporter logs while it exports for bedrock_otel; keeps the last one as the reason."""

    last_reason = ""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(_local, "exporting", False):
            if record.levelno >= logging.WARNING:
                _Quiet.last_reason = record.getMessage()
            return False
        return True


_QUIET = _Quiet()


def quiet_exporter_logs() -> None:
    """Attach the filter to the exporters' loggers (a filter on a logger sees only that logger's own records)."""
    for name in EXPORTER_LOGGERS:
        logger = logging.getLogger(name)
        if _QUIET not in logger.filters:
            logger.addFilter(_QUIET)


class Outage:
    """Which guarded exporters are failing now: one warning when the first starts, one line when the last
    recovers, with what was dropped in between."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failing: set[Guard] = set()
        self.dropped = 0

    def failed(self, guard: Guard) -> None:
        with self._lock:
            first = not self.failing
            self.failing.add(guard)
        if first:
            reason = _short(_Quiet.last_reason)
            log.warning("bedrock_otel: exporting %s to %s is failing%s; until it recovers (retried every %g-%g s) "
                        "spans are held, %d per exporter, and beyond that dropped and counted in "
                        "bedrock_otel_telemetry_dropped_total{bedrock_otel_dropped_reason=\"export_failed\"}; at "
                        "exit bedrock_otel waits at most BEDROCK_OTEL_EXPORT_EXIT_TIMEOUT for it", guard.signal,
                        guard.endpoint, f" ({reason})" if reason else "", PROBE_FIRST_S, PROBE_MAX_S, HOLD_SPANS)

    def recovered(self, guard: Guard) -> None:
        with self._lock:
            if guard not in self.failing:
                return
            self.failing.discard(guard)
            last, dropped = not self.failing, self.dropped
            if last:
                self.dropped = 0
        if last:
            log.warning("bedrock_otel: exporting to %s recovered; %d spans or metric points were dropped while it "
                        "failed", guard.endpoint, dropped)

    def count(self, n: int) -> None:
        with self._lock:
            self.dropped += n

    def forget(self) -> None:
        """In a forked child: the parent's outage is the parent's to report."""
        self._lock = threading.Lock()
        self.failing, self.dropped = set(), 0


OUTAGE = Outage()


class Guard:
    """The circuit breaker of one exporter. `export(inner_export, batch, failure)` is what the SDK's export
    becomes. Spans of exports that failed or were not attempted are held (at most HOLD_SPANS, the oldest dropped
    first) and sent, in exports of HELD_BATCH, after the next export that goes through; metric points need no
    holding (cumulative)."""

    def __init__(self, signal: str, endpoint: str) -> None:
        self.signal, self.endpoint = signal, endpoint
        self._lock = threading.Lock()
        self._probe_at = 0.0  # monotonic time of the next probe; 0: closed (healthy)
        self._backoff = PROBE_FIRST_S
        self._probing = False
        self.held: deque[Any] = deque()  # spans waiting for the backend
        self.closing = False  # the final flush has begun: one probe goes through, unsent metric points are lost
        self.abandoned = False  # at exit, past the bound: everything fails at once
        self.in_flight = 0  # items of the export running now (what an exit past the bound loses)

    def export(self, inner: Callable[[Any], Any], batch: Any, failure: Any) -> Any:
        if not self._admit():
            self._keep(batch)
            return failure
        result = self._send(inner, batch, failure)
        ok = result is not failure
        self._settle(ok)
        if not ok:
            self._keep(batch)
            return result
        while self.held and not self.abandoned:  # the backend is back: what was held goes out, a batch at a time
            held = self._take_held(HELD_BATCH)
            if self._send(inner, held, failure) is failure:
                self._keep(held)
                break
        return result

    def _send(self, inner: Callable[[Any], Any], batch: Any, failure: Any) -> Any:
        """One export by the real exporter, its log lines silenced; `failure` for anything but success."""
        self.in_flight = _size(batch)
        _local.exporting = True
        try:
            result = inner(batch)
        except Exception:
            log.debug("bedrock_otel: %s export raised", self.signal, exc_info=True)
            result = failure
        finally:
            _local.exporting = False
            self.in_flight = 0
        return failure if getattr(result, "name", "") == "FAILURE" else result

    def _admit(self) -> bool:
        """Closed: yes. Open: only as the one probe, once it is due (or for the final flush)."""
        if self.abandoned:
            return False
        with self._lock:
            if not self._probe_at:
                return True
            if self._probing or (time.monotonic() < self._probe_at and not self.closing):
                return False
            self._probing = True
            return True

    def _settle(self, ok: bool) -> None:
        with self._lock:
            self._probing = False
            was_open = bool(self._probe_at)
            if ok:
                self._probe_at, self._backoff = 0.0, PROBE_FIRST_S
            else:
                self._probe_at = time.monotonic() + self._backoff
                if was_open:
                    self._backoff = min(self._backoff * 2, PROBE_MAX_S)
        if ok and was_open:
            OUTAGE.recovered(self)
        elif not ok and not was_open:
            OUTAGE.failed(self)

    def _take_held(self, most: int) -> list[Any]:
        with self._lock:
            return [self.held.popleft() for _ in range(min(most, len(self.held)))]

    def _keep(self, batch: Any) -> None:
        """What was not delivered: spans are held for the next export, within HOLD_SPANS; metric points are
        superseded by the next export's totals, except in the final flush."""
        if self.signal != "traces":
            if self.closing:
                self._drop(_size(batch))
            return
        with self._lock:
            self.held.extend(batch)
            overflow = len(self.held) - HOLD_SPANS
            for _ in range(max(overflow, 0)):
                self.held.popleft()
        self._drop(overflow)

    def _drop(self, count: int) -> None:
        if count > 0:
            OUTAGE.count(count)
            count_dropped(count)

    def unsent(self) -> int:
        """At exit: what is held or in flight now is lost; counted once."""
        with self._lock:
            lost, self.held = len(self.held) + self.in_flight, deque()
            self.in_flight = 0
        self._drop(lost)
        return lost


def count_dropped(n: int) -> None:
    if n and on_dropped is not None:
        try:
            on_dropped(n)
        except Exception:
            log.debug("bedrock_otel: counting dropped telemetry failed", exc_info=True)


def _size(batch: Any) -> int:
    """Spans in a span batch, data points in a MetricsData."""
    if isinstance(batch, Sequence):
        return len(batch)
    points = 0
    for resource_metrics in getattr(batch, "resource_metrics", ()):
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points += len(getattr(metric.data, "data_points", ()))
    return points


def _short(message: str, limit: int = 160) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


class Runner:
    """A daemon thread, started before it is needed, that runs the flush and the shutdown: from Python 3.12 no
    new thread can start once the interpreter is exiting, which is when the last flush happens. Restarted in a
    forked child (threads do not survive fork)."""

    def __init__(self) -> None:
        self._jobs: SimpleQueue[Callable[[], None]] = SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._jobs = SimpleQueue()  # a forked child's copy may hold the parent's jobs
            self._thread = threading.Thread(target=self._work, name="bedrock-otel-exporters", daemon=True)
            self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        try:
            self.start()
        except RuntimeError:  # exiting and the thread is gone: run here, without the bound, rather than not at all
            job()
            return
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except Exception:
                log.debug("bedrock_otel: an exporter job failed", exc_info=True)


RUNNER = Runner()


def within(action: str, providers: Sequence[Any], guards: Sequence[Guard], timeout_s: float) -> None:
    """`provider.shutdown()` (at exit) or `force_flush()` (uninstrument) for each provider, in a daemon thread,
    waiting at most `timeout_s`. Past that the guards fail every further export at once and the thread is left
    behind: a daemon cannot keep the process alive. At exit, whatever is still unsent is counted as dropped and
    said in one line."""
    if not providers:
        return
    final = action == "shutdown"
    for guard in guards:
        guard.closing = guard.closing or final
    done = threading.Event()

    def run() -> None:
        for provider in providers:
            try:
                getattr(provider, action)()
            except Exception:
                log.debug("bedrock_otel: %s of %r failed", action, provider, exc_info=True)
        done.set()

    RUNNER.submit(run)
    finished = done.wait(timeout_s)
    if not final:
        return
    for guard in guards:
        guard.abandoned = True
    for guard in guards:
        guard.unsent()
    if not finished or OUTAGE.failing:
        endpoints = ", ".join(sorted({g.endpoint for g in (OUTAGE.failing or guards)}))
        log.warning("bedrock_otel: at exit, telemetry to %s was not sent within BEDROCK_OTEL_EXPORT_EXIT_TIMEOUT="
                    "%g s: %d spans or metric points dropped", endpoints, timeout_s, OUTAGE.dropped)
