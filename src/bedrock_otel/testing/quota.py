"""A quota on the loopback server, enforced as the endpoints enforce theirs: a token bucket of requests a second
(or of tokens a minute, each request costing its `max_tokens`), and over it a throttle in each endpoint's own
form:

- first-party and Vertex: HTTP 429 `rate_limit_error` with `retry-after` (whole seconds until a token is back);
- Bedrock through the Anthropic SDK: `rate_limit_error` inside an HTTP 200 event stream (#1472);
- boto3 `invoke_model_with_response_stream`: a `throttlingException` frame inside an HTTP 200;
- boto3 `converse_stream`: HTTP 429 `ThrottlingException` (what botocore's adaptive mode can see).

`LoopbackServer(quota=Quota(20))`; `quota.set(rate)` changes the rate while it runs (a quota cut, then restored).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from typing import Any

from .scenarios import ExceptionFrame, Reply, error_event, http_error

RATE_LIMITED_IN_BAND = Reply(parts=(error_event("rate_limit_error", "Rate limited (quota)"),))
THROTTLED_FRAME = Reply(parts=(ExceptionFrame("throttlingException", "Too many requests, please wait."),))


class Quota:
    """A token bucket refilled at `rate` a second (requests, or tokens with `per_token`), holding `burst`
    seconds' worth. Counts what it admitted and throttled (`counts`)."""

    def __init__(self, rate: float, burst_s: float = 1.0, per_token: bool = False, bedrock_share: float = 0.5) -> None:
        """Bedrock and first-party (with Vertex) have quotas of their own, as they do: `bedrock_share` of `rate`
        and the rest."""
        self._lock = threading.Lock()
        self.burst_s = burst_s
        self.per_token = per_token
        self.shares = {True: bedrock_share, False: 1.0 - bedrock_share}
        self.rate = rate
        self._tokens = {bedrock: rate * share * burst_s for bedrock, share in self.shares.items()}
        self._at = time.monotonic()
        self.counts: Counter[str] = Counter()

    def set(self, rate: float) -> None:
        with self._lock:
            self._refill(time.monotonic())
            self.rate = rate

    def _refill(self, now: float) -> None:
        for bedrock, share in self.shares.items():
            rate = self.rate * share
            self._tokens[bedrock] = min(rate * self.burst_s, self._tokens[bedrock] + (now - self._at) * rate)
        self._at = now

    def admit(self, body: dict[str, Any], bedrock: bool, who: str = "sdk") -> float | None:
        """None if the request fits the quota (its cost taken), else the seconds until it would. `who` (sdk,
        boto3) keys the counts; a request without a `max_tokens` of its own costs 1,000 tokens."""
        asked = body.get("max_tokens")
        cost = (float(asked) if isinstance(asked, int) and asked > 100 else 1000.0) if self.per_token else 1.0
        with self._lock:
            self._refill(time.monotonic())
            tokens = self._tokens[bedrock]
            if tokens >= cost:
                self._tokens[bedrock] = tokens - cost
                self.counts["admitted"] += 1
                return None
            self.counts["throttled"] += 1
            self.counts[f"throttled {who}"] += 1
            return (cost - tokens) / (self.rate * self.shares[bedrock])

    def throttle(self, path: str, bedrock: bool, user_agent: str, wait_s: float) -> Reply:
        """The throttle this endpoint answers with (boto3 is told from the SDK by its user agent)."""
        if not bedrock:
            return http_error(429, "rate_limit_error", {"retry-after": str(max(1, math.ceil(wait_s)))})
        if path.endswith("converse-stream"):
            return http_error(429, "rate_limit_error")  # sent as Bedrock's ThrottlingException
        if who_is(user_agent) == "boto3":
            return THROTTLED_FRAME
        return RATE_LIMITED_IN_BAND


def who_is(user_agent: str) -> str:
    return "boto3" if "botocore" in user_agent.lower() else "sdk"
