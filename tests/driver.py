"""Drive the real SDK through every way an application reads a stream, and record what it saw."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic

from bedrock_otel.testing import workload
from bedrock_otel.testing._sdk import (  # noqa: F401 - re-exported for the tests
    DROPS_TYPELESS,
    FIRST_PARTY_YIELDS_UNKNOWN,
    FIXED_BEDROCK_DECODER,
    HAS_SDK_TRACING,
    SDK,
)
from bedrock_otel.testing.workload import APIS, MODES, PROVIDER_NAMES, PROVIDERS, Seen, make_client, model_for

__all__ = ["APIS", "MODES", "PROVIDERS", "PROVIDER_NAMES", "Seen", "api_available", "drive", "make_client", "model_for"]


def api_available(api: str, provider: str) -> bool:
    """Whether this SDK version offers `api` on `provider`'s client (e.g. Bedrock beta helpers came late)."""
    if provider == "bedrock":
        client: Any = anthropic.AnthropicBedrock(aws_access_key="x", aws_secret_key="y", aws_region="us-east-1")
    elif provider == "vertex":
        client = anthropic.AnthropicVertex(region="europe-west1", project_id="p", access_token="t")
    else:
        client = anthropic.Anthropic(api_key="x")
    return workload.api_available(client, api)


def drive(server: Any, provider: str, mode: str, api: str, scenario: str, **client_options: Any) -> Seen:
    """One stream on a fresh client, after forgetting the server's recorded requests and attempts."""
    server.reset()
    client = make_client(server, provider, mode, **client_options)
    if mode == "async":
        return asyncio.run(_drive_async(client, provider, api, scenario))
    return workload.consume(client, provider, api, scenario)


async def _drive_async(client: Any, provider: str, api: str, scenario: str) -> Seen:
    try:
        return await workload.aconsume(client, provider, api, scenario)
    finally:
        await client.close()
