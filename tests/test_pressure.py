"""Pressure mode: a retry budget and an adaptive send rate per (provider, platform, model, region), through the real
SDK (sync and async) and boto3 against the loopback server.

Where a test counts retries, the budget is made small (`small_budget`): 2 in hand instead of 10, and no floor of
retries a second, so that the counts are exact whatever the test's speed. Those tests fail with HTTP 500s, which the
SDK retries (the budget covers every retry decided by a response) but which are no throttle, so nothing is paced."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from typing import Any

import anthropic
import pytest
from conftest import by_label

import bedrock_otel
from bedrock_otel import pressure
from bedrock_otel import runtime as rt
from bedrock_otel import semconv as sc
from bedrock_otel.telemetry import catalog as c
from bedrock_otel.testing import LoopbackServer
from bedrock_otel.testing import scenarios as s
from bedrock_otel.testing.capture import CapturedTelemetry
from bedrock_otel.testing.quota import Quota
from bedrock_otel.testing.workload import (
    boto3_scenario,
    boto3_stream,
    make_boto3_client,
    make_client,
    model_for,
    request_for,
)

pytestmark = pytest.mark.sdk_independent  # see noxfile.py: the two ends of the Python range, and the floors

RETRY_AFTER_1S = s.Scenario("http_429_retry_after_1s", (s.http_error(429, "rate_limit_error", {"retry-after": "1"}),))
FAILING = s.Scenario("http_500_always", (s.http_error(500, "api_error", {"retry-after-ms": "1"}),))
RETRY_AFTER_5S = s.Scenario("http_429_retry_after_5s", (s.http_error(429, "rate_limit_error", {"retry-after": "5"}),))
WAITS = c.PRESSURE_WAIT.prometheus_name


@pytest.fixture
def server() -> Any:
    with LoopbackServer() as loopback:
        loopback.register(RETRY_AFTER_1S, RETRY_AFTER_5S, FAILING)
        yield loopback


@pytest.fixture
def small_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pressure, "BUDGET_CAP", 2.0)
    monkeypatch.setattr(pressure, "BUDGET_FLOOR_PER_S", 0.0)


def attempts(server: LoopbackServer, scenario: str) -> int:
    return sum(1 for r in server.requests if r["scenario"] == scenario)


def stream_all(client: Any, provider: str, scenario: str) -> str:
    """One streamed call read to its end: "ok", or the class name of what it raised."""
    try:
        with client.messages.create(stream=True, **request_for(provider, scenario)) as stream:
            for _event in stream:
                pass
    except anthropic.APIError as exc:
        return type(exc).__name__
    return "ok"


def test_the_budget_refuses_the_retry_that_would_exceed_it_and_the_sdk_raises_as_if_its_retries_were_spent(
        server: LoopbackServer, small_budget: None) -> None:
    client = anthropic.Anthropic(**server.anthropic_client_kwargs(max_retries=2))
    bare = stream_all(client, "first_party", FAILING.name)
    assert attempts(server, FAILING.name) == 3
    server.reset()
    with CapturedTelemetry(pressure=True) as telemetry:
        seen = [stream_all(client, "first_party", FAILING.name) for _ in range(3)]
        # 2 retries in the budget: the first call spends them; the next two are refused their first retry
        assert attempts(server, FAILING.name) == 3 + 1 + 1
        assert seen == [bare] * 3 == ["InternalServerError"] * 3
        assert by_label(telemetry, c.PRESSURE_REFUSED, sc.PLATFORM, sc.REQUEST_MODEL, sc.PRESSURE_REASON) == {
            ("first_party", model_for("first_party"), sc.REFUSED_RETRY_BUDGET): 2}
        refused = [e for span in telemetry.spans() for e in span.events if e.name == sc.SPAN_EVENT_PRESSURE_REFUSED]
        assert [(e.attributes[sc.PRESSURE_REASON], e.attributes[sc.RETRY_ATTEMPT]) for e in refused] == [
            (sc.REFUSED_RETRY_BUDGET, 1)] * 2


def test_the_budget_is_per_key_and_earns_a_tenth_of_a_retry_per_call(server: LoopbackServer,
                                                                       small_budget: None) -> None:
    client = anthropic.Anthropic(**server.anthropic_client_kwargs(max_retries=2))
    other = anthropic.AnthropicBedrock(**server.bedrock_client_kwargs(max_retries=2))
    with CapturedTelemetry(pressure=True) as telemetry:
        for _ in range(2):
            stream_all(client, "first_party", FAILING.name)
        assert attempts(server, FAILING.name) == 3 + 1
        for _ in range(10):  # ten calls that need no retry earn one
            assert stream_all(client, "first_party", "normal") == "ok"
        stream_all(client, "first_party", FAILING.name)
        assert attempts(server, FAILING.name) == 3 + 1 + 2  # one retry earned, then refused
        server.reset()
        stream_all(other, "bedrock", FAILING.name)  # another key: its own budget
        assert attempts(server, FAILING.name) == 3
        assert by_label(telemetry, c.PRESSURE_REFUSED, sc.PLATFORM) == {"first_party": 2}


def test_mode_off_changes_nothing_retries_and_pacing_alike(server: LoopbackServer, small_budget: None) -> None:
    client = anthropic.Anthropic(**server.anthropic_client_kwargs(max_retries=2))
    with CapturedTelemetry(retry=True) as telemetry:
        assert rt.ACTIVE.pressure is None  # type: ignore[union-attr]
        started = time.monotonic()
        for _ in range(4):
            assert stream_all(client, "first_party", "http_429") == "RateLimitError"
        assert attempts(server, "http_429") == 12  # every retry the SDK makes
        assert stream_all(client, "first_party", "normal") == "ok"
        assert time.monotonic() - started < 2.0  # retry-after 0.01: no pause of ours, no pacing
        for instrument in (c.PRESSURE_REFUSED, c.PRESSURE_WAIT, c.PRESSURE_RATE):
            assert not [v for name, v in telemetry.samples(instrument.prometheus_name).items() if v], instrument.name


def test_pacing_starts_after_throttles_and_stops_after_successes(server: LoopbackServer) -> None:
    """A quota of 10 a second: a caller that sends as fast as it can is throttled, then paced near the quota (its
    rate and waits exported); once the quota is back, the rate climbs and pacing stops (the gauge goes to 0)."""
    quota = Quota(10.0, bedrock_share=0.0)
    client = anthropic.Anthropic(**server.anthropic_client_kwargs(max_retries=0))
    server.quota = quota
    with CapturedTelemetry(pressure=True) as telemetry:
        state = rt.ACTIVE.pressure  # type: ignore[union-attr]
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            stream_all(client, "first_party", "normal")
        key = ("anthropic", "first_party", model_for("first_party"), "")
        assert state.keys[key].paced
        rate = telemetry.value(c.PRESSURE_RATE.prometheus_name)
        # unpaced it sent ~100 a second; the gauge follows changes of more than 1 %
        assert 0 < rate < 30 and rate == pytest.approx(state.keys[key].rate, rel=0.011)
        waits = telemetry.value(WAITS + "_count")
        assert waits > 10 and telemetry.value(WAITS + "_sum") > 0.5
        assert quota.counts["throttled"] < quota.counts["admitted"] / 2  # paced: few throttles after the first
        quota.set(1000.0)
        deadline = time.monotonic() + 15.0
        while state.keys[key].paced and time.monotonic() < deadline:
            assert stream_all(client, "first_party", "normal") == "ok"
        assert not state.keys[key].paced
        assert telemetry.value(c.PRESSURE_RATE.prometheus_name) == 0
        before = telemetry.value(WAITS + "_count")
        for _ in range(20):
            stream_all(client, "first_party", "normal")
        assert telemetry.value(WAITS + "_count") == before  # nothing waits any more


def test_retry_after_pauses_the_key_and_only_that_key(server: LoopbackServer) -> None:
    client = anthropic.Anthropic(**server.anthropic_client_kwargs(max_retries=0))
    other = anthropic.AnthropicBedrock(**server.bedrock_client_kwargs(max_retries=0))
    with CapturedTelemetry(pressure=True) as telemetry:
        assert stream_all(other, "bedrock", "normal") == "ok"  # (its first call imports and signs: not timed)
        assert stream_all(client, "first_party", RETRY_AFTER_1S.name) == "RateLimitError"
        paused = time.monotonic()
        assert stream_all(other, "bedrock", "normal") == "ok"  # another key: not paused
        assert time.monotonic() - paused < 0.5
        assert stream_all(client, "first_party", "normal") == "ok"
        assert 0.9 < time.monotonic() - paused < 1.5  # not sent before the second retry-after asked for
        waited = by_label(telemetry, c.PRESSURE_WAIT, sc.PLATFORM, suffix="_sum")
        assert list(waited) == ["first_party"] and 0.4 < waited["first_party"] < 1.1
        span = telemetry.spans()[-1]
        assert next(e.name for e in span.events) == sc.SPAN_EVENT_PRESSURE_WAIT
    with CapturedTelemetry(pressure=True, span_events="none") as telemetry:  # span events off: none of ours either
        stream_all(client, "first_party", RETRY_AFTER_1S.name)
        assert stream_all(client, "first_party", "normal") == "ok" and telemetry.value(WAITS + "_count") == 1
        assert not [e for span in telemetry.spans() for e in span.events]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_attempt_whose_turn_is_past_the_bound_is_not_sent_and_fails_at_once_as_a_throttle(
        server: LoopbackServer, mode: str) -> None:
    """retry-after 5 s pauses the key past the 2 s bound: the next call gets RateLimitError without a request."""
    client = make_client(server, "first_party", mode, max_retries=0)

    def call(scenario: str) -> Any:
        async def acall() -> Any:
            stream = await client.messages.create(stream=True, **request_for("first_party", scenario))
            async with stream:
                async for _event in stream:
                    pass

        try:
            if mode == "async":
                asyncio.run(acall())
            else:
                with client.messages.create(stream=True, **request_for("first_party", scenario)) as stream:
                    for _event in stream:
                        pass
        except anthropic.RateLimitError as exc:
            return exc
        return None

    with CapturedTelemetry(pressure=True) as telemetry:
        first = call(RETRY_AFTER_5S.name)
        assert first is not None and attempts(server, RETRY_AFTER_5S.name) == 1
        started = time.monotonic()
        refused = call("normal")
        assert time.monotonic() - started < 0.5 and attempts(server, "normal") == 0
        assert refused is not None and refused.status_code == 429
        assert refused.response.headers["x-bedrock-otel-pressure"] == "refused"
        assert by_label(telemetry, c.PRESSURE_REFUSED, sc.PRESSURE_REASON) == {sc.REFUSED_MAX_WAIT: 1}
        assert by_label(telemetry, c.STREAMS, sc.OUTCOME) == {"error": 2}
        assert not telemetry.value(WAITS + "_count")


def test_boto3_an_attempt_past_the_bound_is_not_sent_and_botocore_does_not_retry_it(server: LoopbackServer) -> None:
    client = make_boto3_client(server, retry_mode="standard", attempts=3)
    with CapturedTelemetry(pressure=True) as telemetry, boto3_scenario(RETRY_AFTER_5S.name):
        started = time.monotonic()
        with pytest.raises(Exception) as raised:
            for _event in boto3_stream(client, "boto3_converse"):
                pass
        assert time.monotonic() - started < 2.0  # botocore's one back-off, then refused at once
        assert attempts(server, RETRY_AFTER_5S.name) == 1
        assert raised.value.response["Error"]["Code"] == "ThrottlingException"  # type: ignore[attr-defined]
        assert by_label(telemetry, c.PRESSURE_REFUSED, sc.PRESSURE_REASON) == {sc.REFUSED_MAX_WAIT: 1}


def test_a_cancelled_wait_returns_at_once_gives_its_turn_back_and_sends_nothing(server: LoopbackServer) -> None:
    client = anthropic.AsyncAnthropic(**server.anthropic_client_kwargs(max_retries=0))

    async def main() -> float:
        with pytest.raises(anthropic.RateLimitError):
            await client.messages.create(stream=True, **request_for("first_party", RETRY_AFTER_1S.name))
        task = asyncio.ensure_future(client.messages.create(stream=True, **request_for("first_party", "normal")))
        await asyncio.sleep(0.2)
        task.cancel()
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    with CapturedTelemetry(pressure=True) as telemetry:
        assert asyncio.run(main()) < 0.1
        assert attempts(server, "normal") == 0  # never sent
        assert telemetry.value(c.STREAMS_ACTIVE.prometheus_name) == 0  # nothing left in flight
        assert by_label(telemetry, c.STREAMS, sc.OUTCOME) == {"error": 2}
        assert 0.1 < telemetry.value(WAITS + "_sum") < 0.5


def test_keyboard_interrupt_during_a_wait_ends_it_at_once(server: LoopbackServer) -> None:
    client = anthropic.Anthropic(**server.anthropic_client_kwargs(max_retries=0))
    with CapturedTelemetry(pressure=True) as telemetry:
        assert stream_all(client, "first_party", RETRY_AFTER_1S.name) == "RateLimitError"
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        timer.start()
        started = time.monotonic()
        try:
            with pytest.raises(KeyboardInterrupt):
                stream_all(client, "first_party", "normal")
        finally:
            timer.join()
            signal.signal(signal.SIGINT, previous)
        assert time.monotonic() - started < 0.5
        assert attempts(server, "normal") == 0
        assert telemetry.value(c.STREAMS_ACTIVE.prometheus_name) == 0
        assert telemetry.value(WAITS + "_count") == 1


def test_boto3_the_budget_covers_what_retry_mode_adds(server: LoopbackServer, small_budget: None) -> None:
    """Retry mode hands botocore a throttlingException frame as an HTTP 429; over budget botocore is told not to
    retry, and raises what it raises when its attempts are spent."""
    client = make_boto3_client(server, retry_mode="standard", attempts=3)

    def call() -> str:
        with boto3_scenario("throttled_always"):
            try:
                for _event in boto3_stream(client, "boto3_converse"):
                    pass
            except Exception as exc:
                return f"{type(exc).__name__} {getattr(exc, 'response', {}).get('Error', {}).get('Code')}"
        return "ok"

    with CapturedTelemetry(retry=True):
        spent = call()
    assert attempts(server, "throttled_always") == 3
    server.reset()
    with CapturedTelemetry(retry=True, pressure=True, pressure_max_wait=10) as telemetry:
        seen = [call() for _ in range(3)]
        assert attempts(server, "throttled_always") == 3 + 1 + 1
    assert seen == [spent] * 3 and spent.endswith(" ThrottlingException")
    assert by_label(telemetry, c.PRESSURE_REFUSED, sc.PLATFORM) == {"bedrock": 2}


def test_a_forked_child_starts_with_a_fresh_budget(server: LoopbackServer, small_budget: None) -> None:
    client = anthropic.Anthropic(**server.anthropic_client_kwargs(max_retries=2))
    with CapturedTelemetry(pressure=True):
        stream_all(client, "first_party", FAILING.name)
        stream_all(client, "first_party", FAILING.name)
        assert attempts(server, FAILING.name) == 4  # the parent's budget is spent
        server.reset()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its first call gets both retries (the parent's server thread counts them)
            try:
                os.write(write, stream_all(client, "first_party", FAILING.name).encode())
            finally:
                os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        with os.fdopen(read) as pipe:
            assert pipe.read() == "InternalServerError"
        assert attempts(server, FAILING.name) == 3


@pytest.mark.heavy  # ~16 s of wall clock: once per CI run
def test_pacing_holds_async_and_threaded_callers_alike_and_the_quota_sees_few_throttles() -> None:
    """Twelve callers (six threads, six asyncio tasks) against a quota of 8 a second for 8 s: with pressure mode
    the quota is met with far fewer throttled attempts than without."""

    def run(settings: dict[str, Any]) -> dict[str, int]:
        quota = Quota(8.0, bedrock_share=0.5)
        with LoopbackServer(quota=quota) as loopback:
            bedrock_otel.instrument(metrics="none", traces=False, **settings)
            try:
                stop = time.monotonic() + 8.0

                def threaded(provider: str) -> None:
                    client = make_client(loopback, provider, "sync", max_retries=2)
                    while time.monotonic() < stop:
                        stream_all(client, provider, "normal")

                async def tasks() -> None:
                    async def one(provider: str) -> None:
                        client = make_client(loopback, provider, "async", max_retries=2)
                        while time.monotonic() < stop:
                            try:
                                stream = await client.messages.create(stream=True, **request_for(provider, "normal"))
                                async with stream:
                                    async for _event in stream:
                                        pass
                            except anthropic.APIError:
                                pass

                    await asyncio.gather(*(one(p) for p in ("first_party", "bedrock") * 3))

                threads = [threading.Thread(target=threaded, args=(p,)) for p in ("first_party", "bedrock") * 3]
                threads.append(threading.Thread(target=lambda: asyncio.run(tasks())))
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            finally:
                bedrock_otel.uninstrument()
        return dict(quota.counts)

    without, paced = run({"retry": True}), run({"retry": True, "pressure": True})
    assert paced["throttled"] < 0.6 * without["throttled"]  # 0.4 on 2.16.0, 0.55 on 0.25.9 (longer back-off)
    assert paced["admitted"] > 0.8 * without["admitted"]


@pytest.mark.parametrize("scenario", ["error_first", "throttled_always"])
def test_an_in_band_throttle_paces_the_key_without_retry_mode_and_without_recorders(server: LoopbackServer,
                                                                                    scenario: str) -> None:
    """No retry mode, no metrics, no traces: the throttle inside the HTTP 200 (a rate_limit_error event, a
    throttlingException frame) is seen when the stream ends, and the next call on the key waits its turn."""
    client = anthropic.AnthropicBedrock(**server.bedrock_client_kwargs(max_retries=0))
    bedrock_otel.instrument(pressure=True, metrics="none", traces=False)
    assert stream_all(client, "bedrock", "normal") == "ok"
    started = time.monotonic()
    assert stream_all(client, "bedrock", "normal") == "ok"
    unpaced = time.monotonic() - started
    try:
        stream_all(client, "bedrock", scenario)  # whatever this SDK makes of it
    except ValueError:  # before 1.7 an exception frame is the decoder's ValueError
        pass
    started = time.monotonic()
    assert stream_all(client, "bedrock", "normal") == "ok"
    assert time.monotonic() - started > unpaced + 0.1  # paced at 0.7x the ~6 a second it was sending: ~0.24 s
