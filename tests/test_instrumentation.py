"""Ways in and out: instrument/uninstrument identity, idempotence, import order, the OpenTelemetry entry
point, OTEL_SDK_DISABLED, and configuration errors."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import by_label
from driver import drive
from procs import run_python

import bedrock_otel
from bedrock_otel import ConfigError
from bedrock_otel import semconv as sc
from bedrock_otel.config import SETTINGS, Settings, setting
from bedrock_otel.hooks.targets import TARGETS
from bedrock_otel.instrumentation import PATCHER
from bedrock_otel.telemetry import catalog as c
from bedrock_otel.testing.capture import CapturedTelemetry


def _current(target: Any) -> Any:
    owner: Any = importlib.import_module(target.module)
    *path, attribute = target.qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner.__dict__.get(attribute)


def _importable(target: Any) -> bool:
    try:
        importlib.import_module(target.module)
    except ImportError:
        return False
    return _current(target) is not None


def test_uninstrument_restores_the_very_same_objects() -> None:
    present = [t for t in TARGETS if _importable(t)]
    before = {t: _current(t) for t in present}
    assert any(t.qualname == "Stream.__stream__" for t in present)
    with CapturedTelemetry():
        for target in present:
            assert _current(target) is not before[target], target
    for target in present:
        assert _current(target) is before[target], target


def test_double_instrument_patches_once_and_counts_once(bedrock_otel_server: Any) -> None:
    with CapturedTelemetry() as t:
        bedrock_otel.instrument(registry=t.registry)  # second call: a no-op
        stream_target = next(x for x in TARGETS if x.qualname == "Stream.__stream__")
        assert getattr(_current(stream_target), "__wrapped__", None) is PATCHER.applied[stream_target].original
        drive(bedrock_otel_server, "first_party", "sync", "create", "normal")
        assert by_label(t, c.STREAM_EVENTS, sc.EVENT_TYPE)["content_block_delta"] == 3
        assert by_label(t, c.STREAMS, sc.OUTCOME) == {"completed": 1}


def test_uninstrument_stops_recording_even_for_open_streams(bedrock_otel_server: Any) -> None:
    import anthropic

    client = anthropic.Anthropic(**bedrock_otel_server.anthropic_client_kwargs())
    with CapturedTelemetry() as t:
        stream = client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}],
                                        stream=True, extra_headers={"x-bedrock-otel-scenario": "normal"})
        next(iter(stream))
        bedrock_otel.uninstrument()
        list(stream)
        drive(bedrock_otel_server, "first_party", "sync", "create", "normal")
        assert by_label(t, c.STREAMS, sc.OUTCOME) == {}
        assert by_label(t, c.STREAMS_ACTIVE, sc.PROVIDER) == {}  # what it opened, it closed
        (span,) = t.spans()  # the open stream's span was ended, not leaked; the later stream made none
        assert span.end_time is not None
        bedrock_otel.instrument(registry=t.registry)  # so that the context manager's uninstrument is balanced


CHILD = textwrap.dedent("""
    import sys
    {first}
    {second}
    from bedrock_otel.testing import LoopbackServer
    from prometheus_client import REGISTRY
    with LoopbackServer() as server:
        client = anthropic.AnthropicBedrock(**server.bedrock_client_kwargs())
        for _ in client.messages.create(model="global.anthropic.claude-opus-4-7", max_tokens=5, stream=True,
                                        messages=[{{"role": "user", "content": "hi"}}]):
            pass
    print("STREAMS", REGISTRY.get_sample_value("{streams}", {{"gen_ai_provider_name": "aws.bedrock",
          "anthropic_platform": "bedrock", "gen_ai_request_model": "global.anthropic.claude-opus-4-7",
          "cloud_region": "us-east-1",
          "aws_bedrock_inference_profile": "global", "anthropic_stream_api": "messages",
          "anthropic_stream_outcome": "completed"}}))
""")


@pytest.mark.sdk_ends  # programs in subprocesses; which SDK modules are patched is checked on every version above
@pytest.mark.parametrize("order", ["auto_first", "anthropic_first"])
def test_auto_instruments_whatever_the_import_order(order: str) -> None:
    imports = ["import bedrock_otel.auto", "import anthropic"]
    first, second = imports if order == "auto_first" else imports[::-1]
    out = run_python(CHILD.format(first=first, second=second, streams=c.STREAMS.prometheus_name))
    assert "STREAMS 1.0" in out


@pytest.mark.sdk_ends
def test_opentelemetry_instrument_discovers_the_entry_point() -> None:
    code = CHILD.format(first="import anthropic, bedrock_otel", second="assert bedrock_otel.is_instrumented()",
                        streams=c.STREAMS.prometheus_name)
    cli = Path(sys.executable).with_name("opentelemetry-instrument")
    env = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
    assert "STREAMS 1.0" in run_python(code, str(cli), **env)
    disabled = code.replace("assert bedrock_otel.is_instrumented()", "assert not bedrock_otel.is_instrumented()")
    assert "STREAMS None" in run_python(disabled, str(cli), OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="bedrock_otel",
                                        **env)


def test_otel_sdk_disabled_makes_it_a_no_op(bedrock_otel_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import anthropic._streaming

    original = anthropic._streaming.Stream.__dict__["__stream__"]
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    with CapturedTelemetry() as t:
        assert anthropic._streaming.Stream.__dict__["__stream__"] is original
        drive(bedrock_otel_server, "first_party", "sync", "create", "normal")
        assert by_label(t, c.STREAMS, sc.OUTCOME) == {}


@pytest.mark.parametrize(("name", "value", "accepted"), [
    ("repair", "maybe", "true"),
    ("span_events", "verbose", "none, errors, boundaries, all"),
    ("max_models", "0", "whole number >= 1"),
    ("max_models", "lots", "whole number >= 1"),
    ("capture_content", "sometimes", "false"),
    ("content_max_length", "-5", "whole number >= 1"),
    ("traces", "2", "true"),
    ("metrics", "statsd", "prometheus, otel"),
])
def test_invalid_settings_name_the_setting_and_the_accepted_values(name: str, value: str, accepted: str) -> None:
    env = setting(name).env
    with pytest.raises(ConfigError) as from_kwarg:
        Settings.load({name: value}, environ={})
    assert name in str(from_kwarg.value) and accepted in str(from_kwarg.value)
    with pytest.raises(ConfigError) as from_env:
        Settings.load({}, environ={env: value})
    assert env in str(from_env.value) and accepted in str(from_env.value)


def test_invalid_setting_fails_instrument_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEDROCK_OTEL_SPAN_EVENTS", "loud")
    with pytest.raises(ConfigError, match="BEDROCK_OTEL_SPAN_EVENTS"):
        bedrock_otel.instrument()
    assert not bedrock_otel.is_instrumented()
    with pytest.raises(ConfigError, match="unknown setting"):
        bedrock_otel.instrument(repiar=True)


def test_settings_from_environment_and_kwargs() -> None:
    settings = Settings.load({"max_models": 3}, environ={"BEDROCK_OTEL_REPAIR": "1", "BEDROCK_OTEL_MAX_MODELS": "9",
                                                        "BEDROCK_OTEL_METRICS": "otel"})
    assert settings.repair is True and settings.max_models == 3 and settings.metrics == ("otel",)
    assert Settings.load({}, environ={}) == Settings()
    assert Settings().capture_content is False and Settings().span_events == "boundaries"


def test_readme_documents_every_setting() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for declared in SETTINGS:
        assert f"| `{declared.name}` | `{declared.env}` |" in readme, declared.name
