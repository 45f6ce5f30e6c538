"""Repair mode (opt-in): in-band errors raise the SDK exception class that matches their error type.

On every SDK version the caller then gets the class of the error's row in the error table (`errors.py`):
`RateLimitError` for `rate_limit_error` / `throttlingException`, `OverloadedError` (or `InternalServerError`
before it existed) for `overloaded_error` / `serviceUnavailableException`, and `APIStatusError` otherwise,
carrying the error body and the request id.
"""

from __future__ import annotations

from typing import Any

from .. import semconv as sc
from ..errors import ERRORS
from . import classify


def _exception_class(error_type: str) -> type:
    """The error-table row's SDK exception class, the first the installed SDK has; else `APIStatusError`."""
    import anthropic

    kind = ERRORS.get(error_type)
    for name in kind.sdk_classes if kind is not None else ():
        cls = getattr(anthropic, name, None) or getattr(anthropic._exceptions, name, None)
        if cls is not None:
            return cls  # type: ignore[no-any-return]
    return anthropic.APIStatusError  # type: ignore[no-any-return]


def exception_for(body: dict[str, Any], response: Any) -> Exception:
    """The exception a fixed SDK would raise for this error envelope, with the matching class."""
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    error_type = error.get("type") if isinstance(error.get("type"), str) else ""
    exc = _exception_class(error_type)(f"{body}", response=response, body=body)
    if getattr(exc, "request_id", None) is None:
        exc.request_id = body.get("request_id") or classify.request_id(response.headers)
    return exc  # type: ignore[no-any-return]


def replacement_for(exc: Exception, errors: list[tuple[str, str, str]], response: Any) -> Exception | None:
    """For an exception the SDK raised on an in-band error, the better-classed one (None: keep it)."""
    import anthropic

    if type(exc) is anthropic.APIStatusError and getattr(exc, "status_code", None) == 200:
        body = exc.body if isinstance(exc.body, dict) else {}
        replacement = exception_for(body, response)
        return None if type(replacement) is anthropic.APIStatusError else replacement
    if type(exc) is ValueError and errors and errors[-1][1] == sc.SOURCE_EXCEPTION_FRAME:
        error_type, _source, message = errors[-1]
        return exception_for({"type": "error", "error": {"type": error_type, "message": message}}, response)
    return None
