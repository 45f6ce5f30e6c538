"""Exporters over real sockets: the /metrics endpoint (and promtool's lint), prometheus_client multiprocess mode
with forked workers, WSGI/ASGI mounts, and OTLP over gRPC and HTTP to a real receiver on loopback."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import textwrap
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import as_prometheus_samples, prometheus_samples, same_numbers
from driver import drive
from procs import TESTS, prometheus_tool, run_python
from prometheus_client.parser import text_string_to_metric_families

import bedrock_otel
from bedrock_otel import ConfigError
from bedrock_otel import semconv as sc
from bedrock_otel.config import Settings
from bedrock_otel.exporters import otlp
from bedrock_otel.telemetry import catalog as c
from bedrock_otel.testing import scenarios
from bedrock_otel.testing.capture import CapturedTelemetry
from bedrock_otel.testing.otlp import OtlpReceiver, attributes_of

pytestmark = pytest.mark.sdk_independent  # see noxfile.py: the two ends of the Python range, and the floors

EXAMPLES = TESTS.parent / "examples"


def scrape(url: str, accept: str | None = None) -> tuple[str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["Content-Type"], response.read().decode()


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples if s.name == name}


def non_loopback_address() -> str | None:
    """An address of this machine other than 127.0.0.1 (the one a default route would use), if any."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent for a UDP connect
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


# -- the /metrics endpoint ------------------------------------------------------------------------------------


def test_endpoint_serves_the_metrics_as_text_and_openmetrics(bedrock_otel_server: Any) -> None:
    with CapturedTelemetry(prometheus_port=0) as t:
        drive(bedrock_otel_server, "bedrock", "sync", "create", "error_first")
        server = bedrock_otel.metrics_server()
        assert server is not None and server.addr == "127.0.0.1"
        content_type, text = scrape(server.url)
        assert content_type.startswith("text/plain; version=0.0.4")
        frames = samples(text, c.ERROR_FRAMES.prometheus_name)
        key = (("anthropic_platform", "bedrock"), ("anthropic_stream_api", "messages"),
               ("anthropic_stream_error_source", "event"),
               ("aws_bedrock_inference_profile", "global"),
               ("cloud_region", "us-east-1"), ("error_type", "rate_limit_error"),
               ("gen_ai_provider_name", "aws.bedrock"), ("gen_ai_request_model", scenarios.BEDROCK_MODEL))
        assert frames == {key: 1.0}
        assert text == t.exposition()  # the endpoint serves exactly the registry the recorder writes

        content_type, text = scrape(server.url, accept="application/openmetrics-text; version=1.0.0")
        assert content_type.startswith("application/openmetrics-text") and text.rstrip().endswith("# EOF")

        with pytest.raises(urllib.error.HTTPError) as missing:
            scrape(server.url.replace("/metrics", "/admin"))
        assert missing.value.code == 404
        port = server.port
    assert bedrock_otel.metrics_server() is None  # uninstrument stopped it and freed the port
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_endpoint_binds_loopback_only_unless_told_otherwise() -> None:
    import inspect

    assert inspect.signature(bedrock_otel.start_metrics_server).parameters["addr"].default == "127.0.0.1"
    assert Settings().prometheus_addr == "127.0.0.1"
    other = non_loopback_address()
    with bedrock_otel.start_metrics_server(port=0) as server:
        assert scrape(server.url)[1]
        if other is not None:
            with pytest.raises(OSError):
                socket.create_connection((other, server.port), timeout=2).close()
    if other is not None:
        with bedrock_otel.start_metrics_server(port=0, addr="0.0.0.0") as everywhere:
            assert scrape(f"http://{other}:{everywhere.port}/metrics")[1]


def test_bad_endpoint_settings_fail_with_the_setting_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"prometheus_addr.*IP address"):
        bedrock_otel.start_metrics_server(port=0, addr="not an address!")
    with pytest.raises(ConfigError, match=r"prometheus_port.*0-65535"):
        bedrock_otel.start_metrics_server(port=70000)
    monkeypatch.setenv("BEDROCK_OTEL_PROMETHEUS_PORT", "http")
    with pytest.raises(ConfigError, match=r"BEDROCK_OTEL_PROMETHEUS_PORT.*0-65535"):
        bedrock_otel.instrument()
    monkeypatch.delenv("BEDROCK_OTEL_PROMETHEUS_PORT")
    with pytest.raises(ConfigError, match=r"BEDROCK_OTEL_METRICS.*prometheus"):
        bedrock_otel.instrument(prometheus_port=0, metrics="otel")
    with pytest.raises(ConfigError, match=r"BEDROCK_OTEL_METRICS.*otel"):
        bedrock_otel.instrument(metrics_exporter="otlp", metrics="prometheus")
    assert not bedrock_otel.is_instrumented()


def test_a_busy_port_is_logged_and_the_application_carries_on(caplog: pytest.LogCaptureFixture,
                                                              bedrock_otel_server: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with caplog.at_level(logging.ERROR, logger="bedrock_otel"), \
                CapturedTelemetry(prometheus_port=taken.getsockname()[1]) as t:
            drive(bedrock_otel_server, "first_party", "sync", "create", "normal")
            assert t.value(c.STREAMS.prometheus_name) == 1  # still instrumented and recording
            assert bedrock_otel.metrics_server() is None
    assert "BEDROCK_OTEL_PROMETHEUS_PORT" in caplog.text


@pytest.mark.parametrize("example", ["flask_metrics.py", "starlette_metrics.py"])
def test_documented_web_app_mounts_serve_the_metrics(example: str) -> None:
    code = textwrap.dedent(f"""
        import runpy
        app = runpy.run_path({str(EXAMPLES / example)!r})["app"]
        from bedrock_otel.testing import LoopbackServer
        from bedrock_otel.testing.workload import consume, make_client
        with LoopbackServer() as server:
            consume(make_client(server, "bedrock", "sync"), "bedrock", "create", "error_first")
        if {example!r}.startswith("flask"):
            response = app.test_client().get("/metrics")
            print(response.status_code, response.get_data(as_text=True))
        else:
            from starlette.testclient import TestClient
            response = TestClient(app).get("/metrics")
            print(response.status_code, response.text)
    """)
    out = run_python(code)
    assert out.startswith("200 ")
    assert samples(out[4:], c.RATE_LIMIT_HITS.prometheus_name)  # the in-band rate limit, served by the mount


def test_promtool_finds_nothing_to_lint_in_a_real_scrape(bedrock_otel_server: Any) -> None:
    promtool = prometheus_tool("promtool")
    with CapturedTelemetry(prometheus_port=0):
        for scenario in scenarios.ALL:
            for provider in ("first_party", "bedrock"):
                drive(bedrock_otel_server, provider, "sync", "create", scenario)
        server = bedrock_otel.metrics_server()
        assert server is not None
        text = scrape(server.url)[1]
    families = {f.name for f in text_string_to_metric_families(text)}
    assert {i.prometheus_name.removesuffix("_total") for i in c.CATALOG} - families <= {
        c.MALFORMED_EVENTS.prometheus_name.removesuffix("_total"),  # only SDKs that masquerade produce these
        c.INTERNAL_ERRORS.prometheus_name.removesuffix("_total"),
    }
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


# -- pre-fork servers: prometheus_client multiprocess mode ------------------------------------------------------

FORKED_WORKERS = """
import json, os, sys, types, urllib.request
import bedrock_otel
from bedrock_otel.exporters.prometheus import child_exit
from bedrock_otel.testing import LoopbackServer
from bedrock_otel.testing.workload import consume, make_client, request_for

WORKERS, SCENARIOS = int(sys.argv[1]), ("normal", "error_first", "http_429_then_ok")
bedrock_otel.instrument(metrics="prometheus", traces=False, prometheus_port=0)  # the master, gunicorn style

def scrape():
    return urllib.request.urlopen(bedrock_otel.metrics_server().url).read().decode()

with LoopbackServer() as server:
    pids = []
    for worker in range(WORKERS):
        pid = os.fork()
        if pid == 0:
            try:
                clients = {p: make_client(server, p, "sync") for p in ("first_party", "bedrock")}
                for i in range(6):  # each (provider, scenario) once
                    provider = ("first_party", "bedrock")[i % 2]
                    consume(clients[provider], provider, "create", SCENARIOS[i % 3], f"w{worker}-{i}")
                if worker == 0:  # a worker dies with a stream open: its live gauge must leave with it
                    stream = clients["bedrock"].messages.create(stream=True, **request_for("bedrock", "normal"))
                    next(iter(stream))
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    before = scrape()
    for pid in pids:
        child_exit(None, types.SimpleNamespace(pid=pid))  # what gunicorn calls when a worker exits
    print(json.dumps({"before": before, "after": scrape()}))
"""


def test_forked_workers_are_summed_exactly_in_one_scrape(tmp_path: Path) -> None:
    workers = 4
    out = json.loads(run_python(FORKED_WORKERS.replace("sys.argv[1]", str(workers)),
                                PROMETHEUS_MULTIPROC_DIR=str(tmp_path)))
    before, after = out["before"], out["after"]

    def total(text: str, instrument: c.Instrument, **match: str) -> float:
        return sum(v for labels, v in samples(text, instrument.prometheus_name).items()
                   if all(dict(labels).get(k) == val for k, val in match.items()))

    for provider in (sc.PROVIDER_ANTHROPIC, sc.PROVIDER_BEDROCK):
        p = {"gen_ai_provider_name": provider}
        assert total(after, c.STREAMS, anthropic_stream_outcome="completed", **p) == 2 * workers
        assert total(after, c.STREAMS, anthropic_stream_outcome="error", **p) == workers
        assert total(after, c.ERROR_FRAMES, error_type="rate_limit_error", **p) == workers
        assert total(after, c.RATE_LIMIT_HITS, anthropic_rate_limit_source="http_429", **p) == workers
        assert total(after, c.RATE_LIMIT_HITS, anthropic_rate_limit_source="error_event", **p) == workers
        assert total(after, c.HTTP_RESPONSES, http_response_status_code="429", **p) == workers
        assert total(after, c.STREAM_EVENTS, anthropic_stream_event_type="message_stop", **p) == 2 * workers
    # the open stream's 200 was counted by its worker; the stream itself never ended
    assert total(after, c.HTTP_RESPONSES, http_response_status_code="200",
                 gen_ai_provider_name=sc.PROVIDER_BEDROCK) == 3 * workers + 1
    # livesum: the dead worker's open stream shows until gunicorn's child_exit hook, then leaves the sum
    assert total(before, c.STREAMS_ACTIVE, gen_ai_provider_name=sc.PROVIDER_BEDROCK) == 1
    assert total(after, c.STREAMS_ACTIVE) == 0
    # mostrecent: one value across workers (the last header seen), not a sum or one series per process
    remaining = samples(after, c.RATE_LIMIT_REMAINING.prometheus_name)
    requests = {k: v for k, v in remaining.items() if ("anthropic_rate_limit_resource", "requests") in k}
    assert list(requests.values()) == [float(scenarios.RATE_LIMIT_HEADERS["anthropic-ratelimit-requests-remaining"])]
    histogram_count = c.OPERATION_DURATION.prometheus_name + "_count"
    assert sum(samples(after, histogram_count).values()) == 6 * workers


# -- OTLP -----------------------------------------------------------------------------------------------------

OTLP_CHILD = """
import sys
if sys.argv[1] == "kwargs":
    import bedrock_otel
    bedrock_otel.instrument(otlp_endpoint=sys.argv[2], otlp_protocol=sys.argv[3], service_name="from-kwargs",
                            retry=True)
else:
    import bedrock_otel.auto
from bedrock_otel.testing import LoopbackServer
from bedrock_otel.testing.workload import consume, make_client
with LoopbackServer() as server:
    for provider in ("first_party", "bedrock"):
        for scenario in ("rate_limited_then_ok", "should_not_retry"):  # recovered, exhausted: every instrument
            consume(make_client(server, provider, "sync"), provider, "create", scenario, f"{provider}-{scenario}")
from prometheus_client import REGISTRY, generate_latest
print(generate_latest(REGISTRY).decode())  # the Prometheus store's numbers, for the receiver's to match
print("done")  # and exit normally: the SDK's shutdown at exit must flush the last spans and metrics
"""

PRESSURE_FAMILIES = (c.PRESSURE_RATE, c.PRESSURE_WAIT, c.PRESSURE_REFUSED)

# nothing is exported on a timer during the run, so what arrives was flushed at exit
NO_TIMERS = {"OTEL_METRIC_EXPORT_INTERVAL": "600000", "OTEL_BSP_SCHEDULE_DELAY": "600000"}

EXEMPLAR_CHILD = """
import sys
import bedrock_otel
bedrock_otel.instrument(prometheus_port=0, otlp_endpoint=sys.argv[1], otlp_protocol="grpc")
from bedrock_otel.testing import LoopbackServer, workload
print(bedrock_otel.metrics_server().url, flush=True)
faults = {"throttled_always": 0.25, "rate_limited_then_ok": 0.25, "error_mid": 0.25}
with LoopbackServer(first_event_delay=0.002) as server:
    workload.run(server, workload.plan(40, faults, seed=21, clients=("first_party", "bedrock"), apis=("create",)))
print("ran", flush=True)
sys.stdin.readline()  # until the test has scraped; the exit flushes the spans
"""


def test_exemplars_scraped_by_prometheus_lead_to_the_failing_streams_traces() -> None:
    """A faulty workload exports its spans and metrics over OTLP and serves /metrics; the real Prometheus, exemplar
    storage on, scrapes it (OpenMetrics). Every exemplar of the rate-limit, error-frame, outcome and duration series
    is the trace of a span the receiver got, of a stream that had that error; ids only. The OTLP metrics carry the
    same links."""
    import sys

    from procs import child_env, popen

    from bedrock_otel.testing.prometheus import PrometheusServer, host_port

    prometheus_tool("prometheus")
    with OtlpReceiver() as receiver, popen([sys.executable, "-c", EXEMPLAR_CHILD, receiver.grpc_endpoint],
                                           stdin=subprocess.PIPE, env=child_env(**NO_TIMERS)) as child:
        url = child.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:"), url + child.stderr.read()  # type: ignore[union-attr]
        with PrometheusServer([host_port(url)], features=["exemplar-storage"]) as prometheus:
            assert child.stdout.readline().strip() == "ran"  # type: ignore[union-attr]
            prometheus.wait_for_scrapes(2)
            found = {name: prometheus.api("query_exemplars", query=name, start="0", end="9999999999")
                     for name in ("anthropic_rate_limit_hits_total", "anthropic_stream_error_frames_total",
                                  "anthropic_streams_total", "gen_ai_client_operation_duration_seconds_bucket")}
        child.communicate("\n", timeout=60)
        assert child.returncode == 0
        assert receiver.wait_for(lambda: sum(s.name.startswith("chat") for _, s in receiver.spans()) == 40)
        assert receiver.wait_for(lambda: receiver.latest_metric(c.ERROR_FRAMES.name) is not None)
        over_otlp = {name: [(attributes_of(point.attributes), exemplar) for point in
                            getattr(receiver.latest_metric(name), kind).data_points for exemplar in point.exemplars]
                     for name, kind in ((c.ERROR_FRAMES.name, "sum"), (c.OPERATION_DURATION.name, "histogram"))}
    spans = {span.trace_id.hex(): attributes_of(span.attributes) for _, span in receiver.spans()
             if span.name.startswith("chat")}
    for name, exemplars in over_otlp.items():  # the same links over OTLP, to traces the receiver got
        assert exemplars, f"no exemplars on {name} over OTLP"
        for attributes, exemplar in exemplars:
            span = spans[exemplar.trace_id.hex()]
            assert span[sc.REQUEST_MODEL] == attributes[sc.REQUEST_MODEL] and len(exemplar.span_id) == 8
            assert attributes.get(sc.ERROR_TYPE) in (None, span.get(sc.ERROR_TYPE))
    for name, series in found.items():
        assert series, f"no exemplars for {name}"
        for one in series:
            labels = one["seriesLabels"]
            for exemplar in one["exemplars"]:
                assert set(exemplar["labels"]) == {"trace_id", "span_id"}  # ids, never text
                span = spans[exemplar["labels"]["trace_id"]]  # a trace the receiver got
                assert span[sc.REQUEST_MODEL] == labels["gen_ai_request_model"]
                if name != "gen_ai_client_operation_duration_seconds_bucket":
                    assert span[sc.OUTCOME] == "error" and labels.get("anthropic_stream_outcome") != "completed"
                if labels.get("error_type"):
                    assert span[sc.ERROR_TYPE] == labels["error_type"], (name, labels, span)
                if "le" in labels:  # on the bucket its value fell in
                    bounds = [0.0, *c.OPERATION_DURATION.buckets, float("inf")]  # type: ignore[misc]
                    upper = float(labels["le"])
                    assert bounds[bounds.index(upper) - 1] < float(exemplar["value"]) <= upper



@pytest.mark.parametrize(("configured_by", "protocol"),
                         [("env", "grpc"), ("env", "http/protobuf"), ("kwargs", "grpc"), ("kwargs", "http/protobuf")])
def test_otlp_delivers_the_contract_to_a_real_receiver(configured_by: str, protocol: str) -> None:
    with OtlpReceiver() as receiver:
        endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint
        if configured_by == "env":
            env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                   "OTEL_SERVICE_NAME": "from-env", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
                   "BEDROCK_OTEL_RETRY": "1"}
            args = ""
        else:
            env, args = {}, f"{endpoint} {protocol}"
        code = OTLP_CHILD.replace("sys.argv[1]", repr(configured_by))
        code = code.replace("sys.argv[2]", repr(endpoint)).replace("sys.argv[3]", repr(protocol))
        out = run_python(code, **NO_TIMERS, **env).strip()
        assert out.endswith("done"), args
        assert receiver.wait_for(lambda: bool(receiver.metric_requests and receiver.trace_requests))
        exposition = list(text_string_to_metric_families(out.removesuffix("done")))

        spans = [(resource, span) for resource, span in receiver.spans() if span.name.startswith("chat")]
        assert sorted(span.name for _, span in spans) == sorted(
            [f"chat {scenarios.MODEL}"] * 2 + [f"chat {scenarios.BEDROCK_MODEL}"] * 2)
        resource = spans[0][0]
        assert resource["service.name"] == f"from-{configured_by}" and resource["service.instance.id"]
        if configured_by == "env":
            assert resource["deployment.environment"] == "test"
        outcomes = sorted((attributes_of(s.attributes)[sc.PROVIDER], attributes_of(s.attributes)[sc.OUTCOME],
                           s.status.code) for _, s in spans)
        assert outcomes == [("anthropic", "completed", 0), ("anthropic", "error", 2),
                            ("aws.bedrock", "completed", 0), ("aws.bedrock", "error", 2)]
        assert all(s.kind == 3 for _, s in spans)  # SPAN_KIND_CLIENT

        received = {metric.name: (scope, metric) for _, scope, metric in receiver.metrics()}
        expected = {i.name for i in c.CATALOG} - {c.MALFORMED_EVENTS.name, c.INTERNAL_ERRORS.name, c.RETRY_AFTER.name}
        expected -= {i.name for i in PRESSURE_FAMILIES}  # pressure mode's (off here): tests/test_pressure.py
        assert expected <= set(received)
        for instrument in c.CATALOG:
            if instrument.name not in received:
                continue
            scope, metric = received[instrument.name]
            assert (scope, metric.unit, metric.description) == ("bedrock_otel", instrument.unit,
                                                                instrument.description)
            if instrument.kind is c.Kind.HISTOGRAM:
                for point in metric.histogram.data_points:
                    assert list(point.explicit_bounds) == list(instrument.buckets or ())
                    assert set(attributes_of(point.attributes)) <= set(instrument.attributes)
        streams = receiver.latest_metric(c.STREAMS.name)
        assert streams.sum.is_monotonic
        by_outcome = {(attributes_of(p.attributes)[sc.PROVIDER], attributes_of(p.attributes)[sc.OUTCOME]): p.as_int
                      for p in streams.sum.data_points}
        assert by_outcome == {("anthropic", "completed"): 1, ("anthropic", "error"): 1,
                              ("aws.bedrock", "completed"): 1, ("aws.bedrock", "error"): 1}
        frames = receiver.latest_metric(c.ERROR_FRAMES.name).sum.data_points
        assert sorted(attributes_of(p.attributes)[sc.ERROR_TYPE] for p in frames) == ["rate_limit_error"] * 2
        duration = receiver.latest_metric(c.OPERATION_DURATION.name).histogram.data_points
        assert sum(p.count for p in duration) == 4
        for instrument in c.CATALOG:  # every number as the Prometheus store holds it, bucket by bucket
            metric = receiver.latest_metric(instrument.name)
            points = getattr(metric, metric.WhichOneof("data")).data_points if metric is not None else []
            same_numbers(prometheus_samples(exposition, instrument), as_prometheus_samples(instrument, points))


APP_PROVIDERS_CHILD = """
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(tracer_provider)
meter_provider = MeterProvider(metric_readers=[reader])
metrics.set_meter_provider(meter_provider)

import bedrock_otel.auto  # OTEL_EXPORTER_OTLP_ENDPOINT is set, but the application's providers win
from bedrock_otel.testing import LoopbackServer
from bedrock_otel.testing.workload import consume, make_client

with LoopbackServer() as server:
    consume(make_client(server, "bedrock", "sync"), "bedrock", "create", "normal")
assert trace.get_tracer_provider() is tracer_provider and metrics.get_meter_provider() is meter_provider
names = [m.name for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
print([s.name for s in spans.get_finished_spans() if s.name.startswith("chat")], "anthropic.streams" in names)
"""


def test_the_applications_global_providers_are_used_not_replaced() -> None:
    with OtlpReceiver() as receiver:
        out = run_python(APP_PROVIDERS_CHILD, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint)
        assert out.strip() == f"['chat {scenarios.BEDROCK_MODEL}'] True"
        assert not receiver.wait_for(lambda: bool(receiver.trace_requests or receiver.metric_requests), timeout=1)


@pytest.mark.parametrize(("environ", "settings", "traces", "metrics", "endpoint"), [
    ({}, {}, (), (), None),  # nothing asked for: nothing exported
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, {"otlp_endpoint": "http://c:4317"}, ("otlp",), ("otlp",),
     "http://c:4317"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4318/v1/traces"}, {"otlp_protocol": "http/protobuf"},
     ("otlp",), (), None),  # a per-signal endpoint: the exporter reads it itself
    ({}, {"otlp_endpoint": "http://c:4318/", "otlp_protocol": "http/protobuf", "metrics_exporter": "console"},
     ("otlp",), ("console",), "http://c:4318/v1/traces"),
    ({}, {"otlp_endpoint": "http://c:4317", "traces_exporter": "none", "metrics_exporter": "prometheus"}, (), (),
     None),
])
def test_which_exporters_and_endpoints_each_signal_gets(environ: dict[str, str], settings: dict[str, Any],
                                                        traces: tuple[str, ...], metrics: tuple[str, ...],
                                                        endpoint: str | None) -> None:
    loaded = Settings.load(settings, environ={})
    assert otlp.exporters_for(otlp.TRACES, loaded, environ) == traces
    assert otlp.exporters_for(otlp.METRICS, loaded, environ) == metrics
    if traces:
        protocol = otlp.protocol_for(otlp.TRACES, loaded, environ)
        assert otlp.endpoint_for(otlp.TRACES, protocol, loaded, environ) == endpoint


def test_per_signal_protocol_is_validated_by_name() -> None:
    with pytest.raises(ConfigError, match=r"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL.*grpc, http/protobuf"):
        otlp.protocol_for(otlp.METRICS, Settings(), {"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/json"})
    assert otlp.protocol_for(otlp.METRICS, Settings(), {"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf"}) \
        == "http/protobuf"
