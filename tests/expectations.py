"""What the contract says each scenario must produce: the same on every SDK version, except where the SDK
version changes what the caller receives (the #1472 masquerade exists only on Bedrock SDKs < 0.110)."""

from __future__ import annotations

from dataclasses import dataclass, field

from driver import FIXED_BEDROCK_DECODER

NORMAL_EVENTS = {"message_start": 1, "content_block_start": 1, "content_block_delta": 3, "content_block_stop": 1,
                 "message_delta": 1, "message_stop": 1}
NORMAL_USAGE = {"input": 12, "output": 7, "cache_read": 3, "cache_creation": 2}
HEAD_EVENTS = {"message_start": 1, "content_block_start": 1, "content_block_delta": 1}  # start, block, one delta


@dataclass
class Expected:
    outcome: str
    events: dict[str, int] = field(default_factory=dict)
    error_frames: dict[tuple[str, str], int] = field(default_factory=dict)
    malformed: dict[tuple[str, str], int] = field(default_factory=dict)
    rate_limits: dict[str, int] = field(default_factory=dict)
    http: dict[str, int] = field(default_factory=lambda: {"200": 1})
    usage: dict[str, int] = field(default_factory=dict)


def expected(scenario: str, provider: str) -> Expected:
    masquerades = provider == "bedrock" and not FIXED_BEDROCK_DECODER
    if scenario == "normal":
        return Expected("completed", dict(NORMAL_EVENTS), usage=dict(NORMAL_USAGE))
    if scenario == "ping":
        malformed = {("ping", "start_without_message"): 1} if masquerades else {}
        return Expected("completed", {**NORMAL_EVENTS, "ping": 1}, malformed=malformed, usage=dict(NORMAL_USAGE))
    if scenario == "error_first":
        malformed = {("error", "start_without_message"): 1} if masquerades else {}
        return Expected("error", {"error": 1}, {("rate_limit_error", "event"): 1}, malformed, {"error_event": 1})
    if scenario == "error_mid":
        malformed = {("error", "start_without_message"): 1} if masquerades else {}
        return Expected("error", {**HEAD_EVENTS, "error": 1}, {("overloaded_error", "event"): 1}, malformed,
                        usage={"input": 12, "output": 1, "cache_read": 3, "cache_creation": 2})
    if scenario == "truncated":
        return Expected("truncated", {**HEAD_EVENTS, "content_block_delta": 2},
                        usage={"input": 12, "output": 1, "cache_read": 3, "cache_creation": 2})
    if scenario == "typeless":
        return Expected("completed", {**NORMAL_EVENTS, "_OTHER": 1}, malformed={("_NONE", "missing_type"): 1},
                        usage=dict(NORMAL_USAGE))
    if scenario.startswith("exception_"):
        name = scenario.removeprefix("exception_")
        rate = {"exception_frame": 1} if name == "throttlingException" else {}
        return Expected("error", {**HEAD_EVENTS, "error": 1}, {(name, "exception_frame"): 1}, rate_limits=rate,
                        usage={"input": 12, "output": 1, "cache_read": 3, "cache_creation": 2})
    if scenario == "http_429":
        return Expected("error", rate_limits={"http_429": 3}, http={"429": 3})
    if scenario == "http_429_no_retry_after":
        return Expected("error", rate_limits={"http_429": 1}, http={"429": 1})
    if scenario == "http_429_then_ok":
        return Expected("completed", dict(NORMAL_EVENTS), rate_limits={"http_429": 1}, http={"429": 1, "200": 1},
                        usage=dict(NORMAL_USAGE))
    if scenario == "http_529":
        return Expected("error", http={"529": 1})
    if scenario == "reset":
        return Expected("error", dict(HEAD_EVENTS), usage={"input": 12, "output": 1, "cache_read": 3,
                                                             "cache_creation": 2})
    if scenario == "invalid_json":
        bad = {"content_block_delta": 1} if provider == "first_party" else {"_OTHER": 1}
        return Expected("error", {"message_start": 1, **bad}, malformed={("_NONE", "invalid_json"): 1},
                        usage={"input": 12, "output": 1, "cache_read": 3, "cache_creation": 2})
    raise KeyError(scenario)
