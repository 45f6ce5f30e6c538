"""Pure functions that classify what crosses the wire: event types, error payloads, clients, headers.

Nothing here keeps state except `ValueCap`, and nothing here runs once per ordinary event: these are called
once per stream, per HTTP attempt, or for rare events (errors, pings, chunks the SDK mislabels).
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Mapping
from typing import Any

from .. import semconv as sc
from ..errors import ERRORS

_KNOWN_EVENT_TYPES = frozenset((*sc.EVENT_TYPES, *sc.CONVERSE_EVENT_TYPES))


def event_type_label(event_type: object) -> str:
    """Bound an event type to the contract's values (`_OTHER` for anything else)."""
    return event_type if event_type in _KNOWN_EVENT_TYPES else sc.OTHER  # type: ignore[return-value]


def carried_type_label(event_type: object) -> str:
    """The type a malformed object really carried: a known type, `_NONE` when it had none, else `_OTHER`."""
    if event_type is None:
        return sc.NONE
    return event_type_label(event_type)


_TYPE_PREFIX = '{"type":"'
INVALID_JSON = object()  # what `decode_chunk` returns for a payload that does not decode
_BYTES_PREFIX = b'{"bytes":"'


def decode_chunk(data: str | bytes) -> Any:
    """Decode a chunk (an SSE event's data, a Bedrock chunk's bytes); the payload, or `INVALID_JSON`."""
    try:
        return json.loads(data)
    except (ValueError, TypeError):
        return INVALID_JSON


def bedrock_chunk_bytes(frame_payload: bytes, strict: bool) -> bytes:
    """The bytes inside a Bedrock `chunk` frame's `{"bytes": "<base64>", ...}` payload; raises ValueError (or
    KeyError, TypeError) on a payload of another shape.

    strict: base64 outside the alphabet raises (retry mode's look-ahead: garbage ends the look-ahead and the body
    is handed on untouched, for the SDK to fail on as it would). Lenient: such bytes are skipped, as the SDK's
    own decoder and botocore do, so a frame the decoder dropped is read as the decoder read it."""
    if frame_payload.startswith(_BYTES_PREFIX):  # Bedrock's own serialisation: no parse of the envelope
        end = frame_payload.find(b'"', len(_BYTES_PREFIX))
        if end > 0:
            return base64.b64decode(frame_payload[len(_BYTES_PREFIX):end], validate=strict)
    return base64.b64decode(json.loads(frame_payload)["bytes"], validate=strict)


def peek_type(data: str) -> str | None:
    """The `type` of a JSON object from its first member, without a full parse (None if not in that form).

    Bedrock and the first-party API always serialise `type` first, so this is the common case; anything
    else falls back to `decode_chunk`.
    """
    if data.startswith(_TYPE_PREFIX):
        end = data.find('"', 9)
        if end > 9:
            return data[9:end]
    return None


def error_type_label(error_type: object) -> str:
    """Bound an error type to the error table's (`_OTHER` for anything else)."""
    return error_type if error_type in ERRORS else sc.OTHER  # type: ignore[return-value]


def error_from_payload(payload: Any) -> tuple[str, str]:
    """(error type, message) of an `{"type": "error", "error": {...}}` envelope; tolerant of any shape."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return sc.OTHER, ""
    message = error.get("message")
    return error_type_label(error.get("type")), message if isinstance(message, str) else ""


_EXCEPTION_TYPE = re.compile(r"':(?:exception-type|error-code)': '([^']*)'")
_EXCEPTION_MESSAGE = re.compile(r'\\?"message\\?"\s*:\s*\\?"((?:[^"\\]|\\.)*)')


def exception_frame_from_message(text: str) -> tuple[str, str] | None:
    """Parse the `ValueError("Bad response code, expected 200: {...}")` that SDKs <= 1.6 raise for frames."""
    if not text.startswith("Bad response code"):
        return None
    match = _EXCEPTION_TYPE.search(text)
    if match is None:
        return sc.OTHER, ""
    message = _EXCEPTION_MESSAGE.search(text)
    return error_type_label(match.group(1)), message.group(1) if message else ""


# -- clients and labels -----------------------------------------------------------------------------

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
# Google Cloud: `europe-west1`, `us-east5`, `asia-southeast1`, and Vertex's multi-region endpoints
_GCP_REGION = re.compile(r"^([a-z]+-[a-z]+\d{1,2}|global|us|eu)$")
_PROFILE = re.compile(r"^[a-z]{2,8}$")


def region_label(region: object, pattern: re.Pattern[str] = _REGION) -> str:
    """`region` if it has the shape of a cloud region, else `_OTHER` (a label value never carries free text)."""
    if isinstance(region, str) and pattern.match(region):
        return region
    return sc.OTHER if region else ""


def vertex_region_label(region: object) -> str:
    return region_label(region, _GCP_REGION)


def inference_profile(model: str) -> str:
    """The cross-region inference-profile prefix of a Bedrock model id (`global`, `us`, …) or `none`.

    `global.anthropic.claude-opus-4-7` -> `global`; `anthropic.claude-…` -> `none`; the same inside an ARN;
    an opaque application-inference-profile ARN -> `_OTHER`.
    """
    resource = model.rsplit("/", 1)[-1]
    parts = resource.split(".")
    if len(parts) >= 3 and parts[1] == "anthropic":
        return parts[0] if _PROFILE.match(parts[0]) else sc.OTHER
    if model.startswith("arn:") and ":application-inference-profile/" in model:
        return sc.OTHER
    return "none"


class ValueCap:
    """At most `limit` distinct values per process; later newcomers become `_OTHER` (bounded cardinality)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return value
        return sc.OTHER


# -- HTTP headers -----------------------------------------------------------------------------------

_RATE_LIMIT_HEADERS = tuple(
    (resource, kind, f"anthropic-ratelimit-{resource.replace('_', '-')}-{kind}")
    for resource in sc.RATE_LIMIT_RESOURCES
    for kind in ("limit", "remaining")
)


def rate_limit_headers(headers: Mapping[str, str]) -> list[tuple[str, str, float]]:
    """(resource, 'limit'|'remaining', value) for each anthropic-ratelimit-* header present and numeric."""
    found = []
    for resource, kind, header in _RATE_LIMIT_HEADERS:
        raw = headers.get(header)
        if raw is not None:
            try:
                found.append((resource, kind, float(raw)))
            except ValueError:
                pass
    return found


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms` or `retry-after` (seconds) as a number of seconds, if present and numeric."""
    raw_ms = headers.get("retry-after-ms")
    try:
        if raw_ms is not None:
            return max(float(raw_ms) / 1000.0, 0.0)
        raw = headers.get("retry-after")
        return max(float(raw), 0.0) if raw is not None else None
    except ValueError:
        return None  # an HTTP date: not a duration we can bucket without a clock guess


def request_id(headers: Mapping[str, str]) -> str | None:
    return headers.get("request-id") or headers.get("x-amzn-requestid")


_READ_HEADERS = {name.encode(): name for name in (
    *(header for _resource, _kind, header in _RATE_LIMIT_HEADERS),
    "retry-after", "retry-after-ms", "request-id", "x-amzn-requestid",
)}


def headers_read(headers: Any) -> Mapping[str, str]:
    """The few response headers the functions above read, in one pass over httpx's raw header list (eight
    case-insensitive `Headers.get()` calls would scan it eight times: ~10 µs per HTTP attempt)."""
    raw = getattr(headers, "raw", None)
    if not isinstance(raw, list):
        return headers  # type: ignore[no-any-return]  # any other mapping: read as it is
    found: dict[str, str] = {}
    for key, value in raw:
        name = _READ_HEADERS.get(key.lower())
        if name is not None:  # repeated headers joined with ", ", as Headers.get() returns them
            text = value.decode("latin-1")
            found[name] = f"{found[name]}, {text}" if name in found else text
    return found
