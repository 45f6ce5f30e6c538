"""What the client's middleware read: the first bytes of each attempt's event stream, kept as they pass.

The SDK's middleware chain (`middleware=`, 0.108.0 and later) runs above the HTTP-attempt hook, once per attempt.
A middleware can read a 200's body and hand the client something else: a 429 it made of an in-band rate limit,
an exception, a stream spliced from another request. The stream hooks then never see that body's frames. So the
attempt hook taps each 200 event stream of an observed call: whoever reads the body, its first bytes (up to
`HOLD_LIMIT`) are kept as they pass, unparsed, and nothing is read that the reader did not ask for. When the call
returns or raises, the body of each attempt the caller did not get is parsed (`Lookahead`), and its events and
in-band error are counted (`StreamObserver.settle_taps`); the caller's own body is left to the stream hooks.
Only the calls of a client with middleware are tapped.
"""

from __future__ import annotations

import weakref
from typing import Any

from .replay import WrappedBody, byte_stream_class
from .retry import HOLD_LIMIT, Lookahead


class _Tap(WrappedBody):
    """A body that passes the response's own through and keeps its first bytes until settled."""

    def __init__(self, original: Any, look: Lookahead, response: Any) -> None:
        super().__init__(original)
        # the response, not its body, tells the caller's own apart: the SDK's tracing (1.14+) wraps the body again
        self.response = weakref.ref(response)
        self.look = look
        self.chunks: list[bytes] | None = []  # None once settled: nothing more is kept
        self._kept = 0

    def _keep(self, chunk: bytes) -> bool:
        """Keep `chunk`; False once nothing more is to be kept."""
        chunks = self.chunks
        if chunks is None or self._kept > HOLD_LIMIT:
            return False
        chunks.append(chunk)
        self._kept += len(chunk)
        return True

    def settle(self) -> list[bytes]:
        """What was kept, and nothing kept from now on."""
        chunks, self.chunks = self.chunks, None
        return chunks or []


class _SyncTap(_Tap):
    is_async = False

    def __iter__(self) -> Any:
        rest = iter(self._original)
        for chunk in rest:
            kept = self._keep(chunk)
            yield chunk
            if not kept:
                break
        yield from rest


class _AsyncTap(_Tap):
    is_async = True

    async def __aiter__(self) -> Any:
        keeping = True
        async for chunk in self._original:
            if keeping:
                keeping = self._keep(chunk)
            yield chunk


def tap(response: Any, asynchronous: bool) -> _Tap | None:
    """Tap an httpx(2) response's body if it is an HTTP 200 event stream (None: left alone)."""
    look = Lookahead.for_response(response)
    if look is None:
        return None
    cls = byte_stream_class(response, _AsyncTap if asynchronous else _SyncTap)
    if cls is None:
        return None
    tapped = response.stream = cls(response.stream, look, response)
    return tapped
