"""What an ended stream hands to telemetry: one record, built once, read by the measurements and the span."""

from __future__ import annotations

from array import array
from typing import NamedTuple

from .labels import CallLabels


class StreamSummary(NamedTuple):
    labels: CallLabels
    outcome: str
    duration_s: float
    events: dict[str, int]  # count by event type, bounded to the contract's values (`_OTHER` for the rest)
    malformed: list[tuple[str, str]]  # (carried type, reason)
    # (error type, source, message): retried attempts', then those of bodies a middleware handled, then the call's
    error_frames: list[tuple[str, str, str]]
    retried: list[str]  # retry mode: error types of attempts that were retried
    exhausted: str | None  # retry mode: the error type that was not retried (the caller got it)
    error_type: str  # the call's error.type if the outcome is `error`, else ""
    time_to_first_chunk_s: float | None
    chunk_gaps_ns: array  # ns between consecutive output chunks
    usage: dict[str, int]  # tokens by gen_ai.token.type
    response_id: str | None
    response_model: str | None
    stop_reason: str | None
    request_id: str | None
    attempts: int
    output_text: str | None  # content capture only
