"""Streams that are not Messages streams are left alone: a Managed Agents session's event stream
(`client.beta.sessions.events.stream(...)`, first-party and, from SDK 2.16, Bedrock) is not a chat, so it feeds no
chat series, no span and no alert; the application sees exactly what it sees uninstrumented."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from driver import MODES, make_client

from bedrock_otel.telemetry import catalog as c
from bedrock_otel.testing import scenarios as s
from bedrock_otel.testing.capture import CapturedTelemetry


def _has_session_events(provider: str) -> bool:
    import anthropic

    client: Any = (anthropic.AnthropicBedrock(aws_access_key="x", aws_secret_key="y", aws_region="us-east-1")
                   if provider == "bedrock" else anthropic.Anthropic(api_key="x"))
    sessions = getattr(getattr(client, "beta", None), "sessions", None)
    return hasattr(getattr(sessions, "events", None), "stream")


PROVIDERS = [pytest.param(p, marks=pytest.mark.skipif(not _has_session_events(p), reason=(
    f"this SDK has no session-events stream on {p} (first-party from 2.x, Bedrock from 2.16)")))
    for p in ("first_party", "bedrock")]


def read_session_events(server: Any, provider: str, mode: str) -> list[str]:
    client = make_client(server, provider, mode)
    if mode == "async":
        async def read() -> list[str]:
            stream = await client.beta.sessions.events.stream("sesn_1")
            return [event.type async for event in stream]

        return asyncio.run(read())
    return [event.type for event in client.beta.sessions.events.stream("sesn_1")]


@pytest.mark.parametrize("retry", [False, True], ids=["observe", "retry"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_session_event_stream_feeds_no_chat_telemetry(bedrock_otel_server: Any, provider: str, mode: str,
                                                       retry: bool) -> None:
    bare = read_session_events(bedrock_otel_server, provider, mode)
    assert bare == [event["type"] for event in s.SESSION_EVENTS]
    with CapturedTelemetry(retry=retry) as t:
        seen = read_session_events(bedrock_otel_server, provider, mode)
        assert t.samples(c.STREAMS_ACTIVE.prometheus_name) in ({}, {
            key: 0.0 for key in t.samples(c.STREAMS_ACTIVE.prometheus_name)})  # never in flight
    assert seen == bare
    for instrument in (c.STREAMS, c.STREAM_EVENTS, c.OPERATION_DURATION, c.MALFORMED_EVENTS, c.ERROR_FRAMES):
        assert t.samples(instrument.prometheus_name) == {}, instrument.name
    assert [span.name for span in t.spans() if span.name.startswith("chat")] == []
    # the HTTP attempt is counted, as every attempt of an SDK call is
    (status,) = t.samples(c.HTTP_RESPONSES.prometheus_name).items()
    assert dict(status[0])["http_response_status_code"] == "200" and status[1] == 1.0
