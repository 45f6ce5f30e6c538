"""Client families: what bedrock_otel must know of one kind of client, and nothing else.

`Runtime` drives every family down one path (`runtime.py`): a call starts (labels, span, in flight), each HTTP
attempt is read (status, rate-limit headers, retry mode's look-ahead), the call returns the object its stream is
found by, the stream is watched until it ends once. A family says only what differs: how a call's request
becomes labels and span attributes, how an attempt's response is read ahead, how its stream object is found and
watched, and what "the caller closed it" is found by. `hooks/targets.py` says where each family's hooks sit.
A new family is one module here plus its rows there.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from ..observe.labels import CallLabels
from ..observe.observer import StreamObserver
from ..observe.retry import Lookahead


class Components(NamedTuple):
    """Where bedrock_otel's own errors on a family's path are counted (`bedrock_otel.component` values)."""

    call: str  # entering and leaving a call
    send: str  # reading an HTTP attempt's response
    stream: str  # finding a stream's observer
    close: str  # the caller closing a stream


# A call a family observes: (its labels, whether it is a stream to observe, its identity while it runs: kept on
# the call's context until it returns, `CallContext.request`). A plain tuple: one is made per call.
Call = tuple[CallLabels, bool, Any]


class Family:
    """The questions `Runtime` asks a client family. `request` is whatever the family's call hook passes."""

    components: Components
    # anthropic.stream.api -> the observer class of its streams (any other: `StreamObserver`)
    observers: dict[str, type[StreamObserver]] = {}

    def call(self, client: Any, request: Any, cap_model: Callable[[str], str]) -> Call | None:
        """The call's labels (None: a call this family does not observe)."""
        raise NotImplementedError

    def span_attributes(self, client: Any, request: Any) -> dict[str, Any]:
        """The span's request attributes: `server.*` and the numeric request parameters (never text)."""
        raise NotImplementedError

    def request_messages(self, request: Any) -> Any:
        """The request's messages, read only when content capture is on."""
        raise NotImplementedError

    def returned_stream(self, ctx: StreamObserver, result: Any) -> Any:
        """What the stream hooks will find the observer of a call that returned `result` by (None: no stream)."""
        raise NotImplementedError

    def attempt_answered(self, ctx: Any, response: Any) -> None:
        """First on an attempt's response, before anything that can fail."""

    def has_middleware(self, client: Any) -> bool:
        """Whether something between the client and its attempts can read a body the caller does not get (its
        attempts' bodies are then tapped, `tap`)."""
        return False

    def tap(self, response: Any, asynchronous: bool) -> Any:
        """Keep the first bytes of an attempt's body as whoever reads them reads them (`observe/tap.py`); None:
        not a body to tap."""
        return None

    def read_ahead(self, response: Any) -> tuple[Any, Lookahead | None]:
        """Retry mode: the response the client gets for this attempt, and what was read ahead."""
        raise NotImplementedError

    async def aread_ahead(self, response: Any) -> tuple[Any, Lookahead | None]:
        """The async twin of `read_ahead`, for families with async clients."""
        raise NotImplementedError

    def refusal(self, request: Any) -> Any:
        """Pressure mode: the throttle response the client gets for an attempt (`request`, as its attempt hook
        receives it) that is not sent; the client must raise its throttling error for it and not retry."""
        raise NotImplementedError

    def find(self, stream: Any) -> StreamObserver | None:
        """The observer that is to watch a stream object, if any; also registers it under anything else its hooks
        will look it up by."""
        raise NotImplementedError

    def adopt(self, stream: Any, cap_model: Callable[[str], str]) -> tuple[Any, CallLabels] | None:
        """For a stream made outside an observed call and not ended: (what its observer is to be registered
        under, its labels); None: leave it alone."""
        return None


def numeric_parameters(source: Any, names: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """The request parameters among `(key, attribute)` pairs that `source` holds as numbers (never text)."""
    if not isinstance(source, dict):
        return {}
    found = {}
    for key, attribute in names:
        value = source.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            found[attribute] = value
    return found
