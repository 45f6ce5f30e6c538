"""The catalogue, its two recorders, label bounds, headers, fail-open, and coexistence with SDK tracing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anthropic
import pytest
from conftest import as_prometheus_samples, by_label, prometheus_samples, same_numbers
from driver import HAS_SDK_TRACING, drive

from bedrock_otel import semconv as sc
from bedrock_otel.observe import classify
from bedrock_otel.telemetry import catalog as c
from bedrock_otel.telemetry.catalog import prometheus_label
from bedrock_otel.telemetry.otel import OtelRecorder
from bedrock_otel.testing.capture import CapturedTelemetry
from bedrock_otel.testing.expectations import expected

DOCS = Path(__file__).parent.parent / "docs" / "telemetry.md"
MIX = ["normal", "ping", "error_first", "error_mid", "typeless", "http_429_then_ok", "http_529", "truncated",
       "exception_throttlingException", "invalid_json"]

# the stream labels of one first-party call (catalog.STREAM_LABELS' order)
STREAM_KEY = ("anthropic", sc.PLATFORM_FIRST_PARTY, "claude-opus-4-7", "", "", sc.API_MESSAGES)


def test_catalog_matches_the_documented_contract() -> None:
    """docs/telemetry.md is the project's copy of the contract; the catalogue must say the same."""
    rows = re.findall(r"^\| `([a-z_.]+)` \| (\w+) \| `([^`]+)` \| `([a-z_]+)` \|", DOCS.read_text(), re.M)
    documented = {name: (kind, unit, prom) for name, kind, unit, prom in rows}
    kinds = {c.Kind.COUNTER: "Counter", c.Kind.UP_DOWN_COUNTER: "UpDownCounter", c.Kind.GAUGE: "Gauge",
             c.Kind.HISTOGRAM: "Histogram"}
    assert documented == {i.name: (kinds[i.kind], i.unit, i.prometheus_name) for i in c.CATALOG}
    section = DOCS.read_text().split("### Exemplars", 1)[1].split("\n#", 1)[0]
    with_exemplars = dict(re.findall(r"^\| `([a-z_]+)` \| ([^|]+) \|$", section, re.M))
    assert {name: "every outcome but" in text for name, text in with_exemplars.items()} == {
        i.prometheus_name: i.exemplars_except is not None for i in c.CATALOG if i.exemplars}


def _otel_families(reader: Any) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    return {m.name: list(m.data.data_points) for rm in data.resource_metrics for sm in rm.scope_metrics
            for m in sm.metrics}


def test_every_family_is_the_same_bucket_by_bucket_in_prometheus_fed_and_point_by_point() -> None:
    """The same streams, three deliveries: the Prometheus store, the application's reader fed from it
    (telemetry/otel_feed.py), and the per-point OpenTelemetry recorder given the same batches. Every family,
    every series, every bucket, count, sum, min and max agree."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from bedrock_otel import runtime
    from bedrock_otel.testing import LoopbackServer

    point_reader = InMemoryMetricReader()
    per_point = OtelRecorder(MeterProvider(metric_readers=[point_reader]).get_meter("bedrock_otel"))
    with LoopbackServer(event_delay=0.002) as paced, CapturedTelemetry() as t:
        assert runtime.ACTIVE is not None
        runtime.ACTIVE.recorders = (*runtime.ACTIVE.recorders, per_point)
        runtime.ACTIVE._record_baseline()  # what instrument() recorded before per_point joined (zeros)
        for provider in ("first_party", "bedrock"):
            for scenario in MIX:
                drive(paced, provider, "sync", "create", scenario)
        registry = list(t.registry.collect())
        fed, by_point = _otel_families(t.metric_reader), _otel_families(point_reader)
    compared = 0
    for instrument in c.CATALOG:
        prometheus = prometheus_samples(registry, instrument)
        same_numbers(prometheus, as_prometheus_samples(instrument, fed.get(instrument.name, [])))
        same_numbers(prometheus, as_prometheus_samples(instrument, by_point.get(instrument.name, [])))
        if instrument.kind is c.Kind.HISTOGRAM:
            extremes = {(tuple(sorted(p.attributes.items())), p.min, p.max) for p in fed.get(instrument.name, [])}
            assert extremes == {(tuple(sorted(p.attributes.items())), p.min, p.max)
                                for p in by_point.get(instrument.name, [])}, instrument.name
        compared += bool(prometheus)
    assert compared >= 12  # all but the internal-error counter and one gauge kind had data
    assert sum(v for (name, _), v in prometheus_samples(registry, c.TIME_PER_OUTPUT_CHUNK).items()
               if name.endswith("_count")) >= 8  # chunk times: the family the feed exists for


def test_histograms_use_the_conventions_buckets(bedrock_otel_server: Any) -> None:
    with CapturedTelemetry() as t:
        drive(bedrock_otel_server, "first_party", "sync", "create", "normal")
        (point,) = t.otel_points(c.OPERATION_DURATION.name)
        assert tuple(point.explicit_bounds) == c.DURATION_BUCKETS
        le = {dict(k)["le"] for k in t.samples(c.OPERATION_DURATION.prometheus_name + "_bucket")}
        assert "81.92" in le and "+Inf" in le


@pytest.mark.parametrize("provider", ["first_party", "bedrock", "vertex"])
def test_time_per_output_chunk_has_a_point_per_chunk_after_the_first(provider: str) -> None:
    """The GenAI conventions' inter-chunk histogram: one point per content_block_delta after the first, the
    time since the previous one; both recorders hold the same buckets, count and sum."""
    from bedrock_otel.testing import LoopbackServer

    instrument = c.TIME_PER_OUTPUT_CHUNK
    with LoopbackServer(event_delay=0.02) as paced, CapturedTelemetry() as t:
        drive(paced, provider, "sync", "create", "normal")
        drive(paced, provider, "async", "create", "normal")
        drive(paced, provider, "sync", "create", "error_mid")  # a single delta: nothing to measure
        count = t.samples(instrument.prometheus_name + "_count")
        total = t.samples(instrument.prometheus_name + "_sum")
        buckets = {dict(k)["le"]: v for k, v in t.samples(instrument.prometheus_name + "_bucket").items()}
        (point,) = t.otel_points(instrument.name)
    assert list(count.values()) == [4.0]  # 3 deltas per normal stream: 2 gaps each
    (seconds,) = total.values()
    assert 4 * 0.01 <= seconds < 4 * 0.5  # each gap is one paced event (0.01-0.03 s) plus the client's reading
    assert point.count == 4 and point.sum == pytest.approx(seconds)
    assert tuple(point.explicit_bounds) == c.DURATION_BUCKETS
    cumulative = [sum(point.bucket_counts[: i + 1]) for i in range(len(point.bucket_counts))]
    assert cumulative == [buckets[le] for le in [*map(str, c.DURATION_BUCKETS), "+Inf"]]
    assert dict(point.attributes)[sc.OPERATION_NAME] == sc.OPERATION_CHAT


def test_span_has_the_conventions_server_and_request_attributes(bedrock_otel_server: Any) -> None:
    import inspect

    client = anthropic.Anthropic(**bedrock_otel_server.anthropic_client_kwargs())
    accepted = inspect.signature(client.messages.create).parameters  # sampling parameters left the SDK in 2.x
    sampling = {k: v for k, v in {"temperature": 0.5, "top_p": 0.9, "top_k": 5}.items() if k in accepted}
    with CapturedTelemetry() as t:
        for _ in client.messages.create(model="claude-x", max_tokens=16, stop_sequences=["private stop text"],
                                        stream=True, messages=[{"role": "user", "content": "hi"}], **sampling):
            pass
    (span,) = t.spans()
    attributes = dict(span.attributes)
    assert attributes[sc.SERVER_ADDRESS] == "127.0.0.1"
    assert attributes[sc.SERVER_PORT] == int(bedrock_otel_server.url.rsplit(":", 1)[1])
    names = dict(sc.REQUEST_PARAMETERS)
    assert {a: v for a, v in attributes.items() if a in names.values()} == \
        {names[k]: v for k, v in {"max_tokens": 16, **sampling}.items()}
    assert "private stop text" not in repr(attributes)  # stop sequences are text: not recorded


def test_model_label_is_capped(bedrock_otel_server: Any) -> None:
    client = anthropic.Anthropic(**bedrock_otel_server.anthropic_client_kwargs())
    with CapturedTelemetry(max_models=2) as t:
        for model in ("model-a", "model-b", "model-c", "model-d", "model-a"):
            for _ in client.messages.create(model=model, max_tokens=5, stream=True,
                                            messages=[{"role": "user", "content": "x"}]):
                pass
        assert by_label(t, c.STREAMS, sc.REQUEST_MODEL) == {"model-a": 2, "model-b": 1, "_OTHER": 2}


def test_rate_limit_headers_and_retry_after(bedrock_otel_server: Any) -> None:
    with CapturedTelemetry() as t:
        drive(bedrock_otel_server, "first_party", "sync", "create", "http_429_then_ok")
        assert by_label(t, c.RATE_LIMIT_REMAINING, sc.RATE_LIMIT_RESOURCE) == {
            "requests": 999, "tokens": 79000, "input_tokens": 39500, "output_tokens": 15500}
        assert by_label(t, c.RATE_LIMIT_LIMIT, sc.RATE_LIMIT_RESOURCE)["requests"] == 1000
        assert by_label(t, c.RETRY_AFTER, sc.HTTP_STATUS, suffix="_count") == {"429": 1}
        (span,) = t.spans()
        assert span.attributes[sc.RESEND_COUNT] == 1
        assert span.attributes[sc.REQUEST_ID] == "req_bedrock_otel_1"


@pytest.mark.parametrize("tracing", ["sampled", "not_sampled", "traces_off"])
def test_exemplars_link_error_and_latency_series_to_the_streams_own_span(bedrock_otel_server: Any,
                                                                         tracing: str) -> None:
    """OpenMetrics exemplars carry the trace and span id of the stream that touched the series last: the in-band
    error's counters, the HTTP 429's rate-limit hit (taken at the attempt), the duration bucket; ids only, never
    text. A span not sampled, or no span, gives none."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    capture = CapturedTelemetry(sampler=ALWAYS_OFF if tracing == "not_sampled" else None,
                                traces=tracing != "traces_off")
    with capture as t:
        drive(bedrock_otel_server, "bedrock", "sync", "create", "http_429_then_ok")
        drive(bedrock_otel_server, "bedrock", "sync", "create", "error_mid")
        text = t.exposition("application/openmetrics-text; version=1.0.0")
        spans = t.spans()
        streams, durations = t.otel_points(c.STREAMS.name), t.otel_points(c.OPERATION_DURATION.name)
    outcome, source = prometheus_label(sc.OUTCOME), prometheus_label(sc.RATE_LIMIT_SOURCE)
    found = {(s.name, s.labels.get(outcome) or s.labels.get(source) or s.labels.get("le")): s.exemplar.labels
             for family in text_string_to_metric_families(text) for s in family.samples if s.exemplar is not None}
    if tracing != "sampled":
        assert found == {} and (spans == [] or not any(s.context.trace_flags.sampled for s in spans))
        assert streams and not any(p.exemplars for p in streams + durations)
        return
    ids = {s.attributes[sc.OUTCOME]: {"trace_id": format(s.context.trace_id, "032x"),
                                      "span_id": format(s.context.span_id, "016x")} for s in spans}
    failed, throttled = ids[sc.OUTCOME_ERROR], ids[sc.OUTCOME_COMPLETED]
    assert found[("anthropic_streams_total", sc.OUTCOME_ERROR)] == failed  # none for the completed stream
    assert ("anthropic_streams_total", sc.OUTCOME_COMPLETED) not in found
    assert found[("anthropic_stream_error_frames_total", None)] == failed
    assert found[("anthropic_rate_limit_hits_total", sc.SOURCE_HTTP_429)] == throttled
    # one series per stream (error_type differs): each keeps its own bucket's exemplar, whatever `le` they share
    in_buckets = [s.exemplar.labels for family in text_string_to_metric_families(text) for s in family.samples
                  if s.name == "gen_ai_client_operation_duration_seconds_bucket" and s.exemplar is not None]
    assert sorted(map(str, in_buckets)) == sorted(map(str, (failed, throttled)))
    assert all(set(labels) == {"trace_id", "span_id"} for labels in found.values())  # ids, never text
    # the application's OpenTelemetry readers get the same exemplars, as the SDK's (ids as integers)
    in_otel = {p.attributes.get(sc.OUTCOME): [(format(e.trace_id, "032x"), format(e.span_id, "016x"))
                                              for e in p.exemplars] for p in streams}
    assert in_otel == {sc.OUTCOME_ERROR: [(failed["trace_id"], failed["span_id"])], sc.OUTCOME_COMPLETED: []}
    assert {format(e.trace_id, "032x") for p in durations for e in p.exemplars} \
        == {failed["trace_id"], throttled["trace_id"]}


def test_a_provider_on_the_per_point_path_gets_the_exemplars_through_the_sdk(bedrock_otel_server: Any) -> None:
    """A reader that prefers delta temporality takes every point through the Metrics API: the points and totals
    of the series with exemplars go in a context holding the stream's span, and the SDK's trace-based filter
    attaches its ids; the completed stream's outcome gets none."""
    from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, ObservableCounter
    from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader

    delta = AggregationTemporality.DELTA
    capture = CapturedTelemetry()
    capture.metric_reader = InMemoryMetricReader(preferred_temporality={
        Counter: delta, Histogram: delta, ObservableCounter: delta})
    capture.meter_provider = MeterProvider(metric_readers=[capture.metric_reader])
    with capture as t:
        drive(bedrock_otel_server, "bedrock", "sync", "create", "http_429_then_ok")
        drive(bedrock_otel_server, "bedrock", "sync", "create", "error_mid")
        ids = {s.attributes[sc.OUTCOME]: f"{s.context.trace_id:032x}" for s in t.spans()}
        data = t.metric_reader.get_metrics_data()
    points = {m.name: list(m.data.data_points) for rm in data.resource_metrics for sm in rm.scope_metrics
              for m in sm.metrics}
    traces = {name: {p.attributes.get(sc.OUTCOME): {f"{e.trace_id:032x}" for e in p.exemplars} for p in found}
              for name, found in points.items()}
    assert traces[c.STREAMS.name] == {sc.OUTCOME_ERROR: {ids[sc.OUTCOME_ERROR]}, sc.OUTCOME_COMPLETED: set()}

    def every(name: str) -> set[str]:
        return {f"{e.trace_id:032x}" for p in points[name] for e in p.exemplars}

    assert every(c.OPERATION_DURATION.name) == set(ids.values())
    assert every(c.ERROR_FRAMES.name) == {ids[sc.OUTCOME_ERROR]}
    assert every(c.STREAM_EVENTS.name) == set()  # a series without exemplars


def test_a_provider_told_to_keep_no_exemplars_gets_none(bedrock_otel_server: Any) -> None:
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    capture = CapturedTelemetry()
    capture.metric_reader = InMemoryMetricReader()
    capture.meter_provider = MeterProvider(metric_readers=[capture.metric_reader],
                                           exemplar_filter=AlwaysOffExemplarFilter())
    with capture as t:
        drive(bedrock_otel_server, "bedrock", "sync", "create", "error_mid")
        assert " # {" in t.exposition("application/openmetrics-text; version=1.0.0")  # Prometheus keeps its own
        points = t.otel_points(c.STREAMS.name)
    assert points and all(p.exemplars == [] for p in points)


def test_instrumentation_failures_stay_inside(bedrock_otel_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail open: a bug in bedrock_otel is counted and logged, the application sees nothing of it."""
    bare = drive(bedrock_otel_server, "bedrock", "sync", "create", "error_mid")

    def broken(_payload: Any) -> Any:
        raise RuntimeError("bug in bedrock_otel")

    monkeypatch.setattr(classify, "error_from_payload", broken)
    monkeypatch.setattr(classify, "rate_limit_headers", broken)
    with CapturedTelemetry() as t:
        assert drive(bedrock_otel_server, "bedrock", "sync", "create", "error_mid") == bare
        assert by_label(t, c.INTERNAL_ERRORS, sc.INTERNAL_COMPONENT) == {"observer.event": 1, "hooks.send": 1}
        assert sum(by_label(t, c.STREAMS, sc.OUTCOME).values()) == 1  # the stream still ended, once


def test_a_failed_measurement_is_counted_as_dropped_by_its_recorder(bedrock_otel_server: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A recorder that fails one measurement (a broken reader, say) loses that one only, counts it as dropped
    (reason record_failed), and neither the other recorder nor the application notices."""
    bare = drive(bedrock_otel_server, "bedrock", "sync", "create", "normal")
    record = OtelRecorder.record

    def failing(self: OtelRecorder, instrument: c.Instrument, values: tuple[str, ...], value: float,
                context: Any = None) -> None:
        if instrument is c.OPERATION_DURATION:
            raise ValueError("a broken OpenTelemetry reader")
        record(self, instrument, values, value, context)

    monkeypatch.setattr(OtelRecorder, "record", failing)
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.metrics.view import View

    t = CapturedTelemetry()  # its provider with a view of every instrument: OpenTelemetry's own recorder, per point
    t.metric_reader = InMemoryMetricReader()
    t.meter_provider = MeterProvider(metric_readers=[t.metric_reader], views=[View(instrument_name="*")])
    with t:
        assert drive(bedrock_otel_server, "bedrock", "sync", "create", "normal") == bare
        dropped = {p.attributes[sc.DROPPED_REASON]: p.value for p in t.otel_points(c.TELEMETRY_DROPPED.name)}
        assert dropped == {sc.DROPPED_LABEL_OVERFLOW: 0, sc.DROPPED_RECORD_FAILED: 1, sc.DROPPED_EXPORT_FAILED: 0}
        assert not t.otel_points(c.OPERATION_DURATION.name)
        assert sum(p.value for p in t.otel_points(c.STREAMS.name)) == 1  # the rest of the stream was recorded
        assert by_label(t, c.TELEMETRY_DROPPED, sc.DROPPED_REASON) == {}  # Prometheus: nothing dropped (0s only)
        assert t.value(c.OPERATION_DURATION.prometheus_name + "_count") == 1


def test_no_content_or_secrets_in_telemetry_by_default(bedrock_otel_server: Any) -> None:
    marker = "PROMPT-MARKER-7f3a"
    client = anthropic.Anthropic(**bedrock_otel_server.anthropic_client_kwargs(api_key="sk-ant-SECRET-KEY"))
    with CapturedTelemetry() as t:
        for _ in client.messages.create(model="claude-opus-4-7", max_tokens=5, stream=True,
                                        messages=[{"role": "user", "content": marker}]):
            pass
        exported = t.exposition() + repr([(s.attributes, [e.attributes for e in s.events]) for s in t.spans()])
        assert marker not in exported and "SECRET" not in exported and "Hello" not in exported


def test_content_capture_is_opt_in_and_truncated(bedrock_otel_server: Any) -> None:
    client = anthropic.Anthropic(**bedrock_otel_server.anthropic_client_kwargs())
    with CapturedTelemetry(capture_content=True, content_max_length=20) as t:
        for _ in client.messages.create(model="claude-opus-4-7", max_tokens=5, stream=True,
                                        messages=[{"role": "user", "content": "a long prompt " * 10}]):
            pass
        (span,) = t.spans()
        assert len(span.attributes[sc.INPUT_MESSAGES]) == 20
        assert span.attributes[sc.OUTPUT_MESSAGES] == "Hello world!"
        assert "a long prompt" not in t.exposition()


@pytest.mark.skipif(not HAS_SDK_TRACING, reason="the SDK has its own spans only from 1.14.0")
def test_sdk_span_nests_under_ours(bedrock_otel_server: Any) -> None:
    """Decision: our `chat {model}` span is current while the SDK sends the request, so the SDK's own
    `anthropic.messages.create` span (1.14+) is its child in the same trace, never a second root."""
    with CapturedTelemetry() as t:
        client = anthropic.Anthropic(**bedrock_otel_server.anthropic_client_kwargs(
            open_telemetry={"tracer_provider": t.tracer_provider}))
        for _ in client.messages.create(model="claude-opus-4-7", max_tokens=5, stream=True,
                                        messages=[{"role": "user", "content": "x"}]):
            pass
        (ours,) = t.spans("chat")
        (theirs,) = t.spans("anthropic.messages")
        assert theirs.parent is not None and theirs.parent.span_id == ours.context.span_id
        assert theirs.context.trace_id == ours.context.trace_id and ours.parent is None


@pytest.mark.parametrize(("mode", "expected"), [
    ("none", []),
    ("errors", [sc.SPAN_EVENT_ERROR_FRAME]),
    ("boundaries", ["message_start", "content_block_start", sc.SPAN_EVENT_ERROR_FRAME]),
    ("all", ["message_start", "content_block_start", "content_block_delta", sc.SPAN_EVENT_ERROR_FRAME]),
])
@pytest.mark.parametrize("provider", ["first_party", "bedrock"])
def test_span_events_setting(bedrock_otel_server: Any, provider: str, mode: str, expected: list[str]) -> None:
    with CapturedTelemetry(span_events=mode) as t:
        drive(bedrock_otel_server, provider, "sync", "create", "error_mid")
        (span,) = t.spans()
        names = [e.name for e in span.events if e.name != sc.SPAN_EVENT_MALFORMED]  # masquerade: buggy SDKs only
        assert names == expected


def test_malformed_warning_names_the_sdk_and_remedies_once_a_minute(bedrock_otel_server: Any,
                                                                      caplog: pytest.LogCaptureFixture,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from bedrock_otel import runtime

    monkeypatch.setattr(runtime, "_last_warning", [-1e9])  # as in a fresh process
    with caplog.at_level("WARNING", logger="bedrock_otel"), CapturedTelemetry():
        for _ in range(3):
            drive(bedrock_otel_server, "bedrock", "sync", "create", "typeless")
    warnings = [r.getMessage() for r in caplog.records if r.name == "bedrock_otel" and r.levelname == "WARNING"]
    assert len(warnings) == 1  # three malformed events, one warning (rate-limited per process)
    with caplog.at_level("WARNING", logger="bedrock_otel"), CapturedTelemetry():  # re-instrumenting: still quiet
        drive(bedrock_otel_server, "bedrock", "sync", "create", "typeless")
    assert len([r for r in caplog.records if r.name == "bedrock_otel" and r.levelname == "WARNING"]) == 1
    assert anthropic.__version__ in warnings[0] and "0.110.0" in warnings[0] and "BEDROCK_OTEL_REPAIR" in warnings[0]


def test_unknown_event_warning_does_not_blame_error_handling(bedrock_otel_server: Any,
                                                             caplog: pytest.LogCaptureFixture,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """An event type the SDK cannot type reaches callers as a start event without a message on some SDKs (see
    the expectations): the warning says so, without sending the user to the #1472 error-handling fix."""
    from bedrock_otel import runtime

    monkeypatch.setattr(runtime, "_last_warning", [-1e9])
    with caplog.at_level("WARNING", logger="bedrock_otel"), CapturedTelemetry():
        drive(bedrock_otel_server, "bedrock", "sync", "create", "unknown_event")
    warnings = [r.getMessage() for r in caplog.records if r.name == "bedrock_otel" and r.levelname == "WARNING"]
    if not expected("unknown_event", "bedrock").malformed:  # this SDK drops the event: nothing to warn about
        assert warnings == []
        return
    (warning,) = warnings
    assert "an event of an unknown type reached the application" in warning and anthropic.__version__ in warning
    assert "BEDROCK_OTEL_REPAIR" in warning and "#1472" not in warning


def test_internal_error_components_are_declared_and_exported_from_the_start() -> None:
    src = Path(__file__).parent.parent / "src" / "bedrock_otel"
    # named where an error is counted, or in a client family's `Components` (counted on the runtime's one path)
    pattern = r'internal_error\("([^"]+)"\)|\b(?:call|send|stream|close)="([^"]+)"'
    used = {m for f in src.rglob("*.py") for found in re.findall(pattern, f.read_text()) for m in found if m}
    assert used == set(sc.INTERNAL_COMPONENTS)
    with CapturedTelemetry() as t:  # before any stream: every component is there at 0 (absent = telemetry missing)
        assert t.samples(c.INTERNAL_ERRORS.prometheus_name) == {
            (("bedrock_otel_component", component),): 0.0 for component in sc.INTERNAL_COMPONENTS}


def _histogram_counts(reader: Any, instrument: c.Instrument) -> int:
    data = reader.get_metrics_data()
    return sum(point.count for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
               if m.name == instrument.name for point in m.data.data_points) if data else 0


def test_histogram_points_are_recorded_at_collection_and_bounded_in_between(monkeypatch: pytest.MonkeyPatch) -> None:
    """Histogram points wait in a queue for the reader's next collection (off the application's path); a
    provider that never collects costs at most PENDING_LIMIT queued points, then points are recorded at once."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from bedrock_otel.telemetry import otel

    monkeypatch.setattr(otel, "PENDING_LIMIT", 5)
    reader = InMemoryMetricReader()
    recorder = OtelRecorder(MeterProvider(metric_readers=[reader]).get_meter("test"))
    key = (*STREAM_KEY, "chat", "")
    for _ in range(3):
        recorder.record(c.OPERATION_DURATION, key, 0.5)
    assert len(recorder._pending) == 3
    assert _histogram_counts(reader, c.OPERATION_DURATION) == 3 and not recorder._pending  # flushed by collection
    for _ in range(8):  # nobody collects: 5 wait, 3 go straight to the SDK
        recorder.record(c.OPERATION_DURATION, key, 0.5)
    assert len(recorder._pending) == 5
    assert _histogram_counts(reader, c.OPERATION_DURATION) == 11


def test_a_histogram_point_refused_at_collection_is_counted_and_the_rest_still_reported() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    recorder = OtelRecorder(MeterProvider(metric_readers=[reader]).get_meter("test"))
    key = (*STREAM_KEY, "chat", "")
    recorder.record(c.OPERATION_DURATION, key, 0.5)
    recorder.record(c.OPERATION_DURATION, key, "not a number")  # type: ignore[arg-type]  # the SDK raises on it
    recorder.record(c.STREAMS, (*STREAM_KEY, sc.OUTCOME_COMPLETED), 1)
    data = reader.get_metrics_data()
    points = {m.name: list(m.data.data_points) for rm in data.resource_metrics for sm in rm.scope_metrics
              for m in sm.metrics}
    assert sum(p.count for p in points[c.OPERATION_DURATION.name]) == 1
    assert [p.value for p in points[c.STREAMS.name]] == [1]
    assert {p.attributes[sc.DROPPED_REASON]: p.value for p in points[c.TELEMETRY_DROPPED.name]} == {
        sc.DROPPED_RECORD_FAILED: 1}


def test_headers_are_read_in_one_pass_as_headers_get_reads_them() -> None:
    import anthropic._base_client as base

    httpx_module = getattr(base, "httpx2", None) or base.httpx
    headers = httpx_module.Headers([("Request-Id", "req_1"), ("request-id", "req_2"), ("Retry-After", "3"),
                                    ("ANTHROPIC-RATELIMIT-TOKENS-REMAINING", "99"), ("x-other", "1")])
    read = classify.headers_read(headers)
    assert read == {"request-id": "req_1, req_2", "retry-after": "3", "anthropic-ratelimit-tokens-remaining": "99"}
    assert all(read[name] == headers.get(name) for name in read)  # case-insensitive, repeats joined
    assert classify.rate_limit_headers(read) == [("tokens", "remaining", 99.0)]
    plain = {"request-id": "req_3"}
    assert classify.headers_read(plain) is plain  # any other mapping is read as it is


def _measurements_through_the_sdk(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every measurement of bedrock_otel's instruments the OpenTelemetry SDK is handed through its Metrics API,
    synchronous or observed (not the SDK's own: some versions measure their readers' collections)."""
    from opentelemetry.sdk.metrics._internal import measurement_consumer

    ours = {instrument.name for instrument in c.CATALOG}
    seen: list[Any] = []
    consume = measurement_consumer.SynchronousMeasurementConsumer.consume_measurement

    def spied(self: Any, measurement: Any, *args: Any) -> Any:
        if measurement.instrument.name in ours:
            seen.append(measurement)
        return consume(self, measurement, *args)

    monkeypatch.setattr(measurement_consumer.SynchronousMeasurementConsumer, "consume_measurement", spied)
    return seen


@pytest.mark.parametrize(("reader_temporality", "view", "fed"), [
    (None, None, True),  # the defaults of every SDK reader: fed
    ("delta", None, False),  # a delta reader: the SDK computes the deltas, point by point
    (None, "gen_ai.client.*", False),  # a view that may select our instruments: the SDK applies it
    (None, "http.server.*", True),  # a view of other instruments changes nothing
])
def test_a_provider_is_fed_aggregates_unless_its_readers_or_views_need_every_point(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, bedrock_otel_server: Any,
        reader_temporality: str | None, view: str | None, fed: bool) -> None:
    """No per-point OpenTelemetry work where the provider's own instruments would report the same numbers;
    uninstrument() gives each reader back its own collect callback."""
    from opentelemetry.sdk.metrics import Histogram, MeterProvider, ObservableCounter
    from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
    from opentelemetry.sdk.metrics.view import View

    import bedrock_otel

    seen = _measurements_through_the_sdk(monkeypatch)
    delta = {Histogram: AggregationTemporality.DELTA, ObservableCounter: AggregationTemporality.DELTA}
    reader = InMemoryMetricReader(preferred_temporality=delta if reader_temporality else None)
    provider = MeterProvider(metric_readers=[reader], views=[View(instrument_name=view)] if view else [])
    own_callback = reader._collect
    caplog.set_level("INFO", "bedrock_otel")
    bedrock_otel.instrument(meter_provider=provider, traces=False, metrics="otel")
    try:
        drive(bedrock_otel_server, "first_party", "sync", "create", "normal")
        points = _otel_families(reader)
    finally:
        bedrock_otel.uninstrument()
    assert [p.count for p in points[c.TIME_PER_OUTPUT_CHUNK.name]] == [2]
    assert (not seen) is fed
    assert ("recorded point by point" in caplog.text) is not fed
    assert reader._collect is own_callback


LATE_PROVIDER_CHILD = """
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import bedrock_otel
from bedrock_otel import runtime
from bedrock_otel.testing import LoopbackServer
from bedrock_otel.testing.workload import consume, make_client

bedrock_otel.instrument(metrics=sys.argv[1])  # no MeterProvider anywhere yet: the API's placeholder
with LoopbackServer() as server:
    consume(make_client(server, "first_party", "sync"), "first_party", "create", "normal")
    held = sum(len(getattr(r, "_pending", ())) for r in runtime.ACTIVE.recorders)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))  # the application's, set late
    consume(make_client(server, "first_party", "sync"), "first_party", "create", "normal")
data = reader.get_metrics_data()
points = {m.name: m.data.data_points for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
print(held, sum(p.value for p in points["anthropic.streams"]),
      sum(p.count for p in points["gen_ai.client.operation.time_per_output_chunk"]))
"""


@pytest.mark.parametrize("backends", ["prometheus,otel", "otel"])
def test_a_provider_set_after_instrument_is_fed_every_stream_and_nothing_waits_for_it(backends: str) -> None:
    """Before the application sets a MeterProvider nothing is held for it; the one it sets later gets every
    stream's numbers, those before it included (kept in the native store)."""
    from procs import run_python

    out = run_python("import sys\n" + LATE_PROVIDER_CHILD.replace("sys.argv[1]", repr(backends)))
    assert out.split() == ["0", "2", "4"]  # nothing queued; 2 streams; 2 chunk times each


def test_a_late_provider_is_connected_once_when_streams_end_together() -> None:
    """Two stream ends that both see the newly set provider: one connects it, the other records its batch as
    usual (neither connects it twice, nor fails the batch)."""
    import threading
    import time

    from bedrock_otel.telemetry.otel_feed import LateFeed

    connected: list[Any] = []
    provider = object()
    late = LateFeed(object(), None, lambda p: connected.append(p))

    def slow_current() -> Any:  # widens the window between seeing the provider and connecting it
        time.sleep(0.05)
        return provider

    late._current = slow_current  # type: ignore[method-assign]
    failed: list[BaseException] = []

    def stream_end() -> None:
        try:
            late.record_all([])
        except BaseException as error:
            failed.append(error)

    ends = [threading.Thread(target=stream_end) for _ in range(2)]
    for end in ends:
        end.start()
    for end in ends:
        end.join()
    assert connected == [provider] and not failed
