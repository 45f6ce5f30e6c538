"""Drive the real SDK through every way an application reads a stream, and record what it saw."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest

from bedrock_otel.testing import workload
from bedrock_otel.testing._sdk import (  # noqa: F401 - re-exported for the tests
    DROPS_TYPELESS,
    FIRST_PARTY_YIELDS_UNKNOWN,
    FIXED_BEDROCK_DECODER,
    HAS_SDK_TRACING,
    SDK,
)
from bedrock_otel.testing.server import ClientArguments
from bedrock_otel.testing.workload import (
    APIS,
    MODES,
    PLATFORM_CLIENTS,
    PLATFORM_NAMES,
    PROVIDER_NAMES,
    PROVIDERS,
    Seen,
    make_client,
    model_for,
)

__all__ = ["ALL_CLIENTS", "APIS", "MODES", "PLATFORM_CLIENTS", "PLATFORM_NAMES", "PROVIDERS", "PROVIDER_NAMES",
           "Seen", "api_available", "call_labels", "client_marks", "clients", "drive", "make_client", "model_for"]


class _Nowhere(ClientArguments):
    url = "http://127.0.0.1:9"  # never called: a client built only to see which APIs it has


@functools.cache
def api_available(api: str, provider: str) -> bool:
    """Whether this SDK version offers `api` on `provider`'s client (e.g. Bedrock beta helpers came late)."""
    if workload.missing_client(provider):
        return False
    return workload.api_available(make_client(_Nowhere(), provider, "sync"), api)


def client_marks(provider: str) -> list[Any]:
    """A PLATFORM_CLIENTS client's test marks: `platform_clients` (noxfile.py runs those on the newest SDK and on
    0.125.0, the last before httpx2) and a skip where this SDK version has no such client."""
    if provider not in PLATFORM_CLIENTS:
        return []
    missing = workload.missing_client(provider)
    return [pytest.mark.platform_clients, pytest.mark.skipif(bool(missing), reason=missing or "")]


ALL_CLIENTS = (*PROVIDERS, *PLATFORM_CLIENTS)


def call_labels(provider: str) -> dict[str, str]:
    """The Prometheus labels every series of a stream of `provider`'s client carries: provider, platform, model."""
    return {"gen_ai_provider_name": PROVIDER_NAMES[provider], "anthropic_platform": PLATFORM_NAMES[provider],
            "gen_ai_request_model": model_for(provider)}


def clients() -> list[Any]:
    """Every SDK client as a test parameter: PROVIDERS, then PLATFORM_CLIENTS with their marks."""
    return [pytest.param(p, id=p, marks=client_marks(p)) for p in ALL_CLIENTS]


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
