"""Retry mode (opt-in): a streamed call whose HTTP 200 stream opens with a retryable in-band error is retried by
the SDK's own retry loop, under the client's own policy.

At the HTTP-attempt hook (`httpx(2).Client.send`), before the SDK sees the response, the first events of a 200
event stream are read ahead. The preamble events that carry no content yet (`message_start`, `ping`,
`content_block_start`) are held back, at most `HOLD_LIMIT` bytes, until the first other event arrives:

- a retryable in-band error (`RETRY_STATUS`): the SDK is handed the HTTP error that the error stands for (the
  status below, the original headers, the error envelope as a JSON body). Its own loop then applies
  `max_retries` (one budget with its HTTP-level retries), `retry-after-ms` / `retry-after`, its exponential
  backoff with jitter, `x-should-retry`, its retry-count header, and, once the budget is spent, raises its own
  typed exception for that status;
- anything else (content, another error, the end of the body, a read error, garbage): the SDK gets the same
  response, whose body yields the bytes read ahead and then the rest untouched (a read error is raised where
  it happened, after those bytes).

Nothing has reached the caller at that point: `create()` and `stream()` have not returned yet.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from .. import semconv as sc
from . import classify

log = logging.getLogger("bedrock_otel")

# In-band error type -> the HTTP status the SDK is handed: the one the API itself uses for that error, among
# those every SDK version retries (408, 409, 429, >= 500). Bedrock's ModelStreamErrorException is HTTP 424 on
# the wire, which no SDK retries; its documentation says to retry, so it is handed over as a 500.
RETRY_STATUS = {
    "rate_limit_error": 429,
    "throttlingException": 429,
    "overloaded_error": 529,
    "serviceUnavailableException": 503,
    "api_error": 500,
    "internalServerException": 500,
    "modelStreamErrorException": 500,
}
# Not retried: client errors (the same request fails again), unknown types, and modelTimeoutException (the
# model ran past its processing timeout: the same prompt is likely to again, after as long a wait).

PREAMBLE = frozenset({sc.MESSAGE_START, sc.PING, sc.CONTENT_BLOCK_START, sc.CONVERSE_MESSAGE_START,
                      sc.CONVERSE_BLOCK_START})
HOLD_LIMIT = 64 * 1024  # bytes held back at most; past that the body is handed on as it is

_SSE_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_SSE_LINE = re.compile(rb"\r\n|\n|\r")
_UNDECODABLE = (ValueError, KeyError, TypeError)  # what decoding a damaged frame or event raises (JSON, base64, …)
_FRAMING_HEADERS = frozenset({b"content-length", b"content-type", b"content-encoding", b"transfer-encoding"})


@dataclass(frozen=True)
class InBandError:
    """A retryable error that opened a stream, and the HTTP error the SDK gets for it."""

    error_type: str
    source: str
    message: str
    body: dict[str, Any]

    @property
    def status(self) -> int:
        return RETRY_STATUS[self.error_type]


class Lookahead:
    """The first events of one body, fed chunk by chunk, until it is clear whether the stream opens with a
    retryable error (`retryable`) or not (`done` with `retryable` None). Never raises: anything it cannot parse
    ends the look-ahead and the body is handed on as it is."""

    def __init__(self, bedrock: bool) -> None:
        self.events: list[str] = []  # wire names of the events read, the error included
        self.retryable: InBandError | None = None
        self.done = False
        self.failed = False  # bedrock_otel's own error (counted by the runtime), not the wire's
        self._held = 0
        self._parse = self._frames if bedrock else self._sse
        self._sse_buffer = b""
        self._sse_offset = 0  # where the next unparsed SSE event starts in the buffer
        self._frame_buffer: Any = None

    @classmethod
    def for_response(cls, response: Any) -> Lookahead | None:
        """A look-ahead for an HTTP 200 event stream of either protocol, read as sent (no content encoding)."""
        try:
            if response.status_code != 200:
                return None
            headers = response.headers
            if headers.get("content-encoding", "identity").strip().lower() not in ("identity", ""):
                return None
            content_type = headers.get("content-type", "")
        except Exception:  # not an httpx response: leave it alone
            return None
        if content_type.startswith("text/event-stream"):
            return cls(bedrock=False)
        if content_type.startswith("application/vnd.amazon.eventstream"):
            return cls(bedrock=True)
        return None

    def feed(self, chunk: bytes) -> bool:
        """Take the next chunk of the body; True once reading ahead should stop."""
        self._held += len(chunk)
        try:
            for name, envelope, source in self._parse(chunk):
                self._decide(name, envelope, source)
                if self.done:
                    return True
        except _UNDECODABLE:  # garbage on the wire: handed on, for the SDK to fail on and the observer to count
            self.done = True
            return True
        except Exception:
            log.debug("bedrock_otel: reading ahead failed; the body is handed on as it came", exc_info=True)
            self.failed = self.done = True
            return True
        self.done = self._held > HOLD_LIMIT
        return self.done

    def _decide(self, name: str, envelope: Any, source: str | None) -> None:
        self.events.append(name)
        if name in PREAMBLE:
            return
        self.done = True
        if name == sc.ERROR:
            error_type, message = classify.error_from_payload(envelope)
            if error_type in RETRY_STATUS:
                self.retryable = InBandError(error_type, source or classify.error_source(error_type), message,
                                             envelope)

    def _sse(self, chunk: bytes) -> Any:
        """Complete first-party (and Vertex) SSE events: (name, error envelope or None, None). Parsed one at a
        time from an offset, so a chunk holding a whole body costs only the events read."""
        self._sse_buffer, self._sse_offset = self._sse_buffer[self._sse_offset:] + chunk, 0
        while True:
            end = _SSE_EVENT_END.search(self._sse_buffer, self._sse_offset)
            if end is None:
                return
            block, self._sse_offset = self._sse_buffer[self._sse_offset:end.start()], end.end()
            name, data = "", []
            for line in _SSE_LINE.split(block):
                field, _, value = line.partition(b":")
                value = value[1:] if value.startswith(b" ") else value
                if field == b"event":
                    name = value.decode("utf-8", "replace")
                elif field == b"data":
                    data.append(value)
            if not name and not data:
                continue  # a comment or a blank keep-alive
            text = b"\n".join(data).decode("utf-8", "replace")
            if not name or name == "message":
                name = classify.peek_type(text) or sc.OTHER
            yield name, (classify.decode_chunk(text) if name == sc.ERROR else None), None

    def _frames(self, chunk: bytes) -> Any:
        """Complete Bedrock event-stream frames, decoded by botocore as the SDK decodes them, one at a time."""
        if self._frame_buffer is None:
            from botocore.eventstream import EventStreamBuffer

            self._frame_buffer = EventStreamBuffer()
        self._frame_buffer.add_data(chunk)
        for message in _checked(self._frame_buffer):
            headers = message.headers
            if headers.get(":message-type") == "exception":
                payload = json.loads(message.payload)
                text = payload.get("message") if isinstance(payload, dict) else None
                envelope = {"type": "error", "error": {"type": headers.get(":exception-type"), "message": text or ""}}
                yield sc.ERROR, envelope, sc.SOURCE_EXCEPTION_FRAME
                continue
            event_type = headers.get(":event-type")
            if event_type != "chunk":  # ConverseStream's events, by their wire names
                yield (event_type if isinstance(event_type, str) else sc.OTHER), None, None
                continue
            text = _chunk_bytes(message.payload).decode("utf-8")
            name = classify.peek_type(text)  # the common case: no full parse of events that carry no error
            if name is None or name == sc.ERROR:
                inner = json.loads(text)
                name = inner.get("type") if isinstance(inner, dict) else None
                yield (name if isinstance(name, str) else sc.OTHER), inner, None
            else:
                yield name, None, None


_BYTES_PREFIX = b'{"bytes":"'


def _chunk_bytes(payload: bytes) -> bytes:
    """The decoded bytes of a `chunk` frame's `{"bytes": "<base64>", ...}` payload (peeked, else parsed)."""
    if payload.startswith(_BYTES_PREFIX):
        end = payload.find(b'"', len(_BYTES_PREFIX))
        if end > 0:
            return base64.b64decode(payload[len(_BYTES_PREFIX):end], validate=True)
    return base64.b64decode(json.loads(payload)["bytes"], validate=True)


def _checked(frames: Any) -> Any:
    """botocore's frames, with a damaged one (checksum, lengths) raised as the ValueError of undecodable input."""
    from botocore.eventstream import ParserError

    iterator = iter(frames)
    while True:
        try:
            message = next(iterator)
        except StopIteration:
            return
        except ParserError as exc:
            raise ValueError(str(exc)) from exc
        yield message


def read_ahead(response: Any) -> tuple[Any, Lookahead | None]:
    """Read ahead a sync response: the response the SDK gets instead (an HTTP error, or the same one replaying
    what was read), and what was read (None: not an event stream this can read)."""
    look = Lookahead.for_response(response)
    replay = _replay_class(response, _SyncReplay) if look is not None else None
    if replay is None:
        return response, None
    original = response.stream
    rest = iter(original)
    chunks, failure = _read_first(look, rest, response.close)
    error_response = _error_response(response, look)
    if error_response is not None:
        response.close()
        return error_response, look
    response.stream = replay(original, chunks, rest, failure)
    return response, look


def _read_first(look: Lookahead, rest: Any, close: Any) -> tuple[list[bytes], Exception | None]:
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


async def aread_ahead(response: Any) -> tuple[Any, Lookahead | None]:
    """The async twin of `read_ahead`."""
    look = Lookahead.for_response(response)
    replay = _replay_class(response, _AsyncReplay) if look is not None else None
    if replay is None:
        return response, None
    original = response.stream
    rest = original.__aiter__()
    chunks: list[bytes] = []
    failure: Exception | None = None
    try:
        async for chunk in rest:
            chunks.append(chunk)
            if look.feed(chunk):
                break
    except Exception as exc:
        failure = exc
    except BaseException:  # cancelled: release the connection and go on cancelling
        await response.aclose()
        raise
    error_response = _error_response(response, look)
    if error_response is not None:
        await response.aclose()
        return error_response, look
    response.stream = replay(original, chunks, rest, failure)
    return response, look


def _error_response(response: Any, look: Lookahead) -> Any:
    """The HTTP error the SDK gets for a retryable error (None for none, or if it cannot be built): its status,
    the 200's headers (request id, retry-after, x-should-retry, rate-limit headers), the envelope as JSON body."""
    error = look.retryable
    if error is None:
        return None
    try:
        return _build_error_response(response, error)
    except Exception:
        log.debug("bedrock_otel: building the HTTP error for an in-band error failed", exc_info=True)
        look.failed, look.retryable = True, None
        return None


def _build_error_response(response: Any, error: InBandError) -> Any:
    headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _FRAMING_HEADERS]
    if "request-id" not in response.headers:  # Bedrock: the SDK reads request ids from `request-id` only
        request_id = error.body.get("request_id") or response.headers.get("x-amzn-requestid")
        if isinstance(request_id, str):
            headers.append((b"request-id", request_id.encode("latin-1", "replace")))
    headers.append((b"content-type", b"application/json"))
    content = json.dumps(error.body).encode("utf-8")
    return type(response)(error.status, headers=headers, content=content, request=response.request)


class _Replay:
    """A body that yields the chunks read ahead, then raises what reading raised, or yields the rest."""

    def __init__(self, original: Any, chunks: list[bytes], rest: Any, failure: Exception | None) -> None:
        self._original = original
        self._chunks = chunks
        self._rest = rest
        self._failure = failure

    def _take(self) -> tuple[list[bytes], Exception | None]:
        chunks, failure = self._chunks, self._failure
        self._chunks, self._failure = [], None
        return chunks, failure


class _SyncReplay(_Replay):
    def __iter__(self) -> Any:
        chunks, failure = self._take()
        yield from chunks
        if failure is not None:
            raise failure
        yield from self._rest

    def close(self) -> None:
        self._original.close()


class _AsyncReplay(_Replay):
    async def __aiter__(self) -> Any:
        chunks, failure = self._take()
        for chunk in chunks:
            yield chunk
        if failure is not None:
            raise failure
        async for chunk in self._rest:
            yield chunk

    async def aclose(self) -> None:
        await self._original.aclose()


_REPLAY_CLASSES: dict[tuple[type, type], type] = {}


def _replay_class(response: Any, kind: type) -> type | None:
    """A replay class that is also the HTTP library's own byte-stream base class, as httpx and httpx2 check
    (`SyncByteStream` / `AsyncByteStream` of whichever library made the response; an in-memory body is both).
    None for a body of any other kind: it is not read ahead. Settled before anything is read."""
    try:
        cls = type(response.stream)
    except Exception:
        return None
    replay = _REPLAY_CLASSES.get((cls, kind))
    if replay is None:
        name = "SyncByteStream" if kind is _SyncReplay else "AsyncByteStream"
        base = next((b for b in cls.__mro__ if b.__name__ == name), None)
        if base is None:
            return None
        replay = _REPLAY_CLASSES[cls, kind] = type(f"Replayed{name}", (kind, base), {})
    return replay


# -- botocore (boto3's bedrock-runtime streams): the same look-ahead at `Endpoint._send` -------------------------

# In-band error type -> (HTTP status, the error code botocore reads from `x-amzn-ErrorType`): what Bedrock answers
# for that error before a stream opens, among what botocore retries in its legacy, standard and adaptive modes
# (throttling codes, 429, 500, 503). A 529 is not among them: an overloaded_error is handed over as Bedrock's 503.
AWS_RETRY = {
    "rate_limit_error": (429, "ThrottlingException"),
    "throttlingException": (429, "ThrottlingException"),
    "overloaded_error": (503, "ServiceUnavailableException"),
    "serviceUnavailableException": (503, "ServiceUnavailableException"),
    "api_error": (500, "InternalServerException"),
    "internalServerException": (500, "InternalServerException"),
    "modelStreamErrorException": (500, "ModelStreamErrorException"),
}


def read_ahead_aws(response: Any) -> tuple[Any, Lookahead | None]:
    """The botocore twin of `read_ahead`, for an `AWSResponse` whose `raw` is urllib3's streamed response: botocore
    gets an HTTP error response (its retry handler then applies the client's retry mode, and raises the modelled
    exception once the attempts are spent), or the same response whose `raw.stream()` replays what was read."""
    look = Lookahead.for_response(response)
    if look is None:
        return response, None
    raw = response.raw
    rest = raw.stream()
    chunks, failure = _read_first(look, rest, raw.close)
    if look.retryable is not None:
        try:
            error_response = _aws_error_response(response, look.retryable)
        except Exception:
            log.debug("bedrock_otel: building the HTTP error for an in-band error failed", exc_info=True)
            look.failed, look.retryable = True, None
        else:
            raw.close()
            return error_response, look
    response.raw = _RawReplay(raw, chunks, rest, failure)
    return response, look


def _aws_error_response(response: Any, error: InBandError) -> Any:
    from botocore.awsrequest import AWSResponse

    status, code = AWS_RETRY[error.error_type]
    body = json.dumps({"message": error.message}).encode("utf-8")
    headers = {k: v for k, v in response.headers.items() if k.lower().encode() not in _FRAMING_HEADERS}
    headers.update({"x-amzn-ErrorType": code, "content-type": "application/json", "content-length": str(len(body))})
    return AWSResponse(response.url, status, headers, _Body(body))


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
