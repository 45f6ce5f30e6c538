"""boto3's bedrock-runtime streams (InvokeModelWithResponseStream, ConverseStream) through real botocore over real
loopback HTTP: the same contract as the SDK's streams, and exactly what the application sees bare."""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path
from typing import Any

import botocore
import botocore.session
import pytest
from conftest import by_label
from procs import run_python

import bedrock_otel
from bedrock_otel import semconv as sc
from bedrock_otel.telemetry import catalog as c
from bedrock_otel.testing import scenarios, workload
from bedrock_otel.testing.capture import CapturedTelemetry
from bedrock_otel.testing.expectations import expected_boto3, opens_with_retryable_error

pytestmark = pytest.mark.boto3  # no anthropic version changes it: see noxfile.py for where it runs

KINDS = workload.BOTO3
API = workload.STREAM_APIS
SERVICE_HAS_CONVERSE = "ConverseStream" in botocore.session.get_session().get_service_model(
    "bedrock-runtime").operation_names
CONVERSE_FIRST = "1.34.116"  # the first botocore with ConverseStream


def kinds() -> list[Any]:
    """Every botocore this suite runs on has InvokeModelWithResponseStream; ConverseStream came in 1.34.116."""
    return [pytest.param(k, marks=pytest.mark.skipif(k == "boto3_converse" and not SERVICE_HAS_CONVERSE,
                                                     reason=f"botocore {botocore.__version__} has no ConverseStream "
                                                            f"(from {CONVERSE_FIRST})")) for k in KINDS]


def drive(server: Any, kind: str, scenario: str, **client: Any) -> workload.Seen:
    """One stream on a fresh client (the scenario's read timeout, if it stalls), after resetting the server."""
    server.reset()
    read_timeout = scenarios.ALL[scenario].read_timeout if scenario in scenarios.ALL else None
    if read_timeout is not None:
        client.setdefault("read_timeout", read_timeout)
    boto3_client = workload.make_boto3_client(server, **client)
    try:
        return workload.consume_boto3(boto3_client, kind, scenario)
    finally:
        boto3_client.close()


def match(kind: str) -> dict[str, str]:
    return {"gen_ai_provider_name": sc.PROVIDER_BEDROCK, "anthropic_platform": sc.PLATFORM_BEDROCK,
            "gen_ai_request_model": scenarios.BEDROCK_MODEL,
            "cloud_region": "us-east-1", "aws_bedrock_inference_profile": "global", "anthropic_stream_api": API[kind]}


def assert_telemetry(t: CapturedTelemetry, scenario: str, kind: str) -> None:
    exp = expected_boto3(scenario, kind)
    labels = match(kind)
    assert by_label(t, c.STREAMS, sc.OUTCOME, **labels) == {exp.outcome: 1}
    assert by_label(t, c.STREAM_EVENTS, sc.EVENT_TYPE, **labels) == exp.events
    assert by_label(t, c.ERROR_FRAMES, sc.ERROR_TYPE, sc.ERROR_SOURCE, **labels) == exp.error_frames
    assert by_label(t, c.MALFORMED_EVENTS, sc.EVENT_TYPE, sc.MALFORMED_REASON, **labels) == exp.malformed
    assert by_label(t, c.RATE_LIMIT_HITS, sc.RATE_LIMIT_SOURCE, **labels) == exp.rate_limits
    assert by_label(t, c.HTTP_RESPONSES, sc.HTTP_STATUS, gen_ai_provider_name=sc.PROVIDER_BEDROCK) == exp.http
    assert by_label(t, c.USAGE_TOKENS, sc.TOKEN_TYPE, **labels) == exp.usage
    assert by_label(t, c.STREAMS_ACTIVE, sc.PROVIDER) == {}  # back to zero
    assert sum(by_label(t, c.OPERATION_DURATION, sc.PROVIDER, suffix="_count", **labels).values()) == 1
    chunks = exp.events.get("content_block_delta", 0) + exp.events.get("contentBlockDelta", 0)
    assert sum(by_label(t, c.TIME_PER_OUTPUT_CHUNK, sc.PROVIDER, suffix="_count", **labels).values()) \
        == max(chunks - 1, 0)
    assert by_label(t, c.INTERNAL_ERRORS, sc.INTERNAL_COMPONENT) == {}

    (span,) = t.spans()
    attributes = dict(span.attributes)
    assert span.end_time is not None and span.name == f"chat {scenarios.BEDROCK_MODEL}"
    assert attributes[sc.OUTCOME] == exp.outcome and attributes[sc.STREAM_API] == API[kind]
    assert attributes[sc.CLOUD_REGION] == "us-east-1" and attributes[sc.INFERENCE_PROFILE] == "global"
    assert (span.status.status_code.name == "ERROR") == (exp.outcome == "error")
    assert {k.removeprefix(sc.EVENTS_PREFIX): v for k, v in attributes.items() if k.startswith(sc.EVENTS_PREFIX)} \
        == exp.events
    names = [e.name for e in span.events]
    assert names.count(sc.SPAN_EVENT_ERROR_FRAME) == sum(exp.error_frames.values())
    assert names.count(sc.SPAN_EVENT_MALFORMED) == sum(exp.malformed.values())
    if exp.http.get("429", 0) + exp.http.get("500", 0) > 1:
        assert attributes[sc.RESEND_COUNT] == sum(exp.http.values()) - 1
    if exp.outcome == "completed":
        assert attributes[sc.FINISH_REASONS] == ("end_turn",)
        assert attributes[sc.TIME_TO_FIRST_CHUNK] > 0
    if exp.usage == {"input": 12, "output": 7, "cache_read": 3, "cache_creation": 2}:
        assert attributes[sc.USAGE_INPUT] == 12 + 3 + 2 and attributes[sc.USAGE_OUTPUT] == 7
        assert attributes[sc.USAGE_CACHE_READ] == 3 and attributes[sc.USAGE_CACHE_CREATION] == 2


@pytest.mark.parametrize("scenario", list(scenarios.ALL))
@pytest.mark.parametrize("kind", kinds())
def test_transparent_and_counted(bedrock_otel_server: Any, kind: str, scenario: str,
                                 caplog: pytest.LogCaptureFixture) -> None:
    """The fault matrix: the same events and exceptions (class, error code, message) as bare, exactly the
    contract's counters, one outcome, one ended span, the active gauge back at 0."""
    bare = drive(bedrock_otel_server, kind, scenario)
    with caplog.at_level("WARNING"), CapturedTelemetry() as telemetry:
        seen = drive(bedrock_otel_server, kind, scenario)
        attempts = len(bedrock_otel_server.requests)
    assert seen == bare
    assert attempts == sum(expected_boto3(scenario, kind).http.values())  # botocore's retries, unchanged
    assert_telemetry(telemetry, scenario, kind)
    assert not [r for r in caplog.records if r.name.startswith(("opentelemetry", "bedrock_otel"))]


@pytest.mark.parametrize("retry_mode", workload.BOTO3_RETRY_MODES)
@pytest.mark.parametrize("kind", kinds())
def test_http_429_under_each_botocore_retry_mode(bedrock_otel_server: Any, kind: str, retry_mode: str) -> None:
    """Every throttled attempt is a rate-limit hit, in legacy, standard and adaptive mode alike; the call that
    recovers is one completed stream whose span counts the resends."""
    for scenario, outcome, throttled in (("http_429", "error", 2), ("http_429_then_ok", "completed", 1)):
        bare = drive(bedrock_otel_server, kind, scenario, retry_mode=retry_mode, attempts=2)
        with CapturedTelemetry() as t:
            seen = drive(bedrock_otel_server, kind, scenario, retry_mode=retry_mode, attempts=2)
            sent = len(bedrock_otel_server.requests)
        assert seen == bare and sent == 2
        labels = match(kind)
        assert by_label(t, c.RATE_LIMIT_HITS, sc.RATE_LIMIT_SOURCE, **labels) == {"http_429": throttled}
        assert by_label(t, c.STREAMS, sc.OUTCOME, **labels) == {outcome: 1}
        (span,) = t.spans()
        assert span.attributes[sc.RESEND_COUNT] == 1
        if outcome == "error":
            assert seen.error is not None and seen.error[0] == "ThrottlingException"
            assert span.attributes[sc.ERROR_TYPE] == "ThrottlingException"
            assert by_label(t, c.OPERATION_DURATION, sc.ERROR_TYPE, suffix="_count", **labels) == \
                {"ThrottlingException": 1}


@pytest.mark.parametrize("kind", kinds())
@pytest.mark.parametrize("how", ["break", "close", "collected"])
def test_a_stream_left_early_is_abandoned(bedrock_otel_server: Any, kind: str, how: str) -> None:
    bedrock_otel_server.reset()
    client = workload.make_boto3_client(bedrock_otel_server)
    with CapturedTelemetry() as t:
        with workload.boto3_scenario("normal"):
            stream = workload.boto3_stream(client, kind)
        if how == "break":
            for _event in stream:
                break
        elif how == "close":
            next(iter(stream))
            stream.close()
        else:
            del stream
            gc.collect()
        assert by_label(t, c.STREAMS, sc.OUTCOME, **match(kind)) == {"abandoned": 1}
        assert by_label(t, c.STREAMS_ACTIVE, sc.PROVIDER) == {}
        (span,) = t.spans()
        assert span.attributes[sc.OUTCOME] == "abandoned"
    client.close()


def test_models_and_labels(bedrock_otel_server: Any) -> None:
    """The modelId as given, against the same model cap; the region from the client; the profile prefix. An
    application inference profile names no model: an invoke body declaring anthropic_version tells."""
    app_profile = "arn:aws:bedrock:eu-west-3:123456789012:application-inference-profile/abc123"
    client = workload.make_boto3_client(bedrock_otel_server, region="eu-west-3")
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 8, "messages": []})
    with CapturedTelemetry(max_models=2) as t:
        for model in ("eu.anthropic.claude-sonnet-4-5", app_profile, "anthropic.claude-3-haiku-20240307-v1:0"):
            list(client.invoke_model_with_response_stream(modelId=model, body=body)["body"])
        streams = by_label(t, c.STREAMS, sc.REQUEST_MODEL, sc.INFERENCE_PROFILE, sc.CLOUD_REGION)
        dropped = t.value(c.TELEMETRY_DROPPED.prometheus_name, bedrock_otel_dropped_reason="label_overflow")
    assert streams == {("eu.anthropic.claude-sonnet-4-5", "eu", "eu-west-3"): 1,
                       (app_profile, "_OTHER", "eu-west-3"): 1, ("_OTHER", "none", "eu-west-3"): 1}
    assert dropped == 1
    client.close()


OTHER_VENDORS = ["amazon.nova-pro-v1:0", "us.meta.llama3-2-90b-instruct-v1:0", "mistral.mistral-large-2402-v1:0"]


@pytest.mark.parametrize("kind", kinds())
def test_other_vendors_models_are_not_observed(bedrock_otel_server: Any, kind: str) -> None:
    """Nova, Llama, Mistral through the same calls (and an application inference profile whose invoke body is not
    Anthropic's, or on Converse, which never tells): no anthropic_* series, no span, the stream untouched."""
    opaque = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/novaprofile"
    client = workload.make_boto3_client(bedrock_otel_server)
    nova_body = json.dumps({"messages": [{"role": "user", "content": [{"text": "hi"}]}],
                            "inferenceConfig": {"maxTokens": 16}})

    def streams() -> list[list[str]]:
        if kind == "boto3_converse":
            return [[repr(e) for e in workload.boto3_stream(client, kind, m)] for m in [*OTHER_VENDORS, opaque]]
        return [[repr(e) for e in client.invoke_model_with_response_stream(modelId=m, body=nova_body)["body"]]
                for m in [*OTHER_VENDORS, opaque]]

    bare = streams()
    with CapturedTelemetry() as t:
        seen = streams()
        assert t.samples(c.STREAMS.prometheus_name) == {} and t.samples(c.HTTP_RESPONSES.prometheus_name) == {}
        assert t.spans("") == []
    assert seen == bare and len(seen[0]) >= 7  # every event of a whole stream
    client.close()


def test_uninstrument_restores_botocore() -> None:
    """The very objects botocore had (`is`: a wrapt wrapper compares equal to what it wraps)."""
    from botocore.client import BaseClient
    from botocore.endpoint import Endpoint
    from botocore.eventstream import EventStream

    def current() -> list[Any]:
        return [BaseClient.__dict__["_make_api_call"], Endpoint.__dict__["_send"], EventStream.__dict__["__iter__"],
                EventStream.__dict__["close"]]

    originals = current()
    with CapturedTelemetry():
        assert not any(now is before for now, before in zip(current(), originals))
    assert all(now is before for now, before in zip(current(), originals))


@pytest.mark.parametrize("first", ["opentelemetry", "bedrock_otel"])
@pytest.mark.parametrize("kind", kinds())
def test_beside_the_opentelemetry_botocore_instrumentation(bedrock_otel_server: Any, kind: str, first: str) -> None:
    """Both instrumentations on one client, in either order: the application sees what it sees bare, each
    instrumentation records its own span, and bedrock_otel its counters."""
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

    bare = drive(bedrock_otel_server, kind, "exception_throttlingException")
    telemetry = CapturedTelemetry()
    instrumentor = BotocoreInstrumentor()
    try:
        if first == "bedrock_otel":
            telemetry.__enter__()
        instrumentor.instrument(tracer_provider=telemetry.tracer_provider)
        if first == "opentelemetry":
            telemetry.__enter__()
        seen = drive(bedrock_otel_server, kind, "exception_throttlingException")
        labels = match(kind)
        frames = by_label(telemetry, c.ERROR_FRAMES, sc.ERROR_TYPE, sc.ERROR_SOURCE, **labels)
    finally:  # last in, first out: the OpenTelemetry instrumentation's unwrap removes the outermost wrapper
        if first == "bedrock_otel":
            instrumentor.uninstrument()
            telemetry.__exit__()
        else:
            telemetry.__exit__()
            instrumentor.uninstrument()
    assert seen == bare
    assert frames == {("throttlingException", "exception_frame"): 1}
    scopes = {span.instrumentation_scope.name for span in telemetry.span_exporter.get_finished_spans()}
    assert "bedrock_otel" in scopes and len(scopes) == 2
    assert all(s == "bedrock_otel" or s.startswith("opentelemetry.instrumentation.botocore") for s in scopes)


WAYS_IN = {  # launcher before `python -c`, the code's first line, environment
    "import bedrock_otel.auto": ([], "import bedrock_otel.auto", {}),
    "bedrock-otel run": (["bedrock-otel", "run", "--"], "", {}),
    "opentelemetry-instrument": (["opentelemetry-instrument"], "",
                                 {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
                                  "OTEL_LOGS_EXPORTER": "none"}),
}
APP = """
FIRST
import json
import bedrock_otel
from prometheus_client import REGISTRY
from bedrock_otel.testing import LoopbackServer, workload

assert bedrock_otel.is_instrumented()
with LoopbackServer() as server:
    client = workload.make_boto3_client(server)
    for kind in KINDS:
        workload.consume_boto3(client, kind, "normal")
samples = {s.labels["anthropic_stream_api"]: s.value for m in REGISTRY.collect() for s in m.samples
           if s.name == "anthropic_streams_total"}
print(json.dumps(samples))
"""


@pytest.mark.parametrize("way", list(WAYS_IN))
def test_every_way_in_covers_boto3(way: str) -> None:
    launcher, first, env = WAYS_IN[way]
    prefix = [str(Path(sys.executable).with_name(launcher[0])), *launcher[1:]] if launcher else []
    kinds_here = [k for k in KINDS if k != "boto3_converse" or SERVICE_HAS_CONVERSE]
    out = run_python(APP.replace("FIRST", first).replace("KINDS", repr(kinds_here)), *prefix,
                     BEDROCK_OTEL_PROMETHEUS_PORT="0", **env)
    assert json.loads(out.splitlines()[-1]) == {API[k]: 1.0 for k in kinds_here}


def test_instrumenting_after_the_client_exists_still_sees_its_streams(bedrock_otel_server: Any) -> None:
    """Hooks sit on botocore's classes, so a client made before instrument() is covered too."""
    client = workload.make_boto3_client(bedrock_otel_server)
    with CapturedTelemetry() as t:
        workload.consume_boto3(client, "boto3_invoke", "normal")
        assert by_label(t, c.STREAMS, sc.OUTCOME, **match("boto3_invoke")) == {"completed": 1}
    assert not bedrock_otel.is_instrumented()
    client.close()


def test_a_botocore_call_made_inside_an_observed_one_is_not_its_attempt(bedrock_otel_server: Any) -> None:
    """Credentials refreshed through STS while a stream call signs are a botocore call inside the call: their
    HTTP attempts are not the stream's (a handler making another call stands in for the credential provider)."""
    client = workload.make_boto3_client(bedrock_otel_server)
    helper = workload.make_boto3_client(bedrock_otel_server)

    def refresh(**_: Any) -> None:
        helper.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=b"{}")

    client.meta.events.register("before-sign.bedrock-runtime.InvokeModelWithResponseStream", refresh)
    bedrock_otel_server.reset()
    with CapturedTelemetry() as t:
        workload.consume_boto3(client, "boto3_invoke", "normal")
        responses = by_label(t, c.HTTP_RESPONSES, sc.HTTP_STATUS)
        (span,) = t.spans()
    assert len(bedrock_otel_server.requests) == 2 and responses == {"200": 1}
    assert sc.RESEND_COUNT not in span.attributes
    client.close()
    helper.close()


# -- retry mode ------------------------------------------------------------------------------------------------

RECOVERS = {"rate_limited_then_ok": "rate_limit_error", "throttled_then_ok": "throttlingException",
            "error_after_start_then_ok": "overloaded_error", "retry_after_then_ok": "rate_limit_error",
            "retry_after_ms_then_ok": "rate_limit_error",
            # x-should-retry is the Anthropic API's header: botocore's retry modes do not read it
            "should_not_retry": "rate_limit_error"}
CONVERSE_FRAME = {"rate_limit_error": "throttlingException", "overloaded_error": "serviceUnavailableException"}


@pytest.mark.parametrize("scenario", sorted(RECOVERS))
@pytest.mark.parametrize("kind", kinds())
def test_retry_mode_retries_a_stream_that_opens_with_a_retryable_error(bedrock_otel_server: Any, kind: str,
                                                                        scenario: str) -> None:
    """botocore is handed the HTTP error Bedrock answers for that error (429 ThrottlingException, 503, 500): its
    own retry mode makes the next attempt, and the application sees the stream that succeeded."""
    healthy = drive(bedrock_otel_server, kind, "normal")
    with CapturedTelemetry(retry=True) as t:
        seen = drive(bedrock_otel_server, kind, scenario)
        attempts = len(bedrock_otel_server.requests)
        labels = match(kind)
        error_type = RECOVERS[scenario] if kind == "boto3_invoke" else CONVERSE_FRAME.get(RECOVERS[scenario],
                                                                                          RECOVERS[scenario])
        assert by_label(t, c.STREAM_RETRIES, sc.ERROR_TYPE, sc.RETRY_RESULT, **labels) == {(error_type, "retried"): 1}
        assert by_label(t, c.STREAMS, sc.OUTCOME, **labels) == {"completed": 1}
        assert by_label(t, c.STREAMS_RECOVERED, sc.PROVIDER, **labels) == {sc.PROVIDER_BEDROCK: 1}
        assert by_label(t, c.HTTP_RESPONSES, sc.HTTP_STATUS) == {"200": 2}  # the real status of both attempts
        (span,) = t.spans()
        assert span.attributes[sc.RESEND_COUNT] == 1
    assert seen == healthy and attempts == 2


@pytest.mark.parametrize("kind", kinds())
def test_retry_mode_exhausted_raises_botocores_modelled_exception(bedrock_otel_server: Any, kind: str) -> None:
    with CapturedTelemetry(retry=True) as t:
        seen = drive(bedrock_otel_server, kind, "throttled_always", attempts=3)
        attempts = len(bedrock_otel_server.requests)
        labels = match(kind)
        assert by_label(t, c.STREAM_RETRIES, sc.ERROR_TYPE, sc.RETRY_RESULT, **labels) == {
            ("throttlingException", "retried"): 2, ("throttlingException", "exhausted"): 1}
        assert by_label(t, c.STREAMS, sc.OUTCOME, **labels) == {"error": 1}
    assert attempts == 3 and seen.items == []
    assert seen.error is not None and seen.error[0] == "ThrottlingException"
    assert "(reached max retries: 2): Too many tokens" in seen.error[1]


@pytest.mark.parametrize("scenario", [name for name, s in scenarios.ALL.items()
                                      if not opens_with_retryable_error(s.replies[0].parts)])
@pytest.mark.parametrize("kind", kinds())
def test_retry_mode_changes_nothing_else(bedrock_otel_server: Any, kind: str, scenario: str) -> None:
    """Every stream that does not open with a retryable error: what the application sees, and the telemetry,
    exactly as without retry mode (the bytes read ahead are replayed, read errors raised where they happened)."""
    bare = drive(bedrock_otel_server, kind, scenario)
    with CapturedTelemetry(retry=True) as telemetry:
        seen = drive(bedrock_otel_server, kind, scenario)
    assert seen == bare
    assert_telemetry(telemetry, scenario, kind)


@pytest.mark.parametrize("kind", kinds())
def test_no_content_in_telemetry_unless_capture_is_on(bedrock_otel_server: Any, kind: str) -> None:
    """Prompt and completion text stay out of spans and labels by default; with content capture the request's
    messages and the streamed text go into the span, cut to the configured length."""
    client = workload.make_boto3_client(bedrock_otel_server)
    for capture in (False, True):
        with CapturedTelemetry(capture_content=capture, content_max_length=60) as t:
            workload.consume_boto3(client, kind, "normal")
            (span,) = t.spans()
            text = json.dumps(dict(span.attributes), default=str) + t.exposition()
        if not capture:
            assert "Hello" not in text and '"hi"' not in text
            continue
        assert span.attributes[sc.OUTPUT_MESSAGES] == "Hello world!"
        assert '"hi"' in span.attributes[sc.INPUT_MESSAGES] and len(span.attributes[sc.INPUT_MESSAGES]) <= 60
        assert "Hello" not in t.exposition()  # never in a label
    client.close()
