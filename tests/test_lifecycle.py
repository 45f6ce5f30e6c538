"""Every stream ends exactly once with the right outcome, whatever the caller does."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from conftest import by_label
from driver import MODES, PROVIDERS, make_client

from bedrock_otel import semconv as sc
from bedrock_otel.telemetry import catalog as c
from bedrock_otel.testing.capture import CapturedTelemetry
from bedrock_otel.testing.workload import request_for


def _assert_single(t: CapturedTelemetry, outcome: str) -> None:
    assert by_label(t, c.STREAMS, sc.OUTCOME) == {outcome: 1}
    assert by_label(t, c.STREAMS_ACTIVE, sc.PROVIDER) == {}
    spans = t.spans()
    assert len(spans) == 1 and spans[0].attributes[sc.OUTCOME] == outcome


@pytest.mark.parametrize("provider", PROVIDERS)
def test_break_then_close_is_abandoned(bedrock_otel_server: Any, provider: str) -> None:
    client = make_client(bedrock_otel_server, provider, "sync")
    with CapturedTelemetry() as t:
        stream = client.messages.create(stream=True, **request_for(provider, "normal"))
        for _event in stream:
            break
        assert by_label(t, c.STREAMS, sc.OUTCOME) == {}  # still open: the caller holds it
        stream.close()
        _assert_single(t, "abandoned")
        stream.close()  # a second close changes nothing
        _assert_single(t, "abandoned")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_dropped_stream_is_abandoned_when_collected(bedrock_otel_server: Any, provider: str) -> None:
    client = make_client(bedrock_otel_server, provider, "sync")
    with CapturedTelemetry() as t:
        stream = client.messages.create(stream=True, **request_for(provider, "normal"))
        next(iter(stream))
        del stream
        gc.collect()
        _assert_single(t, "abandoned")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_never_iterated_stream_is_abandoned(bedrock_otel_server: Any, provider: str) -> None:
    client = make_client(bedrock_otel_server, provider, "sync")
    with CapturedTelemetry() as t:
        client.messages.create(stream=True, **request_for(provider, "normal"))
        gc.collect()
        _assert_single(t, "abandoned")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_exception_in_helper_loop_body_is_abandoned(bedrock_otel_server: Any, provider: str) -> None:
    client = make_client(bedrock_otel_server, provider, "sync")
    with CapturedTelemetry() as t:
        with pytest.raises(KeyError):
            with client.messages.stream(**request_for(provider, "normal")) as stream:
                for _text in stream.text_stream:
                    raise KeyError("the application's own bug")
        gc.collect()
        _assert_single(t, "abandoned")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_break_after_message_stop_is_completed(bedrock_otel_server: Any, provider: str) -> None:
    client = make_client(bedrock_otel_server, provider, "sync")
    with CapturedTelemetry() as t:
        with client.messages.create(stream=True, **request_for(provider, "normal")) as stream:
            for event in stream:
                if event.type == "message_stop":
                    break
        _assert_single(t, "completed")


def test_crash_on_1472_masquerade_in_loop_body_is_error(bedrock_otel_server: Any) -> None:
    """The issue's crash: `event.message.model` on the masquerade (or the SDK raising, on fixed versions)."""
    client = make_client(bedrock_otel_server, "bedrock", "sync")
    with CapturedTelemetry() as t:
        with pytest.raises((AttributeError, Exception)):
            for event in client.messages.create(stream=True, **request_for("bedrock", "error_first")):
                event.message.model  # noqa: B018 - what the application in #1472 does
        gc.collect()
        _assert_single(t, "error")


@pytest.mark.parametrize("mode", MODES)
def test_async_break_and_close_and_cancel(bedrock_otel_server: Any, mode: str) -> None:
    if mode == "sync":
        return _sync_keyboard_interrupt(bedrock_otel_server)

    async def run(t: CapturedTelemetry) -> None:
        client = make_client(bedrock_otel_server, "first_party", "async")
        stream = await client.messages.create(stream=True, **request_for("first_party", "normal"))
        async for _event in stream:
            break
        await stream.close()
        _assert_single(t, "abandoned")

        async def consume() -> None:
            s = await client.messages.create(stream=True, **request_for("first_party", "normal"))
            async for _event in s:
                await asyncio.sleep(10)

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        del task  # a finished task keeps its frame, and so the stream, alive through its exception
        for _ in range(100):  # the event loop finalizes the dropped async generator on a later iteration
            gc.collect()
            await asyncio.sleep(0.01)
            if by_label(t, c.STREAMS, sc.OUTCOME) == {"abandoned": 2}:
                break
        assert by_label(t, c.STREAMS, sc.OUTCOME) == {"abandoned": 2}
        assert by_label(t, c.STREAMS_ACTIVE, sc.PROVIDER) == {}
        await client.close()

    with CapturedTelemetry() as t:
        asyncio.run(run(t))


def _sync_keyboard_interrupt(server: Any) -> None:
    client = make_client(server, "first_party", "sync")
    with CapturedTelemetry() as t:
        with pytest.raises(KeyboardInterrupt):
            with client.messages.create(stream=True, **request_for("first_party", "normal")) as stream:
                for _event in stream:
                    raise KeyboardInterrupt
        _assert_single(t, "abandoned")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_helper_until_done_and_async_text_stream(bedrock_otel_server: Any, provider: str) -> None:
    client = make_client(bedrock_otel_server, provider, "sync")
    with CapturedTelemetry() as t:
        with client.messages.stream(**request_for(provider, "normal")) as stream:
            stream.until_done()
        _assert_single(t, "completed")

    async def run() -> str:
        aclient = make_client(bedrock_otel_server, provider, "async")
        async with aclient.messages.stream(**request_for(provider, "normal")) as astream:
            text = "".join([chunk async for chunk in astream.text_stream])
        await aclient.close()
        return text

    with CapturedTelemetry() as t:
        assert asyncio.run(run()) == "Hello world!"
        _assert_single(t, "completed")
        assert by_label(t, c.STREAM_EVENTS, sc.EVENT_TYPE)["content_block_delta"] == 3  # helper: no double count


def test_pytest_fixtures_for_users(bedrock_otel_server: Any, bedrock_otel_telemetry: Any) -> None:
    """The fixtures a user gets from the plugin: a server to play scenarios and captured telemetry."""
    import anthropic

    bedrock_otel_server.play("error_first")
    client = anthropic.AnthropicBedrock(**bedrock_otel_server.bedrock_client_kwargs())
    with pytest.raises(Exception):  # noqa: B017 - AttributeError (< 0.110) or APIStatusError (fixed SDKs)
        for event in client.messages.create(model="global.anthropic.claude-opus-4-7", max_tokens=5, stream=True,
                                            messages=[{"role": "user", "content": "hi"}]):
            event.message.model  # noqa: B018
    gc.collect()
    hits = bedrock_otel_telemetry.value(c.RATE_LIMIT_HITS.prometheus_name, anthropic_rate_limit_source="error_event")
    assert hits == 1
    bedrock_otel_server.play("normal")


CALLER_STOPS = ("break", "close", "drop", "raise")


async def _stop_early_async(client: Any, provider: str, how: str) -> None:
    stream = await client.messages.create(stream=True, **request_for(provider, "normal"))
    try:
        async for _event in stream:
            if how == "raise":
                raise ValueError("the application's own bug")
            break
    except ValueError:
        pass
    if how == "close":
        await stream.close()
    del stream


def _stop_early(client: Any, provider: str, how: str) -> None:
    stream = client.messages.create(stream=True, **request_for(provider, "normal"))
    try:
        for _event in stream:
            if how == "raise":
                raise ValueError("the application's own bug")
            break
    except ValueError:
        pass
    if how == "close":
        stream.close()
    del stream


def _resource_warnings(server: Any, provider: str, mode: str, how: str) -> list[str]:
    """Stop a stream early the way `how` says and return the ResourceWarnings that followed."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        client = make_client(server, provider, mode)
        if mode == "async":
            async def run() -> None:
                await _stop_early_async(client, provider, how)
                for _ in range(3):  # let the loop finalize dropped async generators
                    gc.collect()
                    await asyncio.sleep(0.01)
                await client.close()

            asyncio.run(run())
        else:
            _stop_early(client, provider, how)
            client.close()
        gc.collect()
    return sorted(str(w.message).split(" at 0x")[0] for w in caught if issubclass(w.category, ResourceWarning))


@pytest.mark.parametrize("how", CALLER_STOPS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_caller_stops_early_without_leaks(bedrock_otel_server: Any, provider: str, mode: str, how: str) -> None:
    """break / close() / drop / own exception: abandoned once, span ended, gauge at 0, and no ResourceWarning
    that the same code does not also get uninstrumented."""
    bare = _resource_warnings(bedrock_otel_server, provider, mode, how)
    with CapturedTelemetry() as t:
        instrumented = _resource_warnings(bedrock_otel_server, provider, mode, how)
        _assert_single(t, "abandoned")
        assert t.spans()[0].end_time is not None
    assert instrumented == bare
