"""The functions patched into botocore, beside the SDK's (`wrappers.py`): a bedrock-runtime stream call, each of
its HTTP attempts (botocore's own retries included), and the EventStream it returns. Every other botocore call
costs one dictionary lookup (`families/boto.py` `OPERATIONS`) and goes on untouched.
"""

from __future__ import annotations

from typing import Any, Callable

from .. import runtime as rt
from ..families.boto import BOTO
from ..observe.replay import REFUSED_HEADER
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


def needs_retry(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`Endpoint._needs_retry(attempts, operation_model, request_dict, response, caught_exception)`: pressure mode's
    retry budget may say no to a retry of an observed call's error response. botocore's handlers sleep out the
    back-off before they answer, so the budget is asked first (and refunded if botocore does not retry)."""
    ctx = rt.CURRENT_CALL.get()
    runtime = rt.ACTIVE
    if ctx is None or runtime is None or runtime.pressure is None or ctx.family is not BOTO:
        return wrapped(*args, **kwargs)
    response = args[3] if len(args) > 3 else kwargs.get("response")
    if _refused(response):  # pressure mode did not send the attempt: its throttle is final
        return False
    attempts = args[0] if args else kwargs.get("attempts")
    request_dict = args[2] if len(args) > 2 else kwargs.get("request_dict")
    if not _retryable(response) or not _attempts_left(attempts, request_dict):
        return wrapped(*args, **kwargs)
    if runtime.retry_refused(ctx):
        return False
    retried = wrapped(*args, **kwargs)
    if not retried:
        runtime.retry_not_taken(ctx)
    return retried


def _refused(response: Any) -> bool:
    try:
        return REFUSED_HEADER in response[0].headers
    except Exception:
        return False


def _attempts_left(attempts: Any, request_dict: Any) -> bool:
    """Whether botocore's retry mode has attempts left (the maximum its handlers keep on the request's retries
    context; unknown: assumed so): a call on its last attempt is not refused a retry it would not make."""
    try:
        return bool(attempts < request_dict["context"]["retries"]["max"])
    except Exception:
        return True


def _retryable(response: Any) -> bool:
    """An error response botocore's retry modes may retry: a throttle or a server error (not a connection error,
    which is no throttle and is left to botocore)."""
    try:
        http, parsed = response
        code = parsed.get("Error", {}).get("Code", "")
        return http.status_code == 429 or http.status_code >= 500 or "Throttl" in code
    except Exception:
        return False


def events(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`EventStream.__iter__`: the events of an observed stream go through its observer."""
    generator = wrapped(*args, **kwargs)
    runtime = rt.ACTIVE
    observer = runtime.stream_observer(BOTO, instance) if runtime is not None else None
    return generator if observer is None else observer.watch(generator, instance)  # type: ignore[attr-defined]


close = closer(BOTO)  # EventStream.close: the caller stopped
