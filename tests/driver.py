"""Drive the real SDK through every way an application reads a stream, and record what it saw."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import anthropic
from packaging.version import Version

from bedrock_otel.testing import scenarios

SDK = Version(anthropic.__version__)
FIXED_BEDROCK_DECODER = SDK >= Version("0.110.0")  # in-band errors become `error` events
DROPS_TYPELESS = SDK >= Version("1.0.0")
HAS_SDK_TRACING = SDK >= Version("1.14.0")

PROVIDERS = ("first_party", "bedrock")
MODES = ("sync", "async")
APIS = ("create", "helper", "beta_create", "beta_helper", "next")


def api_available(api: str, provider: str) -> bool:
    """Whether this SDK version offers `api` on `provider`'s client (e.g. Bedrock beta helpers came late)."""
    if provider == "bedrock":
        client: Any = anthropic.AnthropicBedrock(aws_access_key="x", aws_secret_key="y", aws_region="us-east-1")
    else:
        client = anthropic.Anthropic(api_key="x")
    messages = getattr(getattr(client, "beta", None), "messages", None) if api.startswith("beta") else client.messages
    if messages is None:
        return False
    return hasattr(messages, "stream" if api.endswith("helper") else "create")


def make_client(server: Any, provider: str, mode: str, **options: Any) -> Any:
    if provider == "bedrock":
        cls = anthropic.AsyncAnthropicBedrock if mode == "async" else anthropic.AnthropicBedrock
        return cls(**server.bedrock_client_kwargs(**options))
    cls = anthropic.AsyncAnthropic if mode == "async" else anthropic.Anthropic
    return cls(**server.anthropic_client_kwargs(**options))


def model_for(provider: str) -> str:
    return scenarios.BEDROCK_MODEL if provider == "bedrock" else scenarios.MODEL


@dataclass
class Seen:
    """What the application observed: items (type and content) and the exception, if any."""

    items: list[str]
    error: tuple[str, str] | None
    final: str | None = None


def _summary(item: Any) -> str:
    to_dict = getattr(item, "to_dict", None)
    body = to_dict() if callable(to_dict) else getattr(item, "__dict__", item)
    return f"{type(item).__name__}:{body!r}"


def _request(provider: str, scenario: str) -> dict[str, Any]:
    return dict(model=model_for(provider), max_tokens=16, messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-bedrock-otel-scenario": scenario})


def drive(server: Any, provider: str, mode: str, api: str, scenario: str, **client_options: Any) -> Seen:
    server.reset()
    client = make_client(server, provider, mode, **client_options)
    if mode == "async":
        return asyncio.run(_drive_async(client, provider, api, scenario))
    return _drive_sync(client, provider, api, scenario)


def _messages(client: Any, api: str) -> Any:
    return client.beta.messages if api.startswith("beta") else client.messages


def _drive_sync(client: Any, provider: str, api: str, scenario: str) -> Seen:
    items: list[str] = []
    final = None
    try:
        messages = _messages(client, api)
        if api.endswith("helper"):
            with messages.stream(**_request(provider, scenario)) as stream:
                for event in stream:
                    items.append(_summary(event))
                final = _summary(stream.get_final_message())
        elif api == "next":
            stream = messages.create(stream=True, **_request(provider, scenario))
            while True:
                try:
                    items.append(_summary(next(stream)))
                except StopIteration:
                    break
        else:
            for event in messages.create(stream=True, **_request(provider, scenario)):
                items.append(_summary(event))
    except Exception as exc:
        return Seen(items, (type(exc).__name__, str(exc)), final)
    return Seen(items, None, final)


async def _drive_async(client: Any, provider: str, api: str, scenario: str) -> Seen:
    items: list[str] = []
    final = None
    try:
        messages = _messages(client, api)
        if api.endswith("helper"):
            async with messages.stream(**_request(provider, scenario)) as stream:
                async for event in stream:
                    items.append(_summary(event))
                final = _summary(await stream.get_final_message())
        elif api == "next":
            stream = await messages.create(stream=True, **_request(provider, scenario))
            while True:
                try:
                    items.append(_summary(await stream.__anext__()))
                except StopAsyncIteration:
                    break
        else:
            async for event in await messages.create(stream=True, **_request(provider, scenario)):
                items.append(_summary(event))
    except Exception as exc:
        return Seen(items, (type(exc).__name__, str(exc)), final)
    finally:
        await client.close()
    return Seen(items, None, final)
