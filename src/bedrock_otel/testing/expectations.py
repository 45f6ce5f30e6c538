"""What the contract says each scenario of `scenarios.ALL` must produce, per stream: the same on every SDK
version, except where the installed SDK version changes what the caller receives (the #1472 masquerade exists
only on Bedrock SDKs < 0.110). Used by the test suite and the soak benchmark to check counters exactly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import RETRY_STATUS
from ..observe.retry import PREAMBLE
from ._sdk import FIRST_PARTY_YIELDS_UNKNOWN, FIXED_BEDROCK_DECODER
from .scenarios import Event, ExceptionFrame, Part

NORMAL_EVENTS = {"message_start": 1, "content_block_start": 1, "content_block_delta": 3, "content_block_stop": 1,
                 "message_delta": 1, "message_stop": 1}
NORMAL_USAGE = {"input": 12, "output": 7, "cache_read": 3, "cache_creation": 2}
HEAD_EVENTS = {"message_start": 1, "content_block_start": 1, "content_block_delta": 1}  # start, block, one delta
HEAD_USAGE = {"input": 12, "output": 1, "cache_read": 3, "cache_creation": 2}  # from message_start alone
NORMAL_ORDER = ("message_start", "content_block_start", "content_block_delta", "content_block_delta",
                "content_block_delta", "content_block_stop", "message_delta", "message_stop")


@dataclass
class Expected:
    """One stream's telemetry: its outcome and the counters it adds, keyed by their label values."""

    outcome: str
    events: dict[str, int] = field(default_factory=dict)
    error_frames: dict[tuple[str, str], int] = field(default_factory=dict)
    malformed: dict[tuple[str, str], int] = field(default_factory=dict)
    rate_limits: dict[str, int] = field(default_factory=dict)
    http: dict[str, int] = field(default_factory=lambda: {"200": 1})
    usage: dict[str, int] = field(default_factory=dict)


def opens_with_retryable_error(parts: tuple[Part, ...]) -> bool:
    """Whether a body opens, after the events that carry no content, with an error that retry mode retries."""
    for part in parts:
        if isinstance(part, Event) and part.payload.get("type") in PREAMBLE:
            continue
        if isinstance(part, ExceptionFrame):
            return part.exception_type in RETRY_STATUS
        if isinstance(part, Event) and part.payload.get("type") == "error":
            error = part.payload.get("error")
            return isinstance(error, dict) and error.get("type") in RETRY_STATUS
        return False
    return False


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
        bad = {"_OTHER": 1} if provider == "bedrock" else {"content_block_delta": 1}
        return Expected("error", {"message_start": 1, **bad}, malformed={("_NONE", "invalid_json"): 1},
                        usage={"input": 12, "output": 1, "cache_read": 3, "cache_creation": 2})
    if scenario == "error_after_stop":  # the contract's order: error wins over completed
        malformed = {("error", "start_without_message"): 1} if masquerades else {}
        return Expected("error", {**NORMAL_EVENTS, "error": 1}, {("api_error", "event"): 1}, malformed,
                        usage=dict(NORMAL_USAGE))
    if scenario == "http_500":
        return Expected("error", http={"500": 3})
    if scenario == "http_529_then_ok":
        return Expected("completed", dict(NORMAL_EVENTS), http={"529": 1, "200": 1}, usage=dict(NORMAL_USAGE))
    if scenario.startswith("truncated_at_") or scenario == "empty_body":
        k = int(scenario.removeprefix("truncated_at_")) if scenario != "empty_body" else 0
        events: dict[str, int] = {}
        for name in NORMAL_ORDER[:k]:
            events[name] = events.get(name, 0) + 1
        usage = {**HEAD_USAGE, "output": 7} if k >= 7 else (dict(HEAD_USAGE) if k else {})
        return Expected("truncated", events, usage=usage)
    if scenario == "truncated_mid_frame":
        return Expected("truncated", dict(HEAD_EVENTS), usage=dict(HEAD_USAGE))
    if scenario == "corrupt":  # first-party: an SSE event with broken JSON; Bedrock: the SDK's CRC check raises
        if provider != "bedrock":  # SSE: first-party and Vertex
            return Expected("error", {**HEAD_EVENTS, "content_block_delta": 2},
                            malformed={("_NONE", "invalid_json"): 1}, usage=dict(HEAD_USAGE))
        return Expected("error", dict(HEAD_EVENTS), usage=dict(HEAD_USAGE))
    if scenario == "stall_in_preamble":  # retry mode holds message_start back: the timeout fires in create()
        return Expected("error", {"message_start": 1}, usage=dict(HEAD_USAGE))
    if scenario in ("garbage", "stall"):  # the SDK's decoder (or read timeout) fails the stream after one delta
        return Expected("error", dict(HEAD_EVENTS), usage=dict(HEAD_USAGE))
    if scenario == "unknown_event":
        # an event the SDK cannot type reaches the caller as a start event without a message (the #1472
        # mechanism): on Bedrock before the decoder fix (0.110), and on both providers once the SDK stopped
        # filtering event names (1.16); in between the shared SSE loop drops it
        masquerades = (provider == "bedrock" and not FIXED_BEDROCK_DECODER) or FIRST_PARTY_YIELDS_UNKNOWN
        malformed = {("_OTHER", "start_without_message"): 1} if masquerades else {}
        return Expected("completed", {**NORMAL_EVENTS, "_OTHER": 1}, malformed=malformed, usage=dict(NORMAL_USAGE))
    if scenario in ("rate_limited_then_ok", "retry_after_then_ok", "retry_after_ms_then_ok", "should_not_retry"):
        return expected("error_first", provider)  # without retry mode only the first attempt is made
    if scenario in ("throttled_then_ok", "throttled_always"):
        return Expected("error", {"error": 1}, {("throttlingException", "exception_frame"): 1},
                        rate_limits={"exception_frame": 1})
    if scenario == "error_after_start_then_ok":
        malformed = {("ping", "start_without_message"): 1, ("error", "start_without_message"): 1} if masquerades \
            else {}
        return Expected("error", {"message_start": 1, "ping": 1, "error": 1}, {("overloaded_error", "event"): 1},
                        malformed, usage=dict(HEAD_USAGE))
    if scenario == "not_retryable_first":
        malformed = {("error", "start_without_message"): 1} if masquerades else {}
        return Expected("error", {"error": 1}, {("invalid_request_error", "event"): 1}, malformed)
    if scenario == "large_event":
        return Expected("completed", dict(NORMAL_EVENTS), usage=dict(NORMAL_USAGE))
    raise KeyError(scenario)


# -- boto3: InvokeModelWithResponseStream and ConverseStream ------------------------------------------------------

# what an Anthropic event of a scenario is on a Converse stream (the server's ConverseEncoder); a text block's
# content_block_start, ping, chunks without a type and event types Converse lacks reach no Converse client
CONVERSE_NAMES = {"message_start": "messageStart", "content_block_delta": "contentBlockDelta",
                  "content_block_stop": "contentBlockStop", "message_delta": "messageStop",
                  "message_stop": "metadata", "error": "error"}


def expected_boto3(scenario: str, kind: str) -> Expected:
    """One boto3 stream's telemetry (`kind`: `boto3_invoke` or `boto3_converse`), with botocore's standard
    retries at 3 attempts. botocore types nothing (no #1472 masquerade) and hands chunks over undecoded."""
    if scenario == "invalid_json":  # boto3 does not decode chunk.bytes: the stream goes on past the bad chunk
        exp = Expected("completed", {**NORMAL_EVENTS, "_OTHER": 1}, malformed={("_NONE", "invalid_json"): 1},
                       usage=dict(NORMAL_USAGE))
    elif scenario == "http_429_no_retry_after":  # x-should-retry is the Anthropic API's; botocore retries the 429
        exp = expected("http_429", "bedrock")
    elif scenario == "http_529_then_ok":  # botocore does not retry a 529
        exp = Expected("error", http={"529": 1})
    else:
        exp = expected(scenario, "bedrock")
        exp.malformed = {k: n for k, n in exp.malformed.items() if k[1] != "start_without_message"}
    if kind == "boto3_invoke":
        return _unmodelled_as_other(exp, "InvokeModelWithResponseStream")
    return _unmodelled_as_other(_as_converse(exp, scenario), "ConverseStream")


def _unmodelled_as_other(exp: Expected, operation: str) -> Expected:
    """botocore names an exception frame only if the installed service model has it on this operation's stream
    (ConverseStream has no modelTimeoutException); else its error code is empty, recorded as `_OTHER`."""
    known = set(_event_stream_shape(operation).members)
    exp.error_frames = {(t if s != "exception_frame" or t in known else "_OTHER", s): n
                        for (t, s), n in exp.error_frames.items()}
    return exp


def _event_stream_shape(operation: str) -> Any:
    """The installed botocore's model of `operation`'s event stream (its events and exceptions)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("bedrock-runtime").operation_model(operation)
    (stream,) = (shape for shape in model.output_shape.members.values() if shape.serialization.get("eventstream"))
    return stream


def _as_converse(exp: Expected, scenario: str) -> Expected:
    from .server import AWS_ERRORS, frame_name

    events: dict[str, int] = {}
    for name, count in exp.events.items():
        if name in CONVERSE_NAMES:
            events[CONVERSE_NAMES[name]] = events.get(CONVERSE_NAMES[name], 0) + count
    if scenario == "invalid_json":  # botocore yields an undecodable Converse event as an empty one
        events["contentBlockDelta"] += 1
    frames: dict[tuple[str, str], int] = {}
    rates = {k: n for k, n in exp.rate_limits.items() if k == "http_429"}
    for (error_type, source), count in exp.error_frames.items():
        if source != "exception_frame":  # Converse has no in-band error events: Bedrock sends the exception frame
            error_type = frame_name(AWS_ERRORS.get(error_type, "ModelStreamErrorException"))
        frames[(error_type, "exception_frame")] = count
        if error_type == "throttlingException":
            rates["exception_frame"] = count
    outcome = exp.outcome
    if outcome == "truncated" and "messageStop" in events:  # message_delta becomes messageStop: complete
        outcome = "completed"
    usage = _converse_usage() if "metadata" in events else {}  # Converse reports usage in metadata only
    return Expected(outcome, events, frames, {}, rates, exp.http, usage)


def _converse_usage() -> dict[str, int]:
    """The scenario's usage as botocore yields it: the cache token counts only where the installed service model
    has them (they came with prompt caching; botocore drops members its model lacks)."""
    fields = set(_event_stream_shape("ConverseStream").members["metadata"].members["usage"].members)
    wire = {"input": "inputTokens", "output": "outputTokens", "cache_read": "cacheReadInputTokens",
            "cache_creation": "cacheWriteInputTokens"}
    return {k: n for k, n in NORMAL_USAGE.items() if wire[k] in fields}
