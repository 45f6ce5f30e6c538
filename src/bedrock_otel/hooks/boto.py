"""The functions patched into botocore, beside the SDK's (`wrappers.py`): a bedrock-runtime stream call, each of
its HTTP attempts (botocore's own retries included), and the EventStream it returns. Every other botocore call
costs one dictionary lookup (`families/boto.py` `OPERATIONS`) and goes on untouched.
"""

from __future__ import annotations

from typing import Any, Callable

from .. import runtime as rt
from ..families.boto import BOTO
from .wrappers import attempt, closer, run_in_call


def make_api_call(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`BaseClient._make_api_call(operation_name, api_params)`: one call, all of its attempts."""
    operation, params = _operation(args, kwargs)
    outer = rt.CURRENT_CALL.get()
    if outer is not None:
        if outer.request is params:  # this very call, already entered by an outer hook of ours
            return wrapped(*args, **kwargs)
        # another botocore call made inside a call being observed (STS refreshing credentials while signing):
        # its HTTP attempts are not the observed call's
        token = rt.CURRENT_CALL.set(None)
        try:
            return make_api_call(wrapped, instance, args, kwargs)
        finally:
            rt.CURRENT_CALL.reset(token)
    runtime = rt.ACTIVE
    call = runtime.start_call(BOTO, instance, (operation, params)) if runtime is not None else None
    return run_in_call(call, wrapped, args, kwargs)


def _operation(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    operation = args[0] if args else kwargs.get("operation_name")
    params = args[1] if len(args) > 1 else kwargs.get("api_params")
    return operation, params if isinstance(params, dict) else {}


send = attempt(BOTO)  # Endpoint._send: each HTTP attempt of an observed call; retry mode reads ahead there


def events(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`EventStream.__iter__`: the events of an observed stream go through its observer."""
    generator = wrapped(*args, **kwargs)
    runtime = rt.ACTIVE
    observer = runtime.stream_observer(BOTO, instance) if runtime is not None else None
    return generator if observer is None else observer.watch(generator, instance)  # type: ignore[attr-defined]


close = closer(BOTO)  # EventStream.close: the caller stopped
