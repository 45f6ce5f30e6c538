"""Scriptable wire scenarios, independent of protocol: the server encodes them as SSE or AWS event stream.

A `Scenario` is a list of `Reply`s, one per HTTP attempt (the last one repeats), so retries can be scripted.
A `Reply` is an HTTP status, headers and body parts: Anthropic events, Bedrock exception frames, chunks
without a type, raw bytes, or an abrupt connection reset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from ..errors import BEDROCK_EXCEPTION_TYPES

MODEL = "claude-opus-4-7"
BEDROCK_MODEL = "global.anthropic.claude-opus-4-7"


@dataclass(frozen=True)
class Event:
    """An Anthropic stream event; on Bedrock a `chunk` frame, first-party an `event:`/`data:` pair."""

    payload: dict[str, Any]


@dataclass(frozen=True)
class ExceptionFrame:
    """A Bedrock `:message-type: exception` frame (first-party servers send an SSE `error` instead)."""

    exception_type: str
    message: str


@dataclass(frozen=True)
class TypelessChunk:
    """A chunk whose JSON has no `type` (Bedrock's invocation-metrics trailer, #1647)."""

    payload: dict[str, Any]


@dataclass(frozen=True)
class Raw:
    """Bytes written as they are (first-party), or as the decoded bytes of a chunk frame (Bedrock)."""

    data: bytes


@dataclass(frozen=True)
class Reset:
    """Close the connection abruptly, without ending the body."""


@dataclass(frozen=True)
class Garbage:
    """Bytes written to the body as they are, outside any frame or SSE field, on both protocols."""

    data: bytes


@dataclass(frozen=True)
class Cut:
    """The first half of `part`'s encoded bytes, then the body ends (a frame truncated in the middle)."""

    part: Event


@dataclass(frozen=True)
class Corrupt:
    """`part` with one byte flipped: on Bedrock inside the payload, so the message CRC no longer matches;
    first-party (no checksums) inside the JSON, so the data is no longer valid JSON."""

    part: Event


@dataclass(frozen=True)
class Stall:
    """The server stops sending for `seconds` (longer than the client's read timeout), then goes on."""

    seconds: float


Part = Union[Event, ExceptionFrame, TypelessChunk, Raw, Reset, Garbage, Cut, Corrupt, Stall]


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    parts: tuple[Part, ...] = ()
    json_body: dict[str, Any] | None = None  # for non-stream replies (errors)


@dataclass(frozen=True)
class Scenario:
    name: str
    replies: tuple[Reply, ...]
    description: str = ""

    def reply_for(self, attempt: int) -> Reply:
        return self.replies[min(attempt, len(self.replies) - 1)]

    @property
    def read_timeout(self) -> float | None:
        """The client read timeout that makes a `Stall` in this scenario fail the stream (None: no stall)."""
        stalls = [part.seconds for reply in self.replies for part in reply.parts if isinstance(part, Stall)]
        return min(stalls) / 4 if stalls else None


# -- building blocks -----------------------------------------------------------------------------------


def message_start(model: str = MODEL, input_tokens: int = 12, cache_read: int = 3, cache_creation: int = 2) -> Event:
    return Event({
        "type": "message_start",
        "message": {
            "id": "msg_bedrock_otel_1", "type": "message", "role": "assistant", "content": [], "model": model,
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1, "cache_read_input_tokens": cache_read,
                      "cache_creation_input_tokens": cache_creation},
        },
    })


def text_block(texts: tuple[str, ...] = ("Hello", " world", "!")) -> list[Part]:
    start = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    parts: list[Part] = [Event(start)]
    parts += [Event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}})
              for t in texts]
    parts.append(Event({"type": "content_block_stop", "index": 0}))
    return parts


def message_end(output_tokens: int = 7, stop_reason: str = "end_turn") -> list[Part]:
    return [
        Event({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
               "usage": {"output_tokens": output_tokens}}),
        Event({"type": "message_stop"}),
    ]


def error_event(error_type: str, message: str = "error") -> Event:
    return Event({"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_inband_1"})


def http_error(status: int, error_type: str, headers: dict[str, str] | None = None) -> Reply:
    body = {"type": "error", "error": {"type": error_type, "message": f"HTTP {status}"}, "request_id": "req_err_1"}
    return Reply(status=status, headers=dict(headers or {}), json_body=body)


def normal_parts(texts: tuple[str, ...] = ("Hello", " world", "!")) -> tuple[Part, ...]:
    return (message_start(), *text_block(texts), *message_end())


RATE_LIMIT_HEADERS = {
    "anthropic-ratelimit-requests-limit": "1000",
    "anthropic-ratelimit-requests-remaining": "999",
    "anthropic-ratelimit-tokens-limit": "80000",
    "anthropic-ratelimit-tokens-remaining": "79000",
    "anthropic-ratelimit-input-tokens-limit": "40000",
    "anthropic-ratelimit-input-tokens-remaining": "39500",
    "anthropic-ratelimit-output-tokens-limit": "16000",
    "anthropic-ratelimit-output-tokens-remaining": "15500",
}

PING = Event({"type": "ping"})
_START, *_BLOCK = (message_start(), *text_block())

# -- the catalogue ---------------------------------------------------------------------------------------

NORMAL = Scenario("normal", (Reply(parts=normal_parts()),), "a complete stream: 1 start, 3 deltas, stop")
WITH_PING = Scenario("ping", (Reply(parts=(_START, _BLOCK[0], PING, *_BLOCK[1:], *message_end())),),
                     "a complete stream with a ping after content_block_start")
ERROR_FIRST = Scenario("error_first", (Reply(parts=(error_event("rate_limit_error", "Rate limited"),)),),
                       "#1472: a rate_limit_error as the first and only chunk of an HTTP 200 stream")
ERROR_MID = Scenario("error_mid", (Reply(parts=(_START, *_BLOCK[:2], error_event("overloaded_error", "Overloaded"))),),
                     "an overloaded_error after the first delta")
TRUNCATED = Scenario("truncated", (Reply(parts=(_START, *_BLOCK[:3])),), "the body ends after two deltas")
TYPELESS = Scenario(
    "typeless",
    (Reply(parts=(_START, *_BLOCK, message_end()[0],
                  TypelessChunk({"amazon-bedrock-invocationMetrics": {"inputTokenCount": 12, "outputTokenCount": 7}}),
                  message_end()[1])),),
    "a chunk without a type (#1647) before message_stop",
)
HTTP_429 = Scenario("http_429", (http_error(429, "rate_limit_error", {"retry-after": "0.01"}),),
                    "HTTP 429 with retry-after on every attempt: the SDK retries, then raises RateLimitError")
HTTP_429_NO_RETRY_AFTER = Scenario(
    "http_429_no_retry_after", (http_error(429, "rate_limit_error", {"x-should-retry": "false"}),),
    "HTTP 429 without retry-after; x-should-retry: false stops the SDK retrying",
)
HTTP_429_THEN_OK = Scenario(
    "http_429_then_ok", (http_error(429, "rate_limit_error", {"retry-after": "0.01"}), Reply(parts=normal_parts())),
    "one HTTP 429, then a complete stream on the retry",
)
HTTP_529 = Scenario("http_529", (http_error(529, "overloaded_error", {"x-should-retry": "false"}),),
                    "HTTP 529 overloaded, not retried")
RESET = Scenario("reset", (Reply(parts=(_START, *_BLOCK[:2], Reset())),), "the connection drops mid-stream")
INVALID_JSON = Scenario("invalid_json", (Reply(parts=(_START, Raw(b"{not json"), *_BLOCK, *message_end())),),
                        "a chunk whose payload is not JSON")

_NORMAL = normal_parts()
ERROR_AFTER_STOP = Scenario("error_after_stop", (Reply(parts=(*_NORMAL, error_event("api_error", "Late error"))),),
                            "an api_error after message_stop")
HTTP_500 = Scenario("http_500", (http_error(500, "api_error", {"retry-after": "0.01"}),),
                    "HTTP 500 with retry-after on every attempt: the SDK retries, then raises InternalServerError")
HTTP_529_THEN_OK = Scenario(
    "http_529_then_ok", (http_error(529, "overloaded_error"), Reply(parts=normal_parts())),
    "one HTTP 529 without retry-after (the SDK backs off on its own), then a complete stream",
)
TRUNCATED_AT = tuple(
    Scenario(f"truncated_at_{k}", (Reply(parts=_NORMAL[:k]),), f"the body ends cleanly after {k} of 7 events")
    for k in range(1, len(_NORMAL))
)
TRUNCATED_MID_FRAME = Scenario("truncated_mid_frame", (Reply(parts=(*_NORMAL[:3], Cut(_NORMAL[3]))),),
                               "the body ends in the middle of the second delta's frame")
EMPTY_BODY = Scenario("empty_body", (Reply(parts=()),), "HTTP 200 with an empty body (truncated before any event)")
CORRUPT = Scenario("corrupt", (Reply(parts=(*_NORMAL[:3], Corrupt(_NORMAL[3]), *_NORMAL[4:])),),
                   "the second delta damaged (Bedrock: message CRC mismatch; first-party: broken JSON)")
GARBAGE = Scenario("garbage", (Reply(parts=(*_NORMAL[:3], Garbage(b"\x00\xffgarbage\x13\x37" * 8), *_NORMAL[3:])),),
                   "garbage bytes between two events, outside any frame")
UNKNOWN_EVENT = Scenario(
    "unknown_event",
    (Reply(parts=(*_NORMAL[:2], Event({"type": "thinking_summary", "index": 0, "summary": "..."}), *_NORMAL[2:])),),
    "an event type this SDK does not know, mid-stream",
)
STALL = Scenario("stall", (Reply(parts=(*_NORMAL[:3], Stall(2.0), *_NORMAL[3:])),),
                 "the server stalls after the first delta until the client's read timeout fires")
STALL_IN_PREAMBLE = Scenario("stall_in_preamble", (Reply(parts=(_NORMAL[0], Stall(0.6), *_NORMAL[1:])),),
                             "the server stalls after message_start until the client's read timeout fires")
LARGE_EVENT = Scenario("large_event", (Reply(parts=normal_parts(("x" * (1 << 20), "y" * 4096, "!"))),),
                       "a 1 MiB content_block_delta")

BEDROCK_EXCEPTIONS = tuple(sorted(BEDROCK_EXCEPTION_TYPES))


def exception_scenario(exception_type: str) -> Scenario:
    return Scenario(f"exception_{exception_type}",
                    (Reply(parts=(_START, *_BLOCK[:2], ExceptionFrame(exception_type, f"{exception_type} raised"))),),
                    f"a Bedrock {exception_type} frame after the first delta")


EXCEPTION_FRAMES = tuple(exception_scenario(name) for name in BEDROCK_EXCEPTIONS)

# -- scenarios that change from one attempt to the next (retry mode; without it only the first attempt is made)

_RATE_LIMITED = error_event("rate_limit_error", "Rate limited")
_THROTTLED = ExceptionFrame("throttlingException", "Too many tokens, please wait before trying again.")
_OK = Reply(parts=normal_parts())
RATE_LIMITED_THEN_OK = Scenario(
    "rate_limited_then_ok", (Reply(parts=(_RATE_LIMITED,)), _OK),
    "a rate_limit_error as the first frame of an HTTP 200 stream, then a complete stream on the next attempt")
THROTTLED_THEN_OK = Scenario(
    "throttled_then_ok", (Reply(parts=(_THROTTLED,)), _OK),
    "a throttlingException frame first (an SSE error first-party), then a complete stream")
THROTTLED_ALWAYS = Scenario(
    "throttled_always", (Reply(headers={"retry-after-ms": "10"}, parts=(_THROTTLED,)),),
    "every attempt opens with a throttlingException frame (retry-after-ms: 10 on each 200)")
ERROR_AFTER_START_THEN_OK = Scenario(
    "error_after_start_then_ok", (Reply(parts=(_START, PING, error_event("overloaded_error", "Overloaded"))), _OK),
    "message_start and a ping, then an overloaded_error before any content; then a complete stream")
RETRY_AFTER_THEN_OK = Scenario(
    "retry_after_then_ok", (Reply(headers={"retry-after": "0.02"}, parts=(_RATE_LIMITED,)), _OK),
    "a rate_limit_error first on a 200 carrying retry-after: 0.02, then a complete stream")
RETRY_AFTER_MS_THEN_OK = Scenario(
    "retry_after_ms_then_ok", (Reply(headers={"retry-after-ms": "30"}, parts=(_RATE_LIMITED,)), _OK),
    "a rate_limit_error first on a 200 carrying retry-after-ms: 30, then a complete stream")
SHOULD_NOT_RETRY = Scenario(
    "should_not_retry", (Reply(headers={"x-should-retry": "false"}, parts=(_RATE_LIMITED,)), _OK),
    "a rate_limit_error first on a 200 carrying x-should-retry: false (a complete stream would follow)")
NOT_RETRYABLE_FIRST = Scenario(
    "not_retryable_first", (Reply(parts=(error_event("invalid_request_error", "Bad request"),)), _OK),
    "an invalid_request_error as the first frame (never retried; a complete stream would follow)")
RETRY_SCENARIOS = (RATE_LIMITED_THEN_OK, THROTTLED_THEN_OK, THROTTLED_ALWAYS, ERROR_AFTER_START_THEN_OK,
                   RETRY_AFTER_THEN_OK, RETRY_AFTER_MS_THEN_OK, SHOULD_NOT_RETRY, NOT_RETRYABLE_FIRST)

ALL: dict[str, Scenario] = {
    s.name: s
    for s in (NORMAL, WITH_PING, ERROR_FIRST, ERROR_MID, TRUNCATED, TYPELESS, HTTP_429, HTTP_429_NO_RETRY_AFTER,
              HTTP_429_THEN_OK, HTTP_529, RESET, INVALID_JSON, *EXCEPTION_FRAMES, ERROR_AFTER_STOP, HTTP_500,
              HTTP_529_THEN_OK, *TRUNCATED_AT, TRUNCATED_MID_FRAME, EMPTY_BODY, CORRUPT, GARBAGE, UNKNOWN_EVENT,
              STALL, STALL_IN_PREAMBLE, LARGE_EVENT, *RETRY_SCENARIOS)
}


# A Managed Agents session's event stream (`client.beta.sessions.events.stream(...)`, GET
# /v1/sessions/{id}/events/stream): SSE whose events are named by their type, as the SDK reads them
SESSION_EVENTS: tuple[dict[str, Any], ...] = (
    {"type": "session.status_running", "id": "sevt_1", "processed_at": "2026-12-03T10:00:00Z"},
    {"type": "agent.message", "id": "sevt_2", "content": [{"type": "text", "text": "Hello"}],
     "processed_at": "2026-12-03T10:00:01Z"},
    {"type": "session.status_idle", "id": "sevt_3", "stop_reason": {"type": "end_turn"},
     "processed_at": "2026-12-03T10:00:02Z"},
)
