"""Fuzzing through the real SDK: arbitrary bytes, arbitrary frames and arbitrary SSE text on the wire, read with
instrumentation off and on. The instrumentation never raises, never hangs, never changes what the application
sees (items, exception class and message), and every stream still ends exactly once.

More examples: BEDROCK_OTEL_FUZZ_EXAMPLES=5000 python -m pytest tests/test_fuzz.py
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

import pytest
from conftest import by_label
from driver import drive
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bedrock_otel import errors
from bedrock_otel import semconv as sc
from bedrock_otel.telemetry import catalog as c
from bedrock_otel.testing import scenarios
from bedrock_otel.testing.capture import CapturedTelemetry
from bedrock_otel.testing.expectations import opens_with_retryable_error

EXAMPLES = int(os.environ.get("BEDROCK_OTEL_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
_names = itertools.count()

EVENT_TYPES = st.sampled_from([*sc.EVENT_TYPES, "thinking_summary", "", "completion"])
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                     max_size=3), max_leaves=8)
EVENT = st.builds(lambda t, extra: scenarios.Event({"type": t, **extra}) if t else scenarios.TypelessChunk(extra),
                  EVENT_TYPES, st.dictionaries(st.sampled_from(["message", "delta", "index", "error", "usage"]),
                                               JSONISH, max_size=3))
PART = st.one_of(
    EVENT,
    st.builds(scenarios.Raw, st.binary(max_size=64)),  # a frame (Bedrock) or data line (SSE) with any bytes
    st.builds(scenarios.Garbage, st.binary(max_size=64)),  # bytes outside any frame
    st.builds(scenarios.Garbage, st.text(max_size=64).map(str.encode)),  # arbitrary SSE text
    st.builds(scenarios.ExceptionFrame, st.sampled_from([*errors.BEDROCK_EXCEPTION_TYPES, "madeUpException"]),
              st.text(max_size=20)),
)
BODIES = st.lists(PART, max_size=8).map(lambda parts: (scenarios.message_start(), *parts))


def _check(server: Any, provider: str, parts: tuple[Any, ...], retry: bool) -> None:
    scenario = scenarios.Scenario(f"fuzz_{next(_names)}", (scenarios.Reply(parts=parts),))
    server.register(scenario)
    bare = drive(server, provider, "sync", "create", scenario.name, timeout=10, max_retries=0)
    started = time.monotonic()
    with CapturedTelemetry(retry=retry) as t:
        seen = drive(server, provider, "sync", "create", scenario.name, timeout=10, max_retries=0)
    assert time.monotonic() - started < 10  # no hang
    if retry and opens_with_retryable_error(parts):  # no budget (max_retries=0): the SDK's typed exception
        assert seen.items == [] and seen.error is not None and seen.error[1].startswith("Error code: ")
    else:
        assert seen == bare
    assert sum(by_label(t, c.STREAMS, sc.OUTCOME).values()) == 1
    assert len(t.spans()) == 1 and t.spans()[0].end_time is not None
    assert by_label(t, c.STREAMS_ACTIVE, sc.PROVIDER) == {}


@pytest.mark.parametrize("retry", [False, True], ids=["observe", "retry"])
@pytest.mark.parametrize("provider", ("first_party", "bedrock"))
def test_fuzzed_streams_are_seen_exactly_as_uninstrumented(bedrock_otel_server: Any, provider: str,
                                                           retry: bool) -> None:
    """In retry mode too, except that a body opening with a retryable error becomes the SDK's typed exception."""
    @FUZZ
    @given(parts=BODIES)
    def run(parts: tuple[Any, ...]) -> None:
        _check(bedrock_otel_server, provider, parts, retry)

    run()
