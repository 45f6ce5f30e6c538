"""Retry mode (opt-in), the decision: does a streamed call's HTTP 200 stream open with a retryable in-band error?

At the HTTP-attempt hook, before the client sees the response, the first events of a 200 event stream are read
ahead (`Lookahead`, fed by `observe/replay.py`). The preamble events that carry no content yet (`message_start`,
`ping`, `content_block_start`, and Converse's) are held back, at most `HOLD_LIMIT` bytes, until the first other
event arrives:

- a retryable in-band error (a row of the error table, `errors.py`, with a retry status): the client is handed
  the HTTP error that the error stands for, and its own retry loop applies its own policy (`observe/replay.py`);
- anything else (content, another error, the end of the body, a read error, garbage): the client gets the same
  response, whose body replays the bytes read ahead and then the rest untouched.

Nothing has reached the caller at that point: `create()` and `stream()` have not returned yet. A handed-over
error stays pending on the call (`PendingRetry`) until the next attempt (retried) or the end of the call
(exhausted): `Runtime.attempt_starting` and `StreamObserver.finish` settle it.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, NamedTuple

from .. import semconv as sc
from ..errors import RETRY_STATUS, source_of
from . import classify

log = logging.getLogger("bedrock_otel")

PREAMBLE = frozenset({sc.MESSAGE_START, sc.PING, sc.CONTENT_BLOCK_START, sc.CONVERSE_MESSAGE_START,
                      sc.CONVERSE_BLOCK_START})
HOLD_LIMIT = 64 * 1024  # bytes held back at most; past that the body is handed on as it is

_SSE_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_SSE_LINE = re.compile(rb"\r\n|\n|\r")
_UNDECODABLE = (ValueError, KeyError, TypeError)  # what decoding a damaged frame or event raises (JSON, base64, …)


class InBandError(NamedTuple):
    """A retryable error that opened a stream: its error-table row says which HTTP error the client gets."""

    error_type: str
    source: str
    message: str
    body: dict[str, Any]  # the error envelope, `{"type": "error", "error": {...}}`


class PendingRetry(NamedTuple):
    """An in-band error handed to the client as an HTTP error, not yet settled: retried if another attempt
    follows, exhausted if the call ends first."""

    error: InBandError
    attempt: int  # the attempt it ended (1-based)
    at_ns: int  # when it was handed over (perf_counter_ns): the retry's delay is measured from here


class Lookahead:
    """The first events of one body, fed chunk by chunk, until it is clear whether the stream opens with a
    retryable error (`retryable`) or not (`done` with `retryable` None). Never raises: anything it cannot parse
    ends the look-ahead and the body is handed on as it is."""

    def __init__(self, bedrock: bool) -> None:
        self.events: list[str] = []  # wire names of the events read, the error included
        self.retryable: InBandError | None = None
        self.error: tuple[str, str, str] | None = None  # any in-band error read: (error type, source, message)
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
            self.error = (error_type, source or source_of(error_type), message)
            if error_type in RETRY_STATUS:
                self.retryable = InBandError(*self.error, envelope)

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
            text = classify.bedrock_chunk_bytes(message.payload, strict=True).decode("utf-8")
            name = classify.peek_type(text)  # the common case: no full parse of events that carry no error
            if name is None or name == sc.ERROR:
                inner = json.loads(text)
                name = inner.get("type") if isinstance(inner, dict) else None
                yield (name if isinstance(name, str) else sc.OTHER), inner, None
            else:
                yield name, None, None


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


