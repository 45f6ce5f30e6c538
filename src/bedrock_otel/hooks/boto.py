"""The functions patched into botocore, beside the SDK's (`wrappers.py`): a bedrock-runtime stream call, each of
its HTTP attempts (botocore's own retries included), and the EventStream it returns. Every other botocore call
costs one dictionary lookup (`observe/boto.py` `OPERATIONS`) and goes on untouched.
"""

from __future__ import annotations

from typing import Any, Callable

from .. import runtime as rt
from ..observe import retry
from .wrappers import within


def make_api_call(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`BaseClient._make_api_call(operation_name, api_params)`: one call, all of its attempts."""
    operation, params = _operation(args, kwargs)
    outer = rt.CURRENT_CALL.get()
    if outer is not None:
        if getattr(outer, "params", None) is params:  # this very call, already entered by an outer hook of ours
            return wrapped(*args, **kwargs)
        # another botocore call made inside a call being observed (STS refreshing credentials while signing):
        # its HTTP attempts are not the observed call's
        token = rt.CURRENT_CALL.set(None)
        try:
            return make_api_call(wrapped, instance, args, kwargs)
        finally:
            rt.CURRENT_CALL.reset(token)
    runtime = rt.ACTIVE
    return within(runtime.start_boto_call(instance, operation, params) if runtime is not None else None, wrapped,
                  args, kwargs)


def _operation(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    operation = args[0] if args else kwargs.get("operation_name")
    params = args[1] if len(args) > 1 else kwargs.get("api_params")
    return operation, params if isinstance(params, dict) else {}


def send(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`Endpoint._send(request)`: one HTTP attempt; only attempts of an observed botocore call are recorded. In
    retry mode, the first events of the stream are read ahead here (`observe/retry.py` `read_ahead_aws`)."""
    ctx = rt.CURRENT_CALL.get()
    observed = ctx is not None and getattr(ctx, "params", None) is not None
    runtime = rt.ACTIVE
    if observed and ctx.pending_retry is not None and runtime is not None:  # type: ignore[union-attr]
        runtime.retrying(ctx)  # type: ignore[arg-type]
    response = wrapped(*args, **kwargs)
    if observed and runtime is not None:
        runtime.boto_response(ctx, response)  # type: ignore[arg-type]
        if runtime.settings.retry:
            response = runtime.read_ahead(ctx, response, retry.read_ahead_aws)  # type: ignore[arg-type]
    return response


def events(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`EventStream.__iter__`: the events of an observed stream go through its observer."""
    generator = wrapped(*args, **kwargs)
    runtime = rt.ACTIVE
    observer = runtime.boto_observer_for(instance) if runtime is not None else None
    return generator if observer is None else observer.watch(generator, instance)


def close(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`EventStream.close`: the caller stopped; the stream ends now (not at collection)."""
    runtime = rt.ACTIVE
    if runtime is not None:
        runtime.boto_closed(instance)
    return wrapped(*args, **kwargs)
