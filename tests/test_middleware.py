"""The SDK's middleware chain (`middleware=`, 0.108.0 and later) runs above bedrock_otel's HTTP-attempt hook, once
per attempt. What reaches the wire is what bedrock_otel counts, whatever a middleware does with it:

- a user's middleware that reads a 200 and turns its in-band rate limit into a retry (`RetryableError`): the error
  frame and the rate-limit hit are counted from the body it read (`observe/tap.py`). With retry mode on,
  bedrock_otel reads ahead below the chain: the middleware gets the 429 that error stands for, and the retry is
  bedrock_otel's (counted as such);
- a middleware that raises: the application gets its exception, as uninstrumented, and the stream ends as an error;
- the SDK's `BetaRefusalFallbackMiddleware` splicing a fallback model's stream into the refused one: the stream
  the caller reads, spliced, is the one recorded;
- a middleware that reads a body and passes it on: counted once, by the stream hooks.

Every case is compared with the same client and middleware uninstrumented."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import anthropic
import pytest
from conftest import by_label
from driver import HAS_SDK_TRACING, PROVIDERS, call_labels, make_client
from test_retry import sleeps  # noqa: F401 - the fixture

from bedrock_otel import semconv as sc
from bedrock_otel.telemetry import catalog as c
from bedrock_otel.testing import scenarios as s
from bedrock_otel.testing import workload
from bedrock_otel.testing.capture import CapturedTelemetry
from bedrock_otel.testing.expectations import NORMAL_EVENTS
from bedrock_otel.testing.server import SCENARIO_HEADER

pytestmark = pytest.mark.skipif(not hasattr(anthropic, "RetryableError"),
                                reason="this SDK has no middleware chain (from 0.108.0)")

RECOVERING = {  # scenario -> (error type, source, rate-limit source), where a middleware handles it
    "rate_limited_then_ok": ("rate_limit_error", "event", "error_event"),
    "throttled_then_ok": ("throttlingException", "exception_frame", "exception_frame"),
}
CASES = [pytest.param(p, scenario, id=f"{p}-{scenario}") for p in PROVIDERS for scenario in RECOVERING
         if p == "bedrock" or scenario == "rate_limited_then_ok"]


def opens_with_error(body: bytes, content_type: str) -> bool:
    """Whether a stream body opens with an in-band error, read as a user's middleware would: without
    bedrock_otel (botocore's frame decoder for Bedrock, plain text for SSE)."""
    if content_type.startswith("text/event-stream"):
        return body.lstrip().startswith(b"event: error")
    from botocore.eventstream import EventStreamBuffer

    buffer = EventStreamBuffer()
    buffer.add_data(body)
    first = next(iter(buffer), None)
    if first is None:
        return False
    if first.headers.get(":message-type") == "exception":
        return True
    chunk = json.loads(base64.b64decode(json.loads(first.payload)["bytes"]))
    return chunk.get("type") == "error"


class InBandRetry:
    """A user's middleware: a 200 stream opening with an in-band error is retried by the SDK (`RetryableError`)."""

    def __init__(self) -> None:
        self.handled: list[int] = []  # the status of each response it was handed

    def _check(self, response: Any, body: bytes | None) -> Any:
        self.handled.append(response.status_code)
        if body is not None and opens_with_error(body, response.http_response.headers.get("content-type", "")):
            raise anthropic.RetryableError("in-band error at the start of the stream")
        return response

    def __call__(self, request: Any, call_next: Any) -> Any:
        response = call_next(request)
        return self._check(response, response.http_response.read() if response.status_code == 200 else None)


class AsyncInBandRetry(InBandRetry):
    async def __call__(self, request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        return self._check(response, await response.http_response.aread() if response.status_code == 200 else None)


def run(server: Any, provider: str, mode: str, scenario: str, middleware: Any, **options: Any) -> workload.Seen:
    server.reset()
    client = make_client(server, provider, mode, middleware=[middleware], **options)
    if mode == "async":
        return asyncio.run(workload.aconsume(client, provider, "create", scenario))
    return workload.consume(client, provider, "create", scenario)


def handler(mode: str) -> InBandRetry:
    return AsyncInBandRetry() if mode == "async" else InBandRetry()


@pytest.mark.parametrize("retry", [False, True], ids=["observe", "retry"])
@pytest.mark.parametrize("mode", workload.MODES)
@pytest.mark.parametrize(("provider", "scenario"), CASES)
def test_an_in_band_error_a_middleware_retries_is_counted(bedrock_otel_server: Any, sleeps: list[float],  # noqa: F811
                                                         provider: str, scenario: str, mode: str,
                                                         retry: bool) -> None:
    bare = run(bedrock_otel_server, provider, mode, scenario, handler(mode))
    assert bare.error is None and bare.items  # the middleware's retry recovered the stream
    middleware = handler(mode)
    with CapturedTelemetry(retry=retry) as t:
        seen = run(bedrock_otel_server, provider, mode, scenario, middleware)
    assert seen == bare
    # observe: the middleware read the 200 and retried; retry mode: bedrock_otel read ahead below the chain and
    # the middleware was handed the HTTP error that the in-band error stands for
    assert middleware.handled == ([429, 200] if retry else [200, 200])
    error_type, source, rate_source = RECOVERING[scenario]
    match = call_labels(provider)
    assert by_label(t, c.STREAMS, sc.OUTCOME, **match) == {"completed": 1}
    assert by_label(t, c.ERROR_FRAMES, sc.ERROR_TYPE, sc.ERROR_SOURCE, **match) == {(error_type, source): 1}
    assert by_label(t, c.RATE_LIMIT_HITS, sc.RATE_LIMIT_SOURCE, **match) == {rate_source: 1}
    assert by_label(t, c.STREAM_RETRIES, sc.ERROR_TYPE, sc.RETRY_RESULT, **match) \
        == ({(error_type, "retried"): 1} if retry else {})
    assert by_label(t, c.STREAM_EVENTS, sc.EVENT_TYPE, **match) == {**NORMAL_EVENTS, "error": 1}
    assert by_label(t, c.STREAMS_ACTIVE, sc.PROVIDER) == {}
    assert by_label(t, c.INTERNAL_ERRORS, sc.INTERNAL_COMPONENT) == {}
    (span,) = t.spans()
    assert [e.name for e in span.events].count(sc.SPAN_EVENT_ERROR_FRAME) == 1


@pytest.mark.parametrize("mode", workload.MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_in_band_error_a_middleware_gives_up_on_is_the_calls_error(bedrock_otel_server: Any, provider: str,
                                                                      mode: str) -> None:
    bare = run(bedrock_otel_server, provider, mode, "rate_limited_then_ok", handler(mode), max_retries=0)
    assert bare.error is not None and bare.error[0] == "RetryableError"
    with CapturedTelemetry() as t:
        seen = run(bedrock_otel_server, provider, mode, "rate_limited_then_ok", handler(mode), max_retries=0)
    assert seen == bare
    match = call_labels(provider)
    assert by_label(t, c.STREAMS, sc.OUTCOME, **match) == {"error": 1}
    assert by_label(t, c.OPERATION_DURATION, sc.ERROR_TYPE, suffix="_count", **match) == {"RetryableError": 1}
    assert by_label(t, c.ERROR_FRAMES, sc.ERROR_TYPE, **match) == {"rate_limit_error": 1}
    assert by_label(t, c.RATE_LIMIT_HITS, sc.RATE_LIMIT_SOURCE, **match) == {"error_event": 1}
    assert by_label(t, c.STREAMS_ACTIVE, sc.PROVIDER) == {}


def raising(request: Any, call_next: Any) -> Any:
    call_next(request).http_response.close()
    raise ValueError("the middleware's own bug")


async def araising(request: Any, call_next: Any) -> Any:
    await (await call_next(request)).http_response.aclose()
    raise ValueError("the middleware's own bug")


@pytest.mark.parametrize("retry", [False, True], ids=["observe", "retry"])
@pytest.mark.parametrize("mode", workload.MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_middleware_that_raises(bedrock_otel_server: Any, provider: str, mode: str, retry: bool) -> None:
    middleware = araising if mode == "async" else raising
    bare = run(bedrock_otel_server, provider, mode, "normal", middleware)
    assert bare.error == ("ValueError", "the middleware's own bug")
    with CapturedTelemetry(retry=retry) as t:
        seen = run(bedrock_otel_server, provider, mode, "normal", middleware)
    assert seen == bare
    match = call_labels(provider)
    assert by_label(t, c.STREAMS, sc.OUTCOME, **match) == {"error": 1}
    assert by_label(t, c.OPERATION_DURATION, sc.ERROR_TYPE, suffix="_count", **match) == {"ValueError": 1}
    assert by_label(t, c.ERROR_FRAMES, sc.ERROR_TYPE, **match) == {}
    assert by_label(t, c.STREAMS_ACTIVE, sc.PROVIDER) == {}
    assert by_label(t, c.INTERNAL_ERRORS, sc.INTERNAL_COMPONENT) == {}


def _fallback_middleware() -> Any:
    try:
        from anthropic.lib.middleware import BetaRefusalFallbackMiddleware
    except ImportError:
        return None
    return BetaRefusalFallbackMiddleware


REFUSED = s.Scenario("refused", (s.Reply(parts=(s.message_start(), *s.message_end(stop_reason="refusal"))),),
                     "a stream the model refuses before any output")
FALLBACK_MODEL = "claude-fallback-test"


def _to_fallback(request: Any) -> Any:
    """The loopback server's scenario for the fallback model's request: a complete stream."""
    if (request.json or {}).get("model") == FALLBACK_MODEL:
        return request.copy(headers={**request.headers, SCENARIO_HEADER: "normal"})
    return request


def route(request: Any, call_next: Any) -> Any:
    return call_next(_to_fallback(request))


async def aroute(request: Any, call_next: Any) -> Any:
    return await call_next(_to_fallback(request))


@pytest.mark.skipif(_fallback_middleware() is None, reason="this SDK has no BetaRefusalFallbackMiddleware")
@pytest.mark.parametrize("retry", [False, True], ids=["observe", "retry"])
@pytest.mark.parametrize("mode", workload.MODES)
def test_the_sdks_fallback_middleware_splicing_a_stream(bedrock_otel_server: Any, mode: str, retry: bool) -> None:
    """The caller's stream is the refused one with the fallback model's spliced on: it is that stream whose
    outcome and events are recorded (one start, a `fallback` seam block, then the fallback's content)."""
    bedrock_otel_server.register(REFUSED)

    def run() -> workload.Seen:
        bedrock_otel_server.reset()
        middleware = [_fallback_middleware()([{"model": FALLBACK_MODEL}]), aroute if mode == "async" else route]
        client = make_client(bedrock_otel_server, "first_party", mode, middleware=middleware)
        if mode == "async":
            return asyncio.run(workload.aconsume(client, "first_party", "beta_create", REFUSED.name))
        return workload.consume(client, "first_party", "beta_create", REFUSED.name)

    bare = run()
    assert bare.error is None and [r["scenario"] for r in bedrock_otel_server.requests] == ["refused", "normal"]
    with CapturedTelemetry(retry=retry) as t:
        seen = run()
    assert seen == bare
    match = call_labels("first_party")
    assert by_label(t, c.STREAMS, sc.OUTCOME, **match) == {"completed": 1}
    spliced = {**NORMAL_EVENTS, "content_block_start": 2, "content_block_stop": 2}  # the seam block, then the text
    assert sum(spliced.values()) == len(bare.items)
    assert by_label(t, c.STREAM_EVENTS, sc.EVENT_TYPE, **match) == spliced
    assert by_label(t, c.ERROR_FRAMES, sc.ERROR_TYPE, **match) == {}
    assert by_label(t, c.STREAMS_ACTIVE, sc.PROVIDER) == {}
    assert by_label(t, c.INTERNAL_ERRORS, sc.INTERNAL_COMPONENT) == {}
    (span,) = t.spans()
    assert span.attributes[sc.OUTCOME] == "completed"


def reading(request: Any, call_next: Any) -> Any:
    response = call_next(request)
    response.http_response.read()  # e.g. to log it
    return response


async def areading(request: Any, call_next: Any) -> Any:
    response = await call_next(request)
    await response.http_response.aread()
    return response


@pytest.mark.parametrize("mode", workload.MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_body_a_middleware_reads_and_passes_on_is_counted_once(bedrock_otel_server: Any, provider: str,
                                                                 mode: str) -> None:
    """The caller gets the body the middleware read (whatever wraps it on the way: the SDK's own tracing wraps
    every body): its frames are the stream hooks' to count, not the tap's as well."""
    from opentelemetry.sdk.trace import TracerProvider

    def sdk_tracing(tracer_provider: Any) -> dict[str, Any]:
        return {"open_telemetry": {"tracer_provider": tracer_provider}} if HAS_SDK_TRACING else {}

    middleware = areading if mode == "async" else reading
    bare = run(bedrock_otel_server, provider, mode, "error_first", middleware, **sdk_tracing(TracerProvider()))
    with CapturedTelemetry() as t:
        seen = run(bedrock_otel_server, provider, mode, "error_first", middleware, **sdk_tracing(t.tracer_provider))
    assert seen == bare
    match = call_labels(provider)
    assert by_label(t, c.ERROR_FRAMES, sc.ERROR_TYPE, **match) == {"rate_limit_error": 1}
    assert by_label(t, c.RATE_LIMIT_HITS, sc.RATE_LIMIT_SOURCE, **match) == {"error_event": 1}
