"""Repair mode (opt-in): in-band errors raise the SDK exception class that matches their error type.

On every SDK version the caller then gets `RateLimitError` for `rate_limit_error` / `throttlingException`,
`OverloadedError` (or `InternalServerError` before it existed) for `overloaded_error` /
`serviceUnavailableException`, and `APIStatusError` otherwise, carrying the error body and the request id.
"""

from __future__ import annotations

from typing import Any

from . import classify

_CLASS_NAMES = {
    "rate_limit_error": ("RateLimitError",),
    "throttlingException": ("RateLimitError",),
    "overloaded_error": ("OverloadedError", "InternalServerError"),
    "serviceUnavailableException": ("OverloadedError", "InternalServerError"),
}


def _exception_class(error_type: str) -> type:
    import anthropic

    for name in _CLASS_NAMES.get(error_type, ()):
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
    if type(exc) is ValueError and errors and errors[-1][1] == "exception_frame":
        error_type, _source, message = errors[-1]
        return exception_for({"type": "error", "error": {"type": error_type, "message": message}}, response)
    return None
