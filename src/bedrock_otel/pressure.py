"""Pressure mode (opt-in): a retry budget and an adaptive send rate per (provider, platform, model, region).

Why both: under a sustained quota breach every throttled call retries on its own, so the load offered to the quota
grows to up to (1 + max_retries) times what the application asks for, and more calls are throttled.

- **The retry budget** (Finagle's RetryBudget, Envoy's retry budgets): a key's retries may be at most
  `BUDGET_RATIO` of its calls, plus a floor of `BUDGET_FLOOR_PER_S` a second so that a quiet key can still retry;
  unused credit is capped at `BUDGET_CAP`. Chosen over gRPC's retry throttling (a token bucket refilled only by
  successes) because a quota that answers every attempt with a throttle would then stop retries until a success
  that may never come, and over botocore's fixed quota (500 tokens) because that does not scale with the traffic.
  It covers every retry a client decides by a response: the SDK's HTTP retries, botocore's, and those retry mode
  hands over. Over budget, the client is told not to retry, so it raises what it raises when `max_retries` is
  spent. Connection errors and timeouts are not throttles and are not counted against it.
- **The send rate** (botocore's adaptive retry mode, CUBIC): a key that saw a throttle (HTTP 429 or 529, an
  in-band `rate_limit_error` or `overloaded_error`, a `throttlingException` frame) is paced: its rate falls to
  `BETA` times the rate it was sending at, then climbs back along a cubic curve with every success. Only a
  throttle of an attempt let go after the rate last fell lowers it again (TCP's rule, one decrease per round
  trip): 48 calls throttled at once are one signal, not 48. Turns are spaced at the allowed rate (no burst).
  Pacing stops once the rate has climbed to twice the one that met the last throttle with no throttle since. A
  `retry-after` pauses the key for that long (at most `PAUSE_CAP`). A request waits for its turn before it is
  sent, at most `pressure_max_wait` seconds. One whose turn is further away is not sent: the client gets the
  throttle the quota would have answered (HTTP 429, not to be retried) at once.

With no throttle in sight an attempt costs a dictionary lookup, a counter and the send-rate clock: nothing waits.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

BUDGET_RATIO = 0.1  # retries per call a key may make over time
BUDGET_FLOOR_PER_S = 1.0  # retries a second any key may make
BUDGET_CAP = 10.0  # credit kept at most (a burst of retries after a quiet spell)
BETA = 0.7  # the rate after a throttle, as a fraction of the rate that met it (botocore's)
SCALE = 0.4  # CUBIC's C (botocore's): how fast the rate climbs back
MIN_RATE = 0.5  # requests a second: the slowest a key is paced
PAUSE_CAP = 60.0  # seconds: the longest retry-after a key is paused for (as the SDK honours up to 60 s)
_CLOCK_BUCKET_S = 0.5  # the send rate is measured over half-second buckets (botocore's)
_SMOOTHING = 0.8


class KeyPressure:
    """One key's budget and pacer. Mutated under `Pressure.lock`, except the send-rate clock, whose
    unlocked increments may at worst lose a count (it is an estimate)."""

    __slots__ = ("_bucket", "_count", "calls", "credit", "credit_at", "credit_calls", "decreased_at", "last_max",
                 "last_throttle", "measured", "paced", "paused_until", "rate", "reported", "tokens", "tokens_at")

    def __init__(self, now: float) -> None:
        self.calls = 0  # first attempts, ever (the budget's deposits)
        self.credit, self.credit_at, self.credit_calls = BUDGET_CAP, now, 0
        self._bucket, self._count, self.measured = math.floor(now / _CLOCK_BUCKET_S), 0, 0.0
        self.paced = False
        self.rate = 0.0  # allowed requests a second while paced
        self.reported = 0.0  # the rate last exported (the gauge follows changes of more than 1 %)
        self.last_max = 0.0  # the rate that met the last throttle (CUBIC's W_max)
        self.last_throttle = self.decreased_at = -math.inf
        self.paused_until = -math.inf
        self.tokens, self.tokens_at = 0.0, now

    def clock(self, now: float) -> None:
        """Measure the send rate (botocore's RateClocker): an average over half-second buckets, smoothed."""
        self._count += 1
        bucket = math.floor(now / _CLOCK_BUCKET_S)
        if bucket > self._bucket:
            current = self._count / ((bucket - self._bucket) * _CLOCK_BUCKET_S)
            self.measured = current * _SMOOTHING + self.measured * (1 - _SMOOTHING)
            self._count, self._bucket = 0, bucket

    # -- pacing -----------------------------------------------------------------------------------------

    def turn(self, now: float, max_wait: float) -> float | None:
        """Take a turn to send: seconds to wait first (0: send now), or None, with nothing taken, if the turn is
        more than `max_wait` away (a `retry-after` pause, or the queue of turns at the allowed rate)."""
        wait = self.paused_until - now
        if self.paced:
            self.tokens = min(1.0, self.tokens + (now - self.tokens_at) * self.rate)  # spaced: no burst
            self.tokens_at = now
            if self.tokens < 1.0:
                wait = max(wait, (1.0 - self.tokens) / self.rate)
        if wait > max_wait:
            return None
        if self.paced:
            self.tokens -= 1.0
        return max(wait, 0.0)

    def give_back(self) -> None:
        """A wait was cancelled: its turn goes back to the key."""
        if self.paced:
            self.tokens += 1.0

    def throttled(self, now: float, turn_at: float, retry_after: float | None) -> bool:
        """A throttle answered an attempt whose turn came at `turn_at`; True if the allowed rate is to be exported
        again."""
        self.last_throttle = now
        if retry_after:
            self.paused_until = max(self.paused_until, now + min(retry_after, PAUSE_CAP))
        if turn_at < self.decreased_at:
            return False  # let go at the rate before the last decrease: the same congestion, already answered
        # paced: the allowed rate is what met it; else the measured send rate (or, before a first half-second
        # has been measured, this half-second's sends so far)
        met = self.rate if self.paced else max(self.measured, self._count / _CLOCK_BUCKET_S)
        self.last_max = max(met, MIN_RATE)
        self.rate = max(self.last_max * BETA, MIN_RATE)
        if not self.paced:
            self.paced, self.tokens, self.tokens_at = True, 0.0, now
        self.decreased_at = now
        return self._report()

    def succeeded(self, now: float) -> bool:
        """A success: the rate climbs along CUBIC's curve from the last throttle (back to the rate that met it
        after `k` seconds, then past it); once it reaches twice that rate with no throttle since, pacing stops.
        True if it is to be exported again."""
        if not self.paced:
            return False
        k = (self.last_max * (1 - BETA) / SCALE) ** (1 / 3)
        rate = SCALE * (now - self.last_throttle - k) ** 3 + self.last_max
        if rate >= 2 * self.last_max:
            self.paced, rate = False, 0.0  # the quota is back: nothing held back any more
        self.rate = max(rate, MIN_RATE) if self.paced else 0.0
        return self._report()

    def _report(self) -> bool:
        """Whether the rate moved by more than 1 % from the one last exported (then it is the one exported)."""
        if abs(self.rate - self.reported) <= 0.01 * self.reported:
            return False
        self.reported = self.rate
        return True

    # -- the retry budget -------------------------------------------------------------------------------

    def spend_retry(self, now: float) -> bool:
        """One retry out of the budget; False (nothing spent) when there is none left."""
        calls = self.calls
        self.credit = min(BUDGET_CAP, self.credit + (calls - self.credit_calls) * BUDGET_RATIO
                          + (now - self.credit_at) * BUDGET_FLOOR_PER_S)
        self.credit_at, self.credit_calls = now, calls
        if self.credit < 1.0:
            return False
        self.credit -= 1.0
        return True

    def refund_retry(self) -> None:
        self.credit = min(BUDGET_CAP, self.credit + 1.0)


class Pressure:
    """Every key's state in this process (a forked child makes a new one: its budget starts fresh)."""

    def __init__(self, max_wait: float, clock: Any = time.monotonic) -> None:
        self.max_wait = max_wait
        self.now = clock
        self.lock = threading.Lock()
        self.keys: dict[tuple[str, ...], KeyPressure] = {}

    def key(self, key: tuple[str, ...]) -> KeyPressure:
        state = self.keys.get(key)
        if state is None:  # setdefault is atomic: two threads meeting a new key get the same state
            state = self.keys.setdefault(key, KeyPressure(self.now()))
        return state

    def before_send(self, key: tuple[str, ...], first: bool, now: float) -> float | None:
        """An attempt is about to be sent: the seconds it waits first, or None: refused, its turn is more than
        `max_wait` away. One sent now is counted by the send rate here; one that waits, by `sent` after it."""
        state = self.key(key)
        if first:
            state.calls += 1
        if state.paced or state.paused_until >= now:
            with self.lock:
                wait = state.turn(now, self.max_wait)
            if wait != 0.0:
                return wait
        state.clock(now)
        return 0.0

    def sent(self, key: tuple[str, ...], now: float) -> None:
        """The attempt goes now (after its wait): the send rate counts it."""
        self.key(key).clock(now)

    def gave_back(self, key: tuple[str, ...]) -> None:
        """A wait was cancelled: its turn goes back to the key."""
        with self.lock:
            self.key(key).give_back()

    def throttled(self, key: tuple[str, ...], turn_at: float, retry_after: float | None) -> float | None:
        """A throttle for `key`: the allowed rate to export, if it moved."""
        with self.lock:
            state = self.key(key)
            return state.rate if state.throttled(self.now(), turn_at, retry_after) else None

    def succeeded(self, key: tuple[str, ...]) -> float | None:
        """A success for `key`: the allowed rate to export, if it moved (nothing to do for a key not paced)."""
        state = self.key(key)
        if not state.paced:
            return None
        with self.lock:
            return state.rate if state.succeeded(self.now()) else None

    def spend_retry(self, key: tuple[str, ...]) -> bool:
        with self.lock:
            return self.key(key).spend_retry(self.now())

    def refund_retry(self, key: tuple[str, ...]) -> None:
        with self.lock:
            self.key(key).refund_retry()
