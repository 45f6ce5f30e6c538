"""Repair mode: the same, better behaviour on every SDK version; telemetry identical to observe mode."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from conftest import by_label
from driver import MODES, clients, drive

from bedrock_otel import semconv as sc
from bedrock_otel.telemetry import catalog as c
from bedrock_otel.testing.capture import CapturedTelemetry

OVERLOADED = getattr(anthropic, "OverloadedError", None) or getattr(
    anthropic._exceptions, "OverloadedError", anthropic.InternalServerError)

EXPECTED_CLASS = {
    "error_first": (anthropic.RateLimitError, "rate_limit_error"),
    "error_mid": (OVERLOADED, "overloaded_error"),
    "exception_throttlingException": (anthropic.RateLimitError, "throttlingException"),
    "exception_serviceUnavailableException": (OVERLOADED, "serviceUnavailableException"),
    "exception_validationException": (anthropic.APIStatusError, "validationException"),
}


def _counters(t: CapturedTelemetry) -> dict[str, Any]:
    return {i.name: by_label(t, i, *i.attributes) for i in (c.STREAMS, c.STREAM_EVENTS, c.ERROR_FRAMES,
                                                           c.MALFORMED_EVENTS, c.RATE_LIMIT_HITS)}


@pytest.mark.parametrize("api", ["create", "helper"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", clients())
@pytest.mark.parametrize("scenario", sorted(EXPECTED_CLASS))
def test_in_band_errors_raise_the_matching_class(bedrock_otel_server: Any, provider: str, mode: str, api: str,
                                                 scenario: str) -> None:
    with CapturedTelemetry() as observed:
        drive(bedrock_otel_server, provider, mode, api, scenario)
    with CapturedTelemetry(repair=True) as repaired:
        seen = drive(bedrock_otel_server, provider, mode, api, scenario)
    expected_class, error_type = EXPECTED_CLASS[scenario]
    assert seen.error is not None and seen.error[0] == expected_class.__name__
    assert error_type in seen.error[1]
    assert _counters(repaired) == _counters(observed)


def test_repaired_exception_carries_body_status_and_request_id(bedrock_otel_server: Any) -> None:
    client = anthropic.AnthropicBedrock(**bedrock_otel_server.bedrock_client_kwargs())
    with CapturedTelemetry(repair=True):
        with pytest.raises(anthropic.RateLimitError) as caught:
            for _ in client.messages.create(model="global.anthropic.claude-opus-4-7", max_tokens=5, stream=True,
                                            messages=[{"role": "user", "content": "hi"}],
                                            extra_headers={"x-bedrock-otel-scenario": "error_first"}):
                pass
    assert caught.value.status_code == 200
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert caught.value.request_id in ("req_inband_1", "aws-req-bedrock-otel-1")


@pytest.mark.parametrize("scenario", ["ping", "typeless"])
@pytest.mark.parametrize("mode", MODES)
def test_masquerading_chunks_are_dropped(bedrock_otel_server: Any, mode: str, scenario: str) -> None:
    with CapturedTelemetry(repair=True) as t:
        seen = drive(bedrock_otel_server, "bedrock", mode, "create", scenario)
    assert seen.error is None
    assert not [item for item in seen.items if "'message': None" in item or "message=None" in item]
    assert [item.split(":")[0] for item in seen.items].count("RawMessageStartEvent") <= 1
    assert by_label(t, c.STREAMS, sc.OUTCOME) == {"completed": 1}


def test_repair_is_off_by_default(bedrock_otel_server: Any) -> None:
    with CapturedTelemetry():
        seen = drive(bedrock_otel_server, "bedrock", "sync", "create", "exception_throttlingException")
    assert seen.error is not None and seen.error[0] != "RateLimitError"
