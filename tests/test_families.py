"""The shape that keeps every client family on one path: no import circle, one error table that the contract and
the policies agree with, one Bedrock chunk decoder whose strict and lenient uses each keep their behaviour."""

from __future__ import annotations

import ast
import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from driver import drive

from bedrock_otel import errors
from bedrock_otel import semconv as sc
from bedrock_otel.observe import classify
from bedrock_otel.observe.retry import Lookahead
from bedrock_otel.telemetry import catalog as c
from bedrock_otel.testing import eventstream
from bedrock_otel.testing import scenarios as s
from bedrock_otel.testing.capture import CapturedTelemetry

SRC = Path(__file__).parent.parent / "src" / "bedrock_otel"
DOCS = Path(__file__).parent.parent / "docs"


def _module_name(path: Path, src: Path) -> str:
    parts = path.relative_to(src.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Every module of the package -> the package's modules it imports, anywhere in the file (in functions, and
    under `TYPE_CHECKING` too)."""
    modules = {_module_name(path, src): path for path in src.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            for target in targets:  # the module itself (`a.b.c`, else the package `a.b` it names a thing of)
                parts = target.split(".")
                found.update(next(([".".join(parts[:end])] for end in range(len(parts), 1, -1)
                                   if ".".join(parts[:end]) in modules), []))
        found.discard(name)
        graph[name] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.mark.sdk_independent
def test_no_import_circle_counting_type_checking_imports() -> None:
    graph = import_graph()
    assert "bedrock_otel.observe.observer" in graph and graph["bedrock_otel.runtime"]  # the graph was read
    assert cycles(graph) == []


@pytest.mark.sdk_independent
def test_the_circle_detector_finds_a_circle_under_type_checking(tmp_path: Path) -> None:
    """The check above can fail: two modules that import each other, one of them only for type hints."""
    package = tmp_path / "bedrock_otel"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import thing\n")
    assert cycles(import_graph(package)) == [["bedrock_otel.a", "bedrock_otel.b"]]


@pytest.mark.sdk_independent
def test_the_one_path_knows_no_family() -> None:
    """runtime.py, the observer and telemetry import no family adapter: a new family changes none of them."""
    graph = import_graph()
    families = {name for name in graph if name.startswith("bedrock_otel.families.")}
    for module in ("bedrock_otel.runtime", "bedrock_otel.observe.observer", "bedrock_otel.telemetry.measurements",
                   "bedrock_otel.telemetry.spans"):
        assert not graph[module] & families, module
    runtime = (SRC / "runtime.py").read_text()
    assert not re.search(r"boto|httpx|Bedrock|Vertex", runtime)


def _documented(row: str) -> set[str]:
    """The backticked values of the contract's row that starts with `row`."""
    line = next(line for line in (DOCS / "telemetry.md").read_text().splitlines() if line.startswith(row))
    return set(re.findall(r"`([^`]+)`", line.split("|")[2]))


@pytest.mark.sdk_independent
def test_the_error_table_is_the_contracts() -> None:
    assert _documented("| `error.type` on error frames") == {*errors.ERRORS, sc.OTHER}
    assert _documented("| `error.type` on `anthropic.stream.retries`") == set(errors.RETRY_STATUS)
    sources = _documented("| `anthropic.rate_limit.source`") - set(errors.ERRORS)  # the row names types too
    assert set(errors.RATE_LIMIT_SOURCES.values()) | {sc.SOURCE_HTTP_429} == sources
    assert {classify.error_type_label(name) for name in errors.ERRORS} == set(errors.ERRORS)
    assert classify.error_type_label("madeUpException") == sc.OTHER


@pytest.mark.sdk_independent
@pytest.mark.parametrize("name", sorted(errors.ERRORS))
def test_each_error_row_is_consistent(name: str) -> None:
    kind = errors.ERRORS[name]
    assert (kind.sdk_retry is None) == (kind.aws_retry is None) and kind.why
    if kind.sdk_retry is not None:  # statuses every SDK version retries; botocore's retry modes retry these
        assert kind.sdk_retry in (408, 409, 429) or kind.sdk_retry >= 500
        assert kind.aws_retry[0] in (429, 500, 503) and kind.aws_retry[1].endswith("Exception")
    if kind.rate_limit is not None:
        assert kind.sdk_retry == 429 and kind.sdk_classes == ("RateLimitError",)
    assert errors.source_of(name) == (sc.SOURCE_EXCEPTION_FRAME if kind.bedrock else sc.SOURCE_EVENT)
    assert name.endswith("Exception") == kind.bedrock


CHUNK_HEADERS = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}


def _stray_base64(event: dict[str, Any]) -> bytes:
    """A chunk frame's payload whose base64 holds a character outside the alphabet (`*`, valid inside JSON)."""
    encoded = base64.b64encode(json.dumps(event, separators=(",", ":")).encode()).decode()
    return json.dumps({"bytes": f"{encoded[:4]}*{encoded[4:]}"}, separators=(",", ":")).encode()


@pytest.mark.sdk_independent
def test_one_chunk_decoder_strict_for_the_look_ahead_lenient_like_the_sdks() -> None:
    error = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    clean = eventstream.chunk_frame(error)
    stray = _stray_base64(error)
    inner = json.dumps(error, separators=(",", ":")).encode()
    for payload in (json.dumps({"bytes": base64.b64encode(inner).decode()}).encode(),  # not Bedrock's own spacing
                    json.dumps({"p": "x", "bytes": base64.b64encode(inner).decode()}).encode()):
        assert classify.bedrock_chunk_bytes(payload, strict=True) == inner
    assert classify.bedrock_chunk_bytes(stray, strict=False) == inner
    with pytest.raises(ValueError):
        classify.bedrock_chunk_bytes(stray, strict=True)
    # the look-ahead: a clean error chunk is retryable; the same with stray base64 is garbage, handed on as it is
    look = Lookahead(bedrock=True)
    assert look.feed(clean) and look.retryable is not None and look.retryable.error_type == "rate_limit_error"
    look = Lookahead(bedrock=True)
    assert look.feed(eventstream.encode_frame(CHUNK_HEADERS, stray))
    assert look.retryable is None and not look.failed


def _stray(event: dict[str, Any]) -> s.Garbage:
    return s.Garbage(eventstream.encode_frame(CHUNK_HEADERS, _stray_base64(event)))


STRAY_ERROR = s.Scenario("stray_base64_error", (s.Reply(parts=(
    s.message_start(), _stray(s.error_event("rate_limit_error", "Rate limited").payload))),))


def test_retry_mode_hands_on_an_error_chunk_whose_base64_is_not_strict(bedrock_otel_server: Any) -> None:
    """Garbage path: the SDK decodes the chunk leniently and sees the error; retry mode, reading strictly, does
    not retry it, and the application sees exactly what it sees without retry mode."""
    bedrock_otel_server.register(STRAY_ERROR)
    bare = drive(bedrock_otel_server, "bedrock", "sync", "create", STRAY_ERROR.name)
    with CapturedTelemetry(retry=True) as t:
        seen = drive(bedrock_otel_server, "bedrock", "sync", "create", STRAY_ERROR.name)
    assert seen == bare and len(bedrock_otel_server.requests) == 1
    assert t.value(c.INTERNAL_ERRORS.prometheus_name, bedrock_otel_component="retry.read_ahead") == 0
    assert t.samples(c.STREAM_RETRIES.prometheus_name) == {}


TYPELESS = {"amazon-bedrock-invocationMetrics": {"inputTokenCount": 12, "outputTokenCount": 7}}


def test_a_typeless_chunk_is_read_as_the_sdk_decoder_reads_it(bedrock_otel_server: Any) -> None:
    """Lenient path: a chunk without a type is flagged whether or not its base64 holds a stray character, as the
    SDK's decoder (SDK >= 1.0 drops it, and the frame hook decodes it again) and botocore read it."""
    seen = {}
    for stray in (False, True):
        parts = (*s.normal_parts()[:-1], _stray(TYPELESS) if stray else s.TypelessChunk(TYPELESS),
                 s.normal_parts()[-1])
        scenario = s.Scenario(f"typeless_{stray}", (s.Reply(parts=parts),))
        bedrock_otel_server.register(scenario)
        with CapturedTelemetry() as t:
            drive(bedrock_otel_server, "bedrock", "sync", "create", scenario.name)
        seen[stray] = (t.samples(c.MALFORMED_EVENTS.prometheus_name), t.samples(c.STREAM_EVENTS.prometheus_name))
    malformed = seen[False][0]
    assert [dict(key)["anthropic_stream_malformed_reason"] for key in malformed] == [sc.REASON_MISSING_TYPE]
    assert seen[True] == seen[False]


def test_every_client_class_of_the_sdk_has_a_platform_and_the_sdks_own_provider() -> None:
    """A client class a new SDK adds without a row in the platform table would be recorded as `_OTHER`; on SDKs
    with their own tracing, the provider is the one it names and the platform the one its tracer scope names."""
    import anthropic
    from anthropic._base_client import AsyncAPIClient, SyncAPIClient

    from bedrock_otel.families.sdk import platform_of

    classes = [v for k, v in vars(anthropic).items() if k.startswith(("Anthropic", "AsyncAnthropic"))
               and isinstance(v, type) and issubclass(v, (SyncAPIClient, AsyncAPIClient))]
    platforms = {cls: platform_of(object.__new__(cls)) for cls in classes}
    assert len(classes) >= 4 and all(p.platform in sc.PLATFORMS for p in platforms.values()), platforms
    for cls, platform in platforms.items():
        if hasattr(cls, "_gen_ai_provider_name"):
            assert platform.provider == cls._gen_ai_provider_name, cls
            own = cls._otel_platform or sc.PLATFORM_FIRST_PARTY
            assert platform.platform == own or (own, platform.platform) == ("bedrock", "bedrock_mantle"), cls
    if hasattr(anthropic, "AnthropicGoogleCloud"):  # 0.117.0 and later have all seven, each with its Async twin
        assert sorted(p.platform for p in platforms.values()) == sorted(sc.PLATFORMS * 2)
