"""The native exposition (`telemetry/store.py`, `exporters/exposition.py`) against prometheus_client's own: the
same measurements give the same families, types, help texts, samples and values in both formats."""

from __future__ import annotations

import gzip
import math
import os
import time
import urllib.request
from typing import Any

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

import bedrock_otel
from bedrock_otel import semconv as sc
from bedrock_otel.exporters.exposition import generate
from bedrock_otel.telemetry import catalog as c
from bedrock_otel.telemetry.prometheus import PrometheusRecorder
from bedrock_otel.telemetry.store import NATIVE

pytestmark = pytest.mark.sdk_independent

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
# model ids are the caller's strings: quotes, backslashes and newlines must be escaped, once, correctly
MODELS = ("claude-opus-4-7", 'odd "quoted" \\ model\nid', "global.anthropic.claude-sonnet-4-5")


def measurements() -> list[tuple[c.Instrument, tuple[str, ...], Any]]:
    """Every instrument, several series each, values that take every formatting path (small and large integers,
    fractions, negative gauges, points across and beyond the buckets)."""
    taken = []
    for i, model in enumerate(MODELS):
        for instrument in c.CATALOG:
            labels = list(instrument.attributes)
            values = tuple(model if a == sc.REQUEST_MODEL else f"{a}-{i}" for a in labels)
            if instrument.points:
                value: Any = [0.005 * (i + 1), 0.3, 100.0, 0.04]
            elif instrument.kind is c.Kind.HISTOGRAM:
                value = (0.02, 7.5, 1e9)[i]
            elif instrument.kind is c.Kind.GAUGE:
                value = (-3, 12345678, 0.25)[i]
            elif instrument.kind is c.Kind.UP_DOWN_COUNTER:
                value = (1, -1, 4100)[i]
            else:
                value = (1, 4096, 2.5)[i]
            taken.append((instrument, values, value))
            taken.append((instrument, values, value))  # twice: accumulation, not the last value (but gauges)
    return taken


def recorded(native: bool, taken: list[tuple[c.Instrument, tuple[str, ...], Any]] | None = None
             ) -> CollectorRegistry:
    registry = CollectorRegistry()
    recorder = PrometheusRecorder(registry, native=native)
    assert (recorder.native is not None) is native
    assert not recorder.record_all(measurements() if taken is None else taken)
    return registry


Parsed = dict[tuple[str, str, str], dict[tuple[str, tuple[tuple[str, str], ...]], Any]]


def parsed(text: str, openmetrics: bool) -> Parsed:
    """Families by (name, type, help) -> samples by (name, labels) -> value (`_created`: only that it is there)."""
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    families: Parsed = {}
    for family in parse(text):
        samples = families.setdefault((family.name, family.type, family.documentation), {})
        for s in family.samples:
            created = s.name.endswith("_created")
            assert created or not math.isnan(s.value)
            samples[(s.name, tuple(sorted(s.labels.items())))] = "created" if created else s.value
    return families


@pytest.mark.parametrize("accept", [None, OPENMETRICS], ids=["text", "openmetrics"])
@pytest.mark.parametrize("created", [True, False], ids=["created", "no_created"])
@pytest.mark.parametrize("empty", [False, True], ids=["recorded", "empty"])
def test_native_exposition_equals_prometheus_client(accept: str | None, created: bool, empty: bool,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prometheus_client.metrics, "_use_created", created)
    openmetrics = accept is not None
    taken = [] if empty else measurements()
    native_registry, client_registry = recorded(True, taken), recorded(False, taken)
    assert native_registry in NATIVE and client_registry not in NATIVE
    ours, content_type = generate(native_registry, accept)
    theirs, their_type = prometheus_client.exposition.choose_encoder(accept or "")[0](client_registry), content_type
    assert content_type == their_type and content_type.startswith(
        "application/openmetrics-text" if openmetrics else "text/plain; version=0.0.4")
    expected = parsed(theirs.decode(), openmetrics)
    got = parsed(ours.decode(), openmetrics)
    assert got == expected
    # every family, even one without series (its HELP and TYPE), and the text format's `_created` gauges
    assert len(expected) == (len(c.CATALOG) + (sum(i.kind in (c.Kind.COUNTER, c.Kind.HISTOGRAM) for i in c.CATALOG)
                                               if created and not openmetrics and not empty else 0))
    assert any(("_created" in name) for family in got.values() for name, _ in family) is (created and not empty)
    if openmetrics:
        assert ours.endswith(b"# EOF\n") and ours.count(b"# EOF") == 1
    # anything else reading the registry (get_sample_value, a `name[]` scrape) gets prometheus_client's objects
    assert parsed(prometheus_client.generate_latest(native_registry).decode(), False) == parsed(
        prometheus_client.generate_latest(client_registry).decode(), False)


def test_a_scrape_after_more_streams_shows_them() -> None:
    """Histogram lines are kept between scrapes for series that did not change: a change must show."""
    registry = CollectorRegistry()
    ours, theirs = PrometheusRecorder(registry, native=True), PrometheusRecorder(CollectorRegistry(), native=False)
    first = measurements()
    more = [m for m in first if m[0].kind is c.Kind.HISTOGRAM][::3]
    assert not ours.record_all(first) and not theirs.record_all(first + more)
    before = generate(registry)[0]  # renders, and keeps, every histogram's lines
    assert not ours.record_all(more)
    after = generate(registry)[0]
    assert after != before
    assert parsed(after.decode(), False) == parsed(prometheus_client.generate_latest(theirs.registry).decode(), False)


def test_the_rest_of_the_registry_is_served_with_ours_once() -> None:
    registry = recorded(True)
    Counter("app_orders", "The application's own counter.", registry=registry).inc(3)
    for accept, parse in ((None, text_string_to_metric_families), (OPENMETRICS, openmetrics_families)):
        text = generate(registry, accept)[0].decode()
        names = [f.name for f in parse(text)]
        assert names.count("app_orders") == 1 and len(names) == len(set(names))
        assert c.STREAMS.prometheus_name.removesuffix("_total") in names
    assert registry.get_sample_value("app_orders_total") == 3.0
    values = dict.fromkeys(c.STREAMS.attributes, "x")
    assert registry.get_sample_value(c.STREAMS.prometheus_name, {c.prometheus_label(k): v for k, v in values.items()}
                                     ) is None  # and ours answer it too (the first model's values are not "x")
    first = measurements()[[i for i, _v, _x in measurements()].index(c.STREAMS)]
    labels = dict(zip(c.STREAMS.prometheus_labels, first[1]))
    assert registry.get_sample_value(c.STREAMS.prometheus_name, labels) == 2.0


def test_the_endpoint_serves_natively_with_gzip_and_restricted_scrapes_through_prometheus_client() -> None:
    registry = recorded(True)
    with bedrock_otel.start_metrics_server(port=0, registry=registry) as server:
        plain = urllib.request.urlopen(server.url, timeout=10).read()
        assert plain == generate(registry)[0]
        request = urllib.request.Request(server.url, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(response.read()) == plain
        family = c.USAGE_TOKENS.prometheus_name
        restricted = urllib.request.urlopen(f"{server.url}?name[]={family}", timeout=10).read().decode()
        assert {f.name for f in text_string_to_metric_families(restricted)} == {family.removesuffix("_total")}


def test_a_measurement_that_cannot_be_taken_is_reported_and_the_rest_of_the_batch_is() -> None:
    recorder = PrometheusRecorder(CollectorRegistry())
    key = ("anthropic", sc.PLATFORM_FIRST_PARTY, "m", "", "", sc.API_MESSAGES)
    failed = recorder.record_all([(c.STREAMS, (*key, sc.OUTCOME_COMPLETED), 1),
                                  (c.STREAMS, key, 1),  # a label short
                                  (c.OPERATION_DURATION, (*key, sc.OPERATION_CHAT, ""), "soon"),
                                  (c.STREAMS, (*key, sc.OUTCOME_ERROR), -1),  # counters do not go down
                                  (c.STREAMS, (*key, sc.OUTCOME_COMPLETED), 1)])
    assert failed == [c.STREAMS, c.OPERATION_DURATION, c.STREAMS]
    labels = dict(zip(c.STREAMS.prometheus_labels, (*key, sc.OUTCOME_COMPLETED)))
    assert recorder.registry.get_sample_value(c.STREAMS.prometheus_name, labels) == 2.0
    with pytest.raises(ValueError, match=r"anthropic\.streams"):
        recorder.record(c.STREAMS, key, 1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_child_records_even_if_a_parent_thread_held_the_lock_at_fork() -> None:
    recorder = PrometheusRecorder(CollectorRegistry())
    key = ("anthropic", sc.PLATFORM_FIRST_PARTY, "m", "", "", sc.API_MESSAGES, sc.OUTCOME_COMPLETED)
    assert recorder.native is not None
    with recorder.native._lock:  # a stream ending in another thread at the moment of fork
        pid = os.fork()
        if pid == 0:  # the child: what the after-fork hook does, then a stream's end
            code = 1
            try:
                recorder.forget()
                recorder.record(c.STREAMS, key, 1)
                labels = dict(zip(c.STREAMS.prometheus_labels, key))
                code = 0 if recorder.registry.get_sample_value(c.STREAMS.prometheus_name, labels) == 1.0 else 2
            finally:
                os._exit(code)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung on the lock it inherited")


def exemplars_of(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], tuple[dict[str, str], float]]:
    """Each OpenMetrics sample's exemplar: its labels and value (the timestamp: only that it is a number)."""
    found = {}
    for family in openmetrics_families(text):
        for s in family.samples:
            if s.exemplar is not None:
                assert s.exemplar.timestamp is not None and float(s.exemplar.timestamp) > 0
                found[(s.name, tuple(sorted(s.labels.items())))] = (s.exemplar.labels, s.exemplar.value)
    return found


def test_exemplars_are_the_latest_sampled_streams_where_the_catalogue_asks_and_only_in_openmetrics() -> None:
    """Per series (per bucket for a histogram) the trace and span id of the latest batch that carried them; none
    for a batch without (no span, or not sampled), none for completed streams; OpenMetrics only, written as
    prometheus_client writes exemplars and read back by its parser."""
    registry = CollectorRegistry()
    recorder = PrometheusRecorder(registry, native=True)
    key = ("aws.bedrock", "bedrock", "global.anthropic.claude-opus-4-7", "us-east-1", "global", "create")
    first, latest = ("1" * 32, "a" * 16), ("2" * 32, "b" * 16)

    def stream(outcome: str, duration: float) -> list[tuple[c.Instrument, tuple[str, ...], Any]]:
        if outcome == sc.OUTCOME_COMPLETED:
            return [(c.STREAMS, (*key, outcome), 1), (c.OPERATION_DURATION, (*key, "chat", ""), duration)]
        return [(c.STREAMS, (*key, outcome), 1), (c.ERROR_FRAMES, (*key, "rate_limit_error", "error_event"), 1),
                (c.STREAM_EVENTS, (*key, "message_start"), 1),
                (c.OPERATION_DURATION, (*key, "chat", "rate_limit_error"), duration)]

    assert not recorder.record_all(stream(sc.OUTCOME_ERROR, 0.03), first)
    assert not recorder.record_all(stream(sc.OUTCOME_ERROR, 3.0), latest)  # another bucket, the same counters
    assert not recorder.record_all(stream(sc.OUTCOME_ERROR, 3.1))  # no sampled span: nothing replaced
    assert not recorder.record_all(stream(sc.OUTCOME_COMPLETED, 0.5), latest)

    text = generate(registry, OPENMETRICS)[0].decode()
    got = exemplars_of(text)
    ids = {"trace_id": latest[0], "span_id": latest[1]}
    def sample(instrument: c.Instrument, *values: str, le: str | None = None) -> tuple[str, Any]:
        labels = dict(zip(instrument.prometheus_labels, (*key, *values)), **({"le": le} if le else {}))
        return instrument.prometheus_name + ("_bucket" if le else ""), tuple(sorted(labels.items()))

    assert got == {
        sample(c.STREAMS, sc.OUTCOME_ERROR): (ids, 1.0),  # the completed series has none
        sample(c.ERROR_FRAMES, "rate_limit_error", "error_event"): (ids, 1.0),
        sample(c.OPERATION_DURATION, "chat", "rate_limit_error", le="0.04"): (
            {"trace_id": first[0], "span_id": first[1]}, 0.03),
        sample(c.OPERATION_DURATION, "chat", "rate_limit_error", le="5.12"): (ids, 3.0),
        sample(c.OPERATION_DURATION, "chat", "", le="0.64"): (ids, 0.5),
    }
    # prometheus_client writes the same exemplars from the registry's objects (what any other reader gets)
    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

    assert exemplars_of(openmetrics_latest(registry).decode()) == got
    assert " # {" not in generate(registry)[0].decode()  # the text format has no exemplars
    text_again = generate(registry, OPENMETRICS)[0].decode()  # kept histogram lines: the same, per format
    assert text_again == text and " # {" not in generate(registry)[0].decode()
