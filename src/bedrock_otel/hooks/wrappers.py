"""The functions patched into the SDK. Each one is thin: look up the runtime, delegate, never raise.

All but `frame_hook` are wrapt wrappers, called once per call, attempt or stream. `frame_hook` runs once per
Bedrock frame, where a wrapt wrapper would cost ~0.6 µs; it is a plain function (~0.04 µs).
"""

from __future__ import annotations

from typing import Any, Callable

from .. import runtime as rt


def request(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`SyncAPIClient.request`: one call, all of its retries; for streams, the span and the observer."""
    runtime = rt.ACTIVE
    return within(runtime.start_call(instance, args, kwargs) if runtime is not None else None, wrapped, args, kwargs)


def within(call: rt.ActiveCall | None, wrapped: Callable[..., Any], args: tuple[Any, ...],
           kwargs: dict[str, Any]) -> Any:
    """Run a (sync) call inside `call` (None: as it is), which takes what it returned or raised."""
    if call is None:
        return wrapped(*args, **kwargs)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as error:
        call.end(error=error)
        raise
    call.end(result=result)
    return result


async def arequest(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`AsyncAPIClient.request`, as `request`."""
    runtime = rt.ACTIVE
    call = runtime.start_call(instance, args, kwargs) if runtime is not None else None
    if call is None:
        return await wrapped(*args, **kwargs)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as error:
        call.end(error=error)
        raise
    call.end(result=result)
    return result


def send(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`httpx.Client.send` (and httpx2): one HTTP attempt; only attempts made inside an SDK call are seen.
    In retry mode, the first events of a streamed call's body are read ahead here (`observe/retry.py`)."""
    ctx = rt.CURRENT_CALL.get()
    if ctx is not None and ctx.pending_retry is not None:
        _retrying(ctx)
    response = wrapped(*args, **kwargs)
    runtime = rt.ACTIVE
    if ctx is not None and runtime is not None:
        runtime.http_response(ctx, response)
        if runtime.settings.retry:
            response = runtime.read_ahead(ctx, response)
    return response


async def asend(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    ctx = rt.CURRENT_CALL.get()
    if ctx is not None and ctx.pending_retry is not None:
        _retrying(ctx)
    response = await wrapped(*args, **kwargs)
    runtime = rt.ACTIVE
    if ctx is not None and runtime is not None:
        runtime.http_response(ctx, response)
        if runtime.settings.retry:
            response = await runtime.aread_ahead(ctx, response)
    return response


def _retrying(ctx: Any) -> None:
    runtime = rt.ACTIVE
    if runtime is not None:
        runtime.retrying(ctx)


def _observed(method: str) -> Callable[..., Any]:
    """A wrapper for a stream generator method that hands the generator to the observer's `method`."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        generator = wrapped(*args, **kwargs)
        runtime = rt.ACTIVE
        if runtime is None:
            return generator
        observer = runtime.observer_for(instance)
        if observer is None:
            return generator
        watch = getattr(observer, method)
        return watch(generator, instance.response) if method.endswith("items") else watch(generator)

    wrapper.__name__ = f"observed_{method}"
    return wrapper


stream_items = _observed("watch_items")  # Stream.__stream__
astream_items = _observed("awatch_items")  # AsyncStream.__stream__
stream_events = _observed("watch_events")  # Stream._iter_events
astream_events = _observed("awatch_events")  # AsyncStream._iter_events


def close(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`Stream.close` / `AsyncStream.close`: the caller stopped; the stream ends now (not at collection)."""
    runtime = rt.ACTIVE
    if runtime is not None:
        runtime.caller_closed(instance)
    return wrapped(*args, **kwargs)


def frame_hook(original: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """`AWSEventStreamDecoder._parse_message_from_event`: notices frames the decoder drops (SDK >= 1.0)."""

    def _parse_message_from_event(self: Any, event: Any) -> Any:
        message = original(self, event)
        if message is None:
            runtime = rt.ACTIVE
            if runtime is not None:
                runtime.dropped_frame(self, event)
        return message

    _parse_message_from_event.__wrapped__ = original  # type: ignore[attr-defined]
    return _parse_message_from_event
