"""The behavioural suite: every scenario through the real SDK over real loopback HTTP, compared with the
same run uninstrumented, and the telemetry checked against the contract."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import by_label
from driver import (
    ALL_CLIENTS,
    APIS,
    MODES,
    PLATFORM_CLIENTS,
    api_available,
    call_labels,
    client_marks,
    drive,
    model_for,
)

from bedrock_otel import semconv as sc
from bedrock_otel.telemetry import catalog as c
from bedrock_otel.testing import scenarios
from bedrock_otel.testing.capture import CapturedTelemetry
from bedrock_otel.testing.expectations import expected

CORE = ("normal", "error_first", "error_mid")
SCENARIOS = [name for name in scenarios.ALL]
# Vertex and the later platform clients share the first-party SSE decoder and stream classes; what is their own
# (the client, its URL, its region, its platform) is reached through these two APIs, so they get every scenario on
# create and the core ones on the helper
OWN_CLIENT_APIS = ("create", "helper")
SSE_PLATFORMS = ("vertex", *PLATFORM_CLIENTS)
REGIONS = {"first_party": "", "bedrock": "us-east-1", "vertex": "europe-west1", "bedrock_mantle": "us-west-2",
           "aws": "eu-west-1", "foundry": "", "google_cloud": "us-east5"}


def cases() -> list[Any]:
    out = []
    for provider in ALL_CLIENTS:
        for mode in MODES:
            for api in APIS:
                if not api_available(api, provider) or (provider in SSE_PLATFORMS and api not in OWN_CLIENT_APIS):
                    continue
                for scenario in SCENARIOS:
                    if api != "create" and (api != "helper" or provider in SSE_PLATFORMS) and scenario not in CORE:
                        continue
                    out.append(pytest.param(provider, mode, api, scenario, id=f"{provider}-{mode}-{api}-{scenario}",
                                            marks=client_marks(provider)))
    return out


def assert_telemetry(t: CapturedTelemetry, scenario: str, provider: str) -> None:
    exp = expected(scenario, provider)
    match = {**call_labels(provider), "cloud_region": REGIONS[provider]}
    assert by_label(t, c.STREAMS, sc.OUTCOME, **match) == {exp.outcome: 1}
    assert by_label(t, c.STREAM_EVENTS, sc.EVENT_TYPE, **match) == exp.events
    assert by_label(t, c.ERROR_FRAMES, sc.ERROR_TYPE, sc.ERROR_SOURCE, **match) == exp.error_frames
    assert by_label(t, c.MALFORMED_EVENTS, sc.EVENT_TYPE, sc.MALFORMED_REASON, **match) == exp.malformed
    assert by_label(t, c.RATE_LIMIT_HITS, sc.RATE_LIMIT_SOURCE, **match) == exp.rate_limits
    provider_match = {k: match[k] for k in ("gen_ai_provider_name", "anthropic_platform", "cloud_region")}
    assert by_label(t, c.HTTP_RESPONSES, sc.HTTP_STATUS, **provider_match) == exp.http
    assert by_label(t, c.USAGE_TOKENS, sc.TOKEN_TYPE, **match) == exp.usage
    assert by_label(t, c.STREAMS_ACTIVE, sc.PROVIDER) == {}  # back to zero
    assert sum(by_label(t, c.OPERATION_DURATION, sc.PROVIDER, suffix="_count", **match).values()) == 1
    chunks = exp.events.get("content_block_delta", 0)
    assert sum(by_label(t, c.TIME_PER_OUTPUT_CHUNK, sc.PROVIDER, suffix="_count", **match).values()) \
        == max(chunks - 1, 0)
    assert by_label(t, c.INTERNAL_ERRORS, sc.INTERNAL_COMPONENT) == {}

    (span,) = t.spans()
    attributes = dict(span.attributes)
    assert span.end_time is not None
    assert attributes[sc.OUTCOME] == exp.outcome
    assert attributes[sc.PROVIDER] == match["gen_ai_provider_name"]
    assert attributes[sc.PLATFORM] == match["anthropic_platform"]
    assert attributes.get(sc.CLOUD_REGION, "") == REGIONS[provider]
    assert span.name == f"chat {model_for(provider)}"
    assert (span.status.status_code.name == "ERROR") == (exp.outcome == "error")
    assert {k.removeprefix(sc.EVENTS_PREFIX): v for k, v in attributes.items() if k.startswith(sc.EVENTS_PREFIX)} \
        == exp.events
    span_event_names = [e.name for e in span.events]
    assert span_event_names.count(sc.SPAN_EVENT_ERROR_FRAME) == sum(exp.error_frames.values())
    assert span_event_names.count(sc.SPAN_EVENT_MALFORMED) == sum(exp.malformed.values())
    assert sc.CONTENT_BLOCK_DELTA not in span_event_names and sc.PING not in span_event_names  # boundaries mode
    if exp.outcome == "completed":
        assert attributes[sc.RESPONSE_ID] == "msg_bedrock_otel_1"
        assert attributes[sc.FINISH_REASONS] == ("end_turn",)
        assert attributes[sc.USAGE_INPUT] == 12 + 3 + 2 and attributes[sc.USAGE_OUTPUT] == 7
        assert attributes[sc.TIME_TO_FIRST_CHUNK] > 0


@pytest.mark.parametrize(("provider", "mode", "api", "scenario"), cases())
def test_transparent_and_counted(bedrock_otel_server: Any, provider: str, mode: str, api: str, scenario: str,
                                 caplog: pytest.LogCaptureFixture) -> None:
    bare = drive(bedrock_otel_server, provider, mode, api, scenario)
    with caplog.at_level("WARNING", logger="opentelemetry"), CapturedTelemetry() as telemetry:
        seen = drive(bedrock_otel_server, provider, mode, api, scenario)
    assert seen == bare  # same items, same exception class and message
    assert_telemetry(telemetry, scenario, provider)
    assert not [r for r in caplog.records if "ended span" in r.getMessage()]  # the span ended exactly once
