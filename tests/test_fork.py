"""Pre-fork servers with OTLP: workers forked from an instrumented parent (gunicorn with preload) report their own
streams under their own service.instance.id, never the parent's, over re-opened exporters.

The parent streams, leaves one stream open, forks two workers that stream 1 and 2 times and exit normally (the
OpenTelemetry SDK flushes at exit), then finishes its open stream and one more. Nothing is exported on a timer, so
what each process sends is its final state. prometheus_client multiprocess mode under fork is covered in
test_exporters.py.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from procs import run_python

import bedrock_otel
from bedrock_otel import semconv as sc
from bedrock_otel.observe import live
from bedrock_otel.telemetry import catalog as c
from bedrock_otel.testing.capture import CapturedTelemetry
from bedrock_otel.testing.otlp import OtlpReceiver, attributes_of
from bedrock_otel.testing.workload import make_client, request_for

pytestmark = pytest.mark.sdk_independent  # see noxfile.py: the two ends of the Python range, and the floors

PREFORK_APP = """
import gc, json, os, sys
import bedrock_otel.auto
import bedrock_otel
from bedrock_otel.testing import LoopbackServer
from bedrock_otel.testing.workload import consume, make_client, request_for

server = LoopbackServer().start()  # serves the workers too: its threads live on in this process


def streams(n):
    client = make_client(server, "bedrock", "sync")
    for _ in range(n):
        consume(client, "bedrock", "create", "normal")


def report(who):  # what this process's own /metrics (a WSGI mount, say) would show, and its server handle
    from prometheus_client import REGISTRY

    total = sum(s.value for m in REGISTRY.collect() for s in m.samples if s.name == STREAMS_TOTAL)
    with open(os.path.join(REPORTS, f"{who}.json"), "w") as file:  # a file each: no shared stdout to interleave
        json.dump([who, total, bedrock_otel.metrics_server() is not None], file)


streams(3)
open_stream = make_client(server, "bedrock", "sync").messages.create(stream=True, **request_for("bedrock", "normal"))
next(iter(open_stream))  # in flight at fork: the parent's, not the workers'
workers = []
for n in WORKER_STREAMS:
    pid = os.fork()
    if pid == 0:  # a worker: the parent's open stream is dropped here, as a worker would never touch it
        del open_stream
        gc.collect()
        streams(n)
        report(n)
        if n == WORKER_STREAMS[-1]:
            bedrock_otel.uninstrument()  # must not hang on the parent's /metrics server, which is not ours here
        sys.exit(0)  # exit like a worker: the OpenTelemetry SDK's exit hook flushes this process's pipelines
    workers.append(pid)
for pid in workers:
    assert os.waitpid(pid, 0)[1] == 0, "a worker failed"
for _ in open_stream:
    pass
streams(1)
server.stop()
report("parent")
"""

WORKER_STREAMS = (1, 2)
PARENT_STREAMS = 3 + 1 + 1  # before the fork, the one open across it, one after


def _latest_by_instance(receiver: OtlpReceiver, name: str) -> dict[str, Any]:
    """service.instance.id -> the last export of metric `name` from that process (cumulative: its totals)."""
    latest = {}
    for resource, _scope, metric in receiver.metrics():
        if metric.name == name:
            latest[resource["service.instance.id"]] = metric
    return latest


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_forked_workers_report_only_their_own_streams(protocol: str, tmp_path: Path) -> None:
    with OtlpReceiver() as receiver:
        endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint
        code = PREFORK_APP.replace("WORKER_STREAMS", repr(WORKER_STREAMS))
        code = code.replace("STREAMS_TOTAL", repr(c.STREAMS.prometheus_name)).replace("REPORTS", repr(str(tmp_path)))
        out = run_python(code, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
                         OTEL_METRIC_EXPORT_INTERVAL="600000", OTEL_BSP_SCHEDULE_DELAY="600000",
                         BEDROCK_OTEL_PROMETHEUS_PORT="0", timeout=60)
        # the in-process prometheus_client registry (no multiprocess mode) counts each process's own streams;
        # the /metrics server stays the parent's
        reports = sorted((json.loads(path.read_text()) for path in tmp_path.glob("*.json")), key=str)
        assert reports == sorted([[n, n, False] for n in WORKER_STREAMS] + [["parent", PARENT_STREAMS, True]],
                                 key=str), out
        expected = sorted([PARENT_STREAMS, *WORKER_STREAMS])
        assert receiver.wait_for(lambda: len(_latest_by_instance(receiver, c.STREAMS.name)) >= len(expected))

        # one service.instance.id per process, each with its own streams only (none of the parent's)
        streams = _latest_by_instance(receiver, c.STREAMS.name)
        outcomes = {instance: Counter({attributes_of(p.attributes)[sc.OUTCOME]: p.as_int
                                       for p in metric.sum.data_points}) for instance, metric in streams.items()}
        assert sorted(outcomes.values(), key=lambda o: o["completed"]) == [
            Counter(completed=n) for n in expected]
        durations = _latest_by_instance(receiver, c.OPERATION_DURATION.name)
        assert {i: sum(p.count for p in m.histogram.data_points) for i, m in durations.items()} == {
            i: o["completed"] for i, o in outcomes.items()}
        active = _latest_by_instance(receiver, c.STREAMS_ACTIVE.name)
        assert {i: sum(p.as_int for p in m.sum.data_points) for i, m in active.items()} == dict.fromkeys(outcomes, 0)
        errors = _latest_by_instance(receiver, c.INTERNAL_ERRORS.name)
        assert {i: sum(p.as_int for p in m.sum.data_points) for i, m in errors.items()} == dict.fromkeys(outcomes, 0)

        # every stream's span exported once, by the process that ran the stream
        spans = [(resource["service.instance.id"], span) for resource, span in receiver.spans()
                 if span.name.startswith("chat")]
        assert len({span.span_id for _, span in spans}) == len(spans) == sum(expected)
        per_instance: dict[str, int] = defaultdict(int)
        for instance, _span in spans:
            per_instance[instance] += 1
        assert per_instance == {i: o["completed"] for i, o in outcomes.items()}


def test_a_failing_reset_step_is_counted_and_the_others_still_run(bedrock_otel_server: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise RuntimeError("bug in bedrock_otel")

    monkeypatch.setattr(live, "disown_inherited_streams", broken)  # the second of five steps
    with CapturedTelemetry(prometheus_port=0) as t:
        client = make_client(bedrock_otel_server, "bedrock", "sync")
        open_stream = client.messages.create(stream=True, **request_for("bedrock", "normal"))
        next(iter(open_stream))
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what its registry holds, and leave without running pytest's exit
            try:
                found = [t.value(c.INTERNAL_ERRORS.prometheus_name, bedrock_otel_component="runtime.fork"),
                         t.value(c.STREAMS_ACTIVE.prometheus_name), bedrock_otel.metrics_server() is None]
                os.write(write_end, json.dumps(found).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            found = json.loads(pipe.read())
        os.waitpid(pid, 0)
        for _ in open_stream:
            pass
    # the failure counted; the steps before and after it ran: the parent's open stream forgotten, its server let go
    assert found == [1, 0, True]
