"""Retry mode (opt-in), the hand-over: what the client gets for an attempt after the look-ahead (`retry.py`).

For an HTTP 200 event stream of a streamed call, the attempt hook reads the body's first chunks into a
`Lookahead`, then hands the client one of two things:

- for a retryable in-band error, the HTTP error the error stands for (its error-table row, `errors.py`: the
  status and, for botocore, the AWS error code; the 200's headers; the error envelope as the body), and the 200
  is closed. The client's own retry loop then applies its own policy: the SDK's `max_retries` (one budget with
  its HTTP-level retries), `retry-after-ms` / `retry-after`, its backoff, `x-should-retry`, and once the budget
  is spent its own typed exception for that status; botocore's retry mode and attempt budget, then its modelled
  exception (`ThrottlingException`, ...);
- otherwise the same response, whose body replays the chunks read and then the rest untouched (a read error is
  raised where it happened, after those bytes).

httpx (the SDK's transport, `httpx` or `httpx2`, sync or async) and botocore (urllib3's streamed response) differ
only in how a body is read and replaced and how an error response is built; the hand-over is `_hand_over`.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

from ..errors import ERRORS
from .retry import InBandError, Lookahead

log = logging.getLogger("bedrock_otel")

_FRAMING_HEADERS = frozenset({b"content-length", b"content-type", b"content-encoding", b"transfer-encoding"})


def _hand_over(look: Lookahead, response: Any, build: Callable[[Any, InBandError], Any]) -> Any:
    """The HTTP error response the client gets instead of `response` (None: no retryable error, or the error
    response could not be built, which is bedrock_otel's own failure: counted, and the body is handed on)."""
    error = look.retryable
    if error is None:
        return None
    try:
        return build(response, error)
    except Exception:
        log.debug("bedrock_otel: building the HTTP error for an in-band error failed", exc_info=True)
        look.failed, look.retryable = True, None
        return None


def _read_first(look: Lookahead, rest: Any, close: Callable[[], Any]) -> tuple[list[bytes], Exception | None]:
    """Feed `look` the body's first chunks until it has decided: (the chunks read, the exception reading raised)."""
    chunks: list[bytes] = []
    try:
        for chunk in rest:
            chunks.append(chunk)
            if look.feed(chunk):
                break
    except Exception as exc:  # the wire's: raised to the caller where it happened, after the bytes read
        return chunks, exc
    except BaseException:  # interrupted (KeyboardInterrupt): release the connection and go on interrupting
        close()
        raise
    return chunks, None


# -- httpx / httpx2 (the SDK's attempts) ------------------------------------------------------------------------

def read_ahead(response: Any) -> tuple[Any, Lookahead | None]:
    """Read ahead a sync httpx response: the response the SDK gets instead (an HTTP error, or the same one
    replaying what was read), and what was read (None: not an event stream this can read)."""
    look = Lookahead.for_response(response)
    replay = byte_stream_class(response, _SyncReplay) if look is not None else None
    if replay is None:
        return response, None
    original = response.stream
    rest = iter(original)
    chunks, failure = _read_first(look, rest, response.close)  # type: ignore[arg-type]
    handed = _hand_over(look, response, _build_error_response)  # type: ignore[arg-type]
    if handed is not None:
        response.close()
        return handed, look
    response.stream = replay(original, chunks, rest, failure)
    return response, look


async def aread_ahead(response: Any) -> tuple[Any, Lookahead | None]:
    """The async twin of `read_ahead` (only the reading and closing differ)."""
    look = Lookahead.for_response(response)
    replay = byte_stream_class(response, _AsyncReplay) if look is not None else None
    if replay is None:
        return response, None
    original = response.stream
    rest = original.__aiter__()
    chunks: list[bytes] = []
    failure: Exception | None = None
    try:
        async for chunk in rest:
            chunks.append(chunk)
            if look.feed(chunk):  # type: ignore[union-attr]
                break
    except Exception as exc:
        failure = exc
    except BaseException:  # cancelled: release the connection and go on cancelling
        await response.aclose()
        raise
    handed = _hand_over(look, response, _build_error_response)  # type: ignore[arg-type]
    if handed is not None:
        await response.aclose()
        return handed, look
    response.stream = replay(original, chunks, rest, failure)
    return response, look


def _build_error_response(response: Any, error: InBandError) -> Any:
    """The SDK's HTTP error: the error's retry status, the 200's headers (request id, retry-after, x-should-retry,
    rate-limit headers), the envelope as JSON body."""
    headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _FRAMING_HEADERS]
    if "request-id" not in response.headers:  # Bedrock: the SDK reads request ids from `request-id` only
        request_id = error.body.get("request_id") or response.headers.get("x-amzn-requestid")
        if isinstance(request_id, str):
            headers.append((b"request-id", request_id.encode("latin-1", "replace")))
    headers.append((b"content-type", b"application/json"))
    content = json.dumps(error.body).encode("utf-8")
    status = ERRORS[error.error_type].sdk_retry
    return type(response)(status, headers=headers, content=content, request=response.request)


# -- pressure mode: an attempt not sent ------------------------------------------------------------------------

REFUSED_HEADER = "x-bedrock-otel-pressure"  # on a refusal: tells the application (and botocore's hook) it is ours
REFUSED_MESSAGE = ("Not sent by bedrock_otel pressure mode: this model's quota is throttling, and the request's turn "
                   "was more than BEDROCK_OTEL_PRESSURE_MAX_WAIT away")


def refusal(request: Any) -> Any:
    """The HTTP 429 an SDK attempt gets instead of being sent: the API's `rate_limit_error`, with `x-should-retry:
    false` (the SDK raises `RateLimitError` at once), from the HTTP library of the request (httpx or httpx2)."""
    import sys

    http = sys.modules[type(request).__module__.partition(".")[0]]
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": REFUSED_MESSAGE}}
    headers = [(b"content-type", b"application/json"), (b"x-should-retry", b"false"),
               (REFUSED_HEADER.encode(), b"refused")]
    return http.Response(429, headers=headers, content=json.dumps(body).encode("utf-8"), request=request)


class WrappedBody:
    """A body put in place of a response's own; in everything else it is the original (httpx2 reads the
    response's `elapsed` from its byte stream once it is closed). The SDK (1.14+) reads `stream_observer` off the
    body once per event; were it missing, each read would fail through `__getattr__` (~12 k instructions), so it
    is an attribute."""

    def __init__(self, original: Any) -> None:
        self._original = original
        self.stream_observer = getattr(original, "stream_observer", None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)

    # the HTTP library's byte-stream base classes define these (as no-ops), so `__getattr__` never sees them
    def close(self) -> None:
        self._original.close()

    async def aclose(self) -> None:
        await self._original.aclose()


class _Replay(WrappedBody):
    """A body that yields the chunks read ahead, then raises what reading raised, or yields the rest."""

    def __init__(self, original: Any, chunks: list[bytes], rest: Any, failure: Exception | None) -> None:
        super().__init__(original)
        self._chunks = chunks
        self._rest = rest
        self._failure = failure

    def _take(self) -> tuple[list[bytes], Exception | None]:
        chunks, failure = self._chunks, self._failure
        self._chunks, self._failure = [], None
        return chunks, failure


class _SyncReplay(_Replay):
    is_async = False

    def __iter__(self) -> Any:
        chunks, failure = self._take()
        yield from chunks
        if failure is not None:
            raise failure
        yield from self._rest


class _AsyncReplay(_Replay):
    is_async = True

    async def __aiter__(self) -> Any:
        chunks, failure = self._take()
        for chunk in chunks:
            yield chunk
        if failure is not None:
            raise failure
        async for chunk in self._rest:
            yield chunk


_REPLAY_CLASSES: dict[tuple[type, type], type] = {}


def byte_stream_class(response: Any, kind: type) -> type | None:
    """`kind` (a body that wraps the response's own: a replay, a tap) made also the HTTP library's own byte-stream
    base class, as httpx and httpx2 check (`SyncByteStream` / `AsyncByteStream` of whichever library made the
    response, by `kind.is_async`; an in-memory body is both). None for a body of any other kind: it is left
    alone. Settled before anything is read."""
    try:
        cls = type(response.stream)
    except Exception:
        return None
    replay = _REPLAY_CLASSES.get((cls, kind))
    if replay is None:
        name = "AsyncByteStream" if kind.is_async else "SyncByteStream"  # type: ignore[attr-defined]
        base = next((b for b in cls.__mro__ if b.__name__ == name), None)
        if base is None:
            return None
        replay = _REPLAY_CLASSES[cls, kind] = type(f"{kind.__name__.lstrip('_')}{name}", (kind, base), {})
    return replay


# -- botocore (boto3's bedrock-runtime streams, at `Endpoint._send`) ------------------------------------------

def read_ahead_aws(response: Any) -> tuple[Any, Lookahead | None]:
    """Read ahead an `AWSResponse` whose `raw` is urllib3's streamed response: botocore gets an HTTP error
    response, or the same response whose `raw.stream()` replays what was read."""
    look = Lookahead.for_response(response)
    if look is None:
        return response, None
    raw = response.raw
    rest = raw.stream()
    chunks, failure = _read_first(look, rest, raw.close)
    handed = _hand_over(look, response, _aws_error_response)
    if handed is not None:
        raw.close()
        return handed, look
    response.raw = _RawReplay(raw, chunks, rest, failure)
    return response, look


def _aws_error_response(response: Any, error: InBandError) -> Any:
    """botocore's HTTP error: what Bedrock answers for that error before a stream opens (`x-amzn-ErrorType`)."""
    from botocore.awsrequest import AWSResponse

    status, code = ERRORS[error.error_type].aws_retry  # type: ignore[misc]
    body = json.dumps({"message": error.message}).encode("utf-8")
    headers = {k: v for k, v in response.headers.items() if k.lower().encode() not in _FRAMING_HEADERS}
    headers.update({"x-amzn-ErrorType": code, "content-type": "application/json", "content-length": str(len(body))})
    return AWSResponse(response.url, status, headers, _Body(body))


def aws_refusal(request: Any) -> Any:
    """The HTTP 429 `ThrottlingException` a botocore attempt gets instead of being sent (the budget hook does not
    let botocore retry it: `REFUSED_HEADER`)."""
    from botocore.awsrequest import AWSResponse

    body = json.dumps({"message": REFUSED_MESSAGE}).encode("utf-8")
    headers = {"x-amzn-ErrorType": "ThrottlingException", "content-type": "application/json",
               "content-length": str(len(body)), REFUSED_HEADER: "refused"}
    return AWSResponse(request.url, 429, headers, _Body(body))


class _Body:
    """The body of a handed-over error response, as botocore reads one (`stream()`, `read()`, `close()`)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        data, self._data = self._data, b""
        if data:
            yield data

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        data, self._data = self._data, b""
        return data

    def close(self) -> None:
        self._data = b""


class _RawReplay:
    """urllib3's response with `stream()` yielding the chunks read ahead, then what reading raised or the rest;
    everything else (`close()`, `release_conn()`, attributes) is the response's own."""

    def __init__(self, raw: Any, chunks: list[bytes], rest: Any, failure: Exception | None) -> None:
        self._raw = raw
        self._replay = _SyncReplay(raw, chunks, rest, failure)

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        return iter(self._replay)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)
