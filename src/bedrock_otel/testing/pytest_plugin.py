"""pytest fixtures (registered through the `pytest11` entry point): a loopback server and captured telemetry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def bedrock_otel_server() -> Iterator[Any]:
    """A `LoopbackServer` for the session; call `.play(scenario)` to choose what it answers."""
    from .server import LoopbackServer

    with LoopbackServer() as server:
        yield server


@pytest.fixture
def bedrock_otel_telemetry() -> Iterator[Any]:
    """bedrock_otel instrumented for one test, with telemetry captured in memory (`CapturedTelemetry`)."""
    from .capture import CapturedTelemetry

    with CapturedTelemetry() as captured:
        yield captured
