"""The functions patched into the clients. Each one is thin: look up the runtime, hand over to its one path with
the family the hook belongs to (`families/`), never raise.

`request`/`arequest` are the Anthropic SDK's call hooks; `attempt(family)` and `aattempt(family)` make any
family's HTTP-attempt hook; `frame_hook` runs once per Bedrock frame, where a wrapt wrapper would cost ~0.6 µs,
so it is a plain function (~0.04 µs).
"""

from __future__ import annotations

from typing import Any, Callable

from .. import runtime as rt
from ..families.sdk import SDK, dropped_frame

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


def request(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`SyncAPIClient.request`: one call, all of its retries; for streams, the span and the observer."""
    runtime = rt.ACTIVE
    call = runtime.start_call(SDK, instance, (args, kwargs)) if runtime is not None else None
    return run_in_call(call, wrapped, args, kwargs)


def run_in_call(call: rt.ActiveCall | None, wrapped: Callable[..., Any], args: tuple[Any, ...],
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
    call = runtime.start_call(SDK, instance, (args, kwargs)) if runtime is not None else None
    if call is None:
        return await wrapped(*args, **kwargs)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as error:
        call.end(error=error)
        raise
    call.end(result=result)
    return result


def attempt(family: Any) -> Wrapper:
    """The hook of one HTTP attempt of `family` (`httpx.Client.send`, `Endpoint._send`): only attempts made inside
    one of its calls are seen. Retry mode reads ahead in `Runtime.attempt_answered`."""

    def send(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        ctx = rt.CURRENT_CALL.get()
        runtime = rt.ACTIVE
        if ctx is None or ctx.family is not family or runtime is None:
            return wrapped(*args, **kwargs)
        if ctx.pending_retry is not None:  # retry mode handed the last attempt's in-band error over
            runtime.attempt_starting(ctx)
        if runtime.pressure is not None:  # pressure mode: the key's turn first (or a refusal)
            refused = runtime.pace(ctx, args[0] if args else kwargs.get("request"))
            if refused is not None:
                return refused
        response = wrapped(*args, **kwargs)
        runtime = rt.ACTIVE
        return runtime.attempt_answered(ctx, response) if runtime is not None else response

    return send


def aattempt(family: Any) -> Wrapper:
    """The async twin of `attempt`."""

    async def asend(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        ctx = rt.CURRENT_CALL.get()
        runtime = rt.ACTIVE
        if ctx is None or ctx.family is not family or runtime is None:
            return await wrapped(*args, **kwargs)
        if ctx.pending_retry is not None:
            runtime.attempt_starting(ctx)
        if runtime.pressure is not None:
            refused = await runtime.apace(ctx, args[0] if args else kwargs.get("request"))
            if refused is not None:
                return refused
        response = await wrapped(*args, **kwargs)
        runtime = rt.ACTIVE
        return await runtime.aattempt_answered(ctx, response) if runtime is not None else response

    return asend


send = attempt(SDK)  # httpx(2).Client.send
asend = aattempt(SDK)  # httpx(2).AsyncClient.send


def should_retry(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`BaseClient._should_retry(response)`: pressure mode's retry budget may say no to a retry the SDK would make;
    the SDK then raises what it raises when `max_retries` is spent."""
    retry = wrapped(*args, **kwargs)
    if retry:
        ctx = rt.CURRENT_CALL.get()
        runtime = rt.ACTIVE
        if ctx is not None and runtime is not None and runtime.pressure is not None and ctx.family is SDK:
            return not runtime.retry_refused(ctx)
    return retry


def _observed(method: str) -> Wrapper:
    """A wrapper for an SDK stream generator method that hands the generator to the observer's `method`."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        generator = wrapped(*args, **kwargs)
        runtime = rt.ACTIVE
        if runtime is None:
            return generator
        observer = runtime.stream_observer(SDK, instance)
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


def closer(family: Any) -> Wrapper:
    """The hook of a stream's `close` in `family`: the caller stopped; the stream ends now (not at collection)."""

    def close(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        runtime = rt.ACTIVE
        if runtime is not None:
            runtime.caller_closed(family, instance)
        return wrapped(*args, **kwargs)

    return close


close = closer(SDK)  # Stream.close / AsyncStream.close


def frame_hook(original: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """`AWSEventStreamDecoder._parse_message_from_event`: notices frames the decoder drops (SDK >= 1.0)."""

    def _parse_message_from_event(self: Any, event: Any) -> Any:
        message = original(self, event)
        if message is None:
            runtime = rt.ACTIVE
            if runtime is not None:
                dropped_frame(runtime, self, event)
        return message

    _parse_message_from_event.__wrapped__ = original  # type: ignore[attr-defined]
    return _parse_message_from_event
