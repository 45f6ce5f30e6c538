"""The in-band error table: one row per error type a stream can carry, Anthropic's and Bedrock's.

Every decision about an in-band error reads its row here: the `error.type` label (`classify`), whether it is a
rate limit and from which source (the measurements), whether retry mode retries it and as which HTTP error
(`observe/retry.py`, `observe/replay.py`), and which SDK exception repair mode raises (`observe/repair.py`).
The type names are contract values (docs/telemetry.md, `error.type`).
"""

from __future__ import annotations

from typing import NamedTuple

from . import semconv as sc


class ErrorKind(NamedTuple):
    """What one in-band error type stands for."""

    status: int  # the HTTP status the API answers with for this error (before a stream opens)
    bedrock: bool  # an AWS exception (Bedrock's exception frames), not an Anthropic error type
    rate_limit: str | None  # the anthropic.rate_limit.source value it counts under, or None: not a rate limit
    # retry mode: the status the SDK is handed for it, among those every SDK version retries (408, 409, 429,
    # >= 500), and the (status, x-amzn-ErrorType code) botocore is handed, among what its retry modes retry
    # (throttling codes, 429, 500, 503: no 529); None: not retried, for the reason in `why`
    sdk_retry: int | None
    aws_retry: tuple[int, str] | None
    # repair mode: the SDK exception classes, the first that the installed SDK has (none: APIStatusError)
    sdk_classes: tuple[str, ...]
    why: str


_THROTTLED = (429, "ThrottlingException")
_UNAVAILABLE = (503, "ServiceUnavailableException")
_INTERNAL = (500, "InternalServerException")
_RATE_LIMIT_CLASSES = ("RateLimitError",)
_OVERLOADED_CLASSES = ("OverloadedError", "InternalServerError")  # OverloadedError is newer than some SDKs
_CLIENT_ERROR = "a client error: the same request fails again"

ERRORS: dict[str, ErrorKind] = {
    # Anthropic's error types (first-party and Vertex `error` events; Bedrock chunks of type `error`)
    "rate_limit_error": ErrorKind(429, False, sc.SOURCE_ERROR_EVENT, 429, _THROTTLED, _RATE_LIMIT_CLASSES,
                                  "retried: the SDK's backoff and retry-after apply"),
    "overloaded_error": ErrorKind(529, False, None, 529, _UNAVAILABLE, _OVERLOADED_CLASSES,
                                  "retried; botocore is handed Bedrock's 503, since it retries no 529"),
    "api_error": ErrorKind(500, False, None, 500, _INTERNAL, (), "retried: a transient server error"),
    "invalid_request_error": ErrorKind(400, False, None, None, None, (), _CLIENT_ERROR),
    "authentication_error": ErrorKind(401, False, None, None, None, (), _CLIENT_ERROR),
    "billing_error": ErrorKind(402, False, None, None, None, (), _CLIENT_ERROR),
    "permission_error": ErrorKind(403, False, None, None, None, (), _CLIENT_ERROR),
    "not_found_error": ErrorKind(404, False, None, None, None, (), _CLIENT_ERROR),
    "request_too_large": ErrorKind(413, False, None, None, None, (), _CLIENT_ERROR),
    "timeout_error": ErrorKind(504, False, None, None, None, (), "not retried: the request timed out upstream"),
    # Bedrock's exception frames (SDK >= 1.7 turns them into `error` events; botocore raises EventStreamError)
    "throttlingException": ErrorKind(429, True, sc.SOURCE_EXCEPTION_FRAME, 429, _THROTTLED, _RATE_LIMIT_CLASSES,
                                     "retried: the SDK's backoff and retry-after apply"),
    "serviceUnavailableException": ErrorKind(503, True, None, 503, _UNAVAILABLE, _OVERLOADED_CLASSES,
                                             "retried: a transient server error"),
    "internalServerException": ErrorKind(500, True, None, 500, _INTERNAL, (), "retried: a transient server error"),
    "modelStreamErrorException": ErrorKind(424, True, None, 500, (500, "ModelStreamErrorException"), (),
                                           "retried as a 500: no SDK retries a 424, and Bedrock's documentation "
                                           "says to retry it"),
    "validationException": ErrorKind(400, True, None, None, None, (), _CLIENT_ERROR),
    "modelTimeoutException": ErrorKind(408, True, None, None, None, (),
                                       "not retried: the model ran past its processing timeout, and the same "
                                       "prompt is likely to again, after as long a wait (botocore does not "
                                       "retry it either)"),
}

ANTHROPIC_ERROR_TYPES = frozenset(name for name, kind in ERRORS.items() if not kind.bedrock)
BEDROCK_EXCEPTION_TYPES = frozenset(name for name, kind in ERRORS.items() if kind.bedrock)
# error type -> anthropic.rate_limit.source, for the error types that are rate limits
RATE_LIMIT_SOURCES = {name: kind.rate_limit for name, kind in ERRORS.items() if kind.rate_limit is not None}
# error type -> HTTP status the SDK is handed in retry mode, for the error types retry mode retries
# the statuses and in-band error types pressure mode reads as a throttle: "send less" (429, and 529 overloaded)
THROTTLE_STATUSES = frozenset({429, 529})
THROTTLES = frozenset(name for name, kind in ERRORS.items() if kind.status in THROTTLE_STATUSES)
RETRY_STATUS = {name: kind.sdk_retry for name, kind in ERRORS.items() if kind.sdk_retry is not None}


def source_of(error_type: str) -> str:
    """`anthropic.stream.error.source` of an error seen as an `error` event: SDK >= 1.7 turns Bedrock exception
    frames into such events, and the AWS name gives the frame away."""
    kind = ERRORS.get(error_type)
    return sc.SOURCE_EXCEPTION_FRAME if kind is not None and kind.bedrock else sc.SOURCE_EVENT
