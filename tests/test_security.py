"""Content and secrets: with default settings no prompt, completion, credential or header value leaves the
process through any span attribute, span event, metric label or log record; with content capture on, content
appears only in the documented attributes, cut to the configured length."""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest
from driver import MODES, PLATFORM_CLIENTS, PROVIDERS, clients, make_client

from bedrock_otel import semconv as sc
from bedrock_otel.testing import scenarios
from bedrock_otel.testing.capture import CapturedTelemetry
from bedrock_otel.testing.server import SCENARIO_HEADER
from bedrock_otel.testing.workload import model_for

PROMPT = "PROMPT-MARKER-7d1e5c"
COMPLETION = "COMPLETION-MARKER-93af02"
SECRETS = {
    "aws_access_key": "AKIAZZBEDROCKOTELKEY7",
    "aws_secret_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYBEDROCKOTEL",
    "aws_session_token": "FwoGZXIvYXdzEBEDROCKOTELSESSIONTOKEN0123456789",
    "api_key": "sk-ant-api03-BEDROCKOTELAPIKEY-0123456789abcdef",
}
# what names a tenant (Claude on AWS and Google Cloud send it as a header or in the URL path): never a label
TENANT = "wrkspc_TENANTBEDROCKOTEL0123"
LEAKS = (PROMPT, COMPLETION, *SECRETS.values(), TENANT)
SECRET_SCENARIO = scenarios.Scenario(
    "secret_content", (scenarios.Reply(parts=(scenarios.message_start(), *scenarios.text_block(
        (f"The answer is {COMPLETION}", " and nothing else" * 4, "!")), *scenarios.message_end())),))


def _client(server: Any, provider: str) -> Any:
    import anthropic

    if provider == "bedrock":
        return anthropic.AnthropicBedrock(base_url=server.url, aws_region="us-east-1", **{
            k: SECRETS[k] for k in ("aws_access_key", "aws_secret_key", "aws_session_token")})
    if provider in PLATFORM_CLIENTS:
        tenant = {"workspace_id": TENANT} if provider in ("aws", "google_cloud") else {}
        key = {} if provider == "google_cloud" else {"api_key": SECRETS["api_key"]}
        return make_client(server, provider, "sync", **key, **tenant)
    return anthropic.Anthropic(base_url=server.url, api_key=SECRETS["api_key"])


def _stream(server: Any, provider: str, api: str) -> None:
    client = _client(server, provider)
    request = dict(model=model_for(provider), max_tokens=16, extra_headers={SCENARIO_HEADER: SECRET_SCENARIO.name},
                   messages=[{"role": "user", "content": f"{PROMPT}: tell me all about it, at length, please."}])
    if api == "helper":
        with client.messages.stream(**request) as stream:
            assert COMPLETION in stream.get_final_text()
    else:
        assert len(list(client.messages.create(stream=True, **request))) == 8
    client.close()


def _everything_exported(t: CapturedTelemetry, records: list[logging.LogRecord]) -> dict[str, list[str]]:
    """Every piece of text that leaves through telemetry, by where it was found."""
    found: dict[str, list[str]] = {}
    for span in t.span_exporter.get_finished_spans():
        found.setdefault("span name", []).append(span.name)
        for key, value in (span.attributes or {}).items():
            found.setdefault(f"span attribute {key}", []).append(str(value))
        for event in span.events:
            found.setdefault("span event name", []).append(event.name)
            for key, value in (event.attributes or {}).items():
                found.setdefault(f"span event attribute {key}", []).append(str(value))
    found["prometheus exposition"] = [t.exposition()]
    data = t.metric_reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    found.setdefault("otel metric attributes", []).append(repr(dict(point.attributes or {})))
    # bedrock_otel's own log records (and OpenTelemetry's); the SDK's debug logs of its requests are not ours
    found["log records"] = [f"{r.getMessage()} {r.exc_text or ''}" for r in records
                            if r.name.startswith(("bedrock_otel", "opentelemetry"))]
    return found


def _where(found: dict[str, list[str]], needle: str) -> list[str]:
    return [place for place, texts in found.items() if any(needle in text for text in texts)]


@pytest.mark.parametrize("mode", MODES[:1])
@pytest.mark.parametrize("api", ("create", "helper"))
@pytest.mark.parametrize("provider", clients())
def test_no_content_or_secret_leaves_by_default(bedrock_otel_server: Any, caplog: pytest.LogCaptureFixture,
                                               provider: str, api: str, mode: str) -> None:
    bedrock_otel_server.register(SECRET_SCENARIO)
    with caplog.at_level(logging.DEBUG), CapturedTelemetry() as t:
        _stream(bedrock_otel_server, provider, api)
        gc.collect()
        found = _everything_exported(t, caplog.records)
    assert len(t.spans()) == 1 and found["prometheus exposition"][0].count("anthropic_streams_total{") == 1
    assert {needle: _where(found, needle) for needle in LEAKS} == {needle: [] for needle in LEAKS}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_captured_content_only_where_documented_and_cut(bedrock_otel_server: Any, caplog: pytest.LogCaptureFixture,
                                                        provider: str) -> None:
    bedrock_otel_server.register(SECRET_SCENARIO)
    limit = 64
    with caplog.at_level(logging.DEBUG), CapturedTelemetry(capture_content=True, content_max_length=limit) as t:
        _stream(bedrock_otel_server, provider, "create")
        gc.collect()
        found = _everything_exported(t, caplog.records)
    assert _where(found, PROMPT) == [f"span attribute {sc.INPUT_MESSAGES}"]
    assert _where(found, COMPLETION) == [f"span attribute {sc.OUTPUT_MESSAGES}"]
    (span,) = t.spans()
    assert len(span.attributes[sc.INPUT_MESSAGES]) <= limit and len(span.attributes[sc.OUTPUT_MESSAGES]) == limit
    assert span.attributes[sc.OUTPUT_MESSAGES] == f"The answer is {COMPLETION}{' and nothing else' * 4}!"[:limit]
    assert {s: _where(found, s) for s in SECRETS.values()} == {s: [] for s in SECRETS.values()}  # never content
