"""The `bedrock-otel` command, run as users run it: `run` a program that knows nothing of bedrock_otel, the
`demo` end to end (its summary equals a scrape of its endpoint and the planned workload), and `doctor`."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from driver import FIXED_BEDROCK_DECODER
from procs import child_env, popen
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from bedrock_otel import semconv as sc
from bedrock_otel.cli import summary
from bedrock_otel.config import SETTINGS
from bedrock_otel.telemetry import catalog as c
from bedrock_otel.testing import scenarios, workload
from bedrock_otel.testing.expectations import expected, expected_boto3
from bedrock_otel.testing.otlp import OtlpReceiver, attributes_of
from bedrock_otel.testing.prometheus import free_port

CLI = str(Path(sys.executable).with_name("bedrock-otel"))
# Whole programs in subprocesses, whose dependence on the SDK the oldest and newest tell (noxfile.py): the doctor's
# probe of the SDK's error-frame handling, which changed at 0.110, runs on every version
SDK_ENDS = pytest.mark.sdk_ends


def cli(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout, env=child_env(**env))


# -- options ----------------------------------------------------------------------------------------------------


@SDK_ENDS
@pytest.mark.parametrize("command", ["run", "demo", "doctor", "dashboards"])
def test_every_option_has_help_text(command: str) -> None:
    import argparse

    from bedrock_otel.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    for action in sub._actions:
        assert action.help and action.help.strip(), action.option_strings or action.dest
    result = cli(command, "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: bedrock-otel " + command)
    if command == "run":  # one option per setting, each naming its environment variable
        for setting in SETTINGS:
            assert "--" + setting.name.replace("_", "-") in result.stdout and setting.env in result.stdout


@pytest.mark.parametrize(("args", "env", "named", "accepted"), [
    (["demo", "--streams", "0"], {}, "--streams", "whole number >= 1"),
    (["demo", "--fault", "meteor=0.1"], {}, "--fault", "error_first"),
    (["demo", "--fault", "truncated=2"], {}, "--fault", "share from 0 to 1"),
    (["demo", "--port", "99999"], {}, "--port", "0-65535"),
    (["demo", "--latency", "soon"], {}, "--latency", "seconds from 0 to 60"),
    (["run", "--prometheus-port", "http", "--", "python", "-c", "pass"], {}, "--prometheus-port", "0-65535"),
    (["run", "--otlp-protocol", "json", "--", "python", "-c", "pass"], {}, "--otlp-protocol", "http/protobuf"),
    (["run", "--span-events", "loud", "--", "python", "-c", "pass"], {}, "--span-events", "boundaries"),
    (["run", "--", "python", "-c", "pass"], {"BEDROCK_OTEL_MAX_MODELS": "many"}, "BEDROCK_OTEL_MAX_MODELS",
     "whole number >= 1"),
    (["run", "--", "python", "-c", "pass"], {"OTEL_METRICS_EXPORTER": "statsd"}, "OTEL_METRICS_EXPORTER",
     "otlp, console, prometheus"),
])
@SDK_ENDS
def test_invalid_values_fail_naming_the_option_and_the_accepted_values(args: list[str], env: dict[str, str],
                                                                        named: str, accepted: str) -> None:
    result = cli(*args, **env)
    assert result.returncode == 2, result
    assert named in result.stderr and accepted in result.stderr, result.stderr


@SDK_ENDS
def test_run_without_a_command_or_with_an_unknown_one() -> None:
    assert cli("run").returncode == 2
    result = cli("run", "--", "no-such-program-bedrock-otel")
    assert result.returncode == 127 and "command not found" in result.stderr


# -- run -------------------------------------------------------------------------------------------------------

# A program that has never heard of bedrock_otel: it streams from the URL it is given.
APP = textwrap.dedent("""
    import sys
    import anthropic
    url, wait = sys.argv[1], sys.argv[2] == "wait"
    client = anthropic.AnthropicBedrock(aws_access_key="AKIDTEST", aws_secret_key="secret", aws_region="us-east-1",
                                        base_url=url)
    for scenario in ("normal", "error_first"):
        try:
            for event in client.messages.create(model="global.anthropic.claude-opus-4-7", max_tokens=5, stream=True,
                                                messages=[{"role": "user", "content": "hi"}],
                                                extra_headers={"x-bedrock-otel-scenario": scenario}):
                pass
        except Exception as exc:
            print("app saw", type(exc).__name__)
    print("app done", "bedrock_otel" in sys.modules, flush=True)
    if wait:
        sys.stdin.readline()
    sys.exit(3)
""")


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(APP)
    return path


@SDK_ENDS
def test_run_serves_metrics_of_a_program_that_knows_nothing_of_bedrock_otel(app: Path, tmp_path: Path,
                                                                            bedrock_otel_server: Any) -> None:
    theirs = tmp_path / "theirs"  # an application's own sitecustomize still runs
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text("print('their sitecustomize ran')\n")
    port = free_port()
    with popen([CLI, "run", "--prometheus-port", str(port), "--", sys.executable, str(app), bedrock_otel_server.url,
                "wait"], stdin=subprocess.PIPE, env=child_env(PYTHONPATH=str(theirs))) as child:
        assert child.stdout is not None and child.stdin is not None
        lines = [child.stdout.readline()]
        while lines[-1] and not lines[-1].startswith("app done"):
            lines.append(child.stdout.readline())
        assert lines[-1] == "app done True\n", lines  # the program ran instrumented
        # theirs ran twice: in the (Python) bedrock-otel process, and chained from ours in the program
        assert lines.count("their sitecustomize ran\n") == 2, lines
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.wait(timeout=30) == 3  # the program's own exit status
        assert f"metrics at http://127.0.0.1:{port}/metrics" in child.stderr.read()  # type: ignore[union-attr]
    streams = summary.summarize(text_string_to_metric_families(text))["streams by outcome"]
    assert streams == {"completed": {sc.PLATFORM_BEDROCK: 1.0}, "error": {sc.PLATFORM_BEDROCK: 1.0}}


@SDK_ENDS
def test_run_exports_otlp_and_flushes_at_exit(app: Path, bedrock_otel_server: Any) -> None:
    with OtlpReceiver() as receiver:
        result = cli("run", "--otlp-endpoint", receiver.http_endpoint, "--otlp-protocol", "http/protobuf",
                     "--service-name", "the-app", "--", sys.executable, str(app), bedrock_otel_server.url, "exit",
                     OTEL_METRIC_EXPORT_INTERVAL="600000", OTEL_BSP_SCHEDULE_DELAY="600000")
        assert result.returncode == 3, result.stderr
        assert "metrics at" not in result.stderr  # OTLP was asked for: no endpoint by default then
        assert receiver.wait_for(lambda: bool(receiver.trace_requests and receiver.metric_requests))
    spans = [(resource, s) for resource, s in receiver.spans() if s.name.startswith("chat")]
    assert [s.name for _, s in spans] == [f"chat {scenarios.BEDROCK_MODEL}"] * 2
    assert spans[0][0]["service.name"] == "the-app"
    streams = receiver.latest_metric(c.STREAMS.name).sum.data_points
    assert sorted(attributes_of(p.attributes)[sc.OUTCOME] for p in streams) == ["completed", "error"]


# -- demo ------------------------------------------------------------------------------------------------------

DEMO_FAULTS = {"error_first": 0.15, "error_mid": 0.1, "exception_throttlingException": 0.1,
               "http_429_then_ok": 0.1, "truncated": 0.1}


@SDK_ENDS
def test_demo_summary_equals_its_scraped_metrics_and_the_planned_workload(tmp_path: Path) -> None:
    streams, seed = 80, 7
    report = tmp_path / "summary.json"
    faults = [arg for name, rate in DEMO_FAULTS.items() for arg in ("--fault", f"{name}={rate}")]
    with popen([CLI, "demo", "--streams", str(streams), "--seed", str(seed), "--port", "0", "--latency", "0.005",
                "--json", str(report), "--serve", *faults], env=child_env()) as demo:
        assert demo.stdout is not None
        printed = []
        for line in demo.stdout:
            printed.append(line)
            if "until interrupted" in line:
                break
        url = next(line.split()[1] for line in printed if line.strip().startswith("serving "))
        with urllib.request.urlopen(url, timeout=10) as response:
            scraped = summary.summarize(text_string_to_metric_families(response.read().decode()))
        openmetrics = urllib.request.Request(url, headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        with urllib.request.urlopen(openmetrics, timeout=10) as response:
            scraped_worst = summary.worst_error(openmetrics_families(response.read().decode()))
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=30) == 0, demo.stderr.read()  # type: ignore[union-attr]
    shown = json.loads(report.read_text())
    application = shown.pop("application saw")
    worst = shown.pop("worst error")
    assert shown == json.loads(json.dumps(scraped))  # the summary is exactly what /metrics serves
    # the most frequent in-band error, with the trace id of the latest stream that had it: the exemplar /metrics
    # serves on that series, printed beside the count
    frames_by_type = {row: sum(cells.values()) for row, cells in shown["error frames by error.type (source)"].items()}
    assert frames_by_type[f"{worst['error_type']} ({worst['source']})"] == max(frames_by_type.values())
    assert worst == scraped_worst and re.fullmatch(r"[0-9a-f]{32}", worst["trace_id"])
    assert f"trace_id {worst['trace_id']}" in "".join(printed)

    clients = workload.demo_clients(boto3=True)
    plan = workload.plan(streams, DEMO_FAULTS, seed=seed, clients=clients)
    planned = Counter(p.scenario for p in plan)
    assert planned["error_first"] and planned["truncated"] and {p.provider for p in plan} == set(clients)
    outcomes: Counter[str] = Counter()
    frames: Counter[str] = Counter()
    rate_limits: Counter[str] = Counter()
    http: Counter[str] = Counter()
    pings = 0
    for p in plan:  # what the contract says each planned stream records, through its client
        exp = expected_boto3(p.scenario, p.provider) if p.provider in workload.BOTO3 else expected(p.scenario,
                                                                                                   p.provider)
        outcomes[exp.outcome] += 1
        frames.update({f"{t} ({s})": n for (t, s), n in exp.error_frames.items()})
        rate_limits.update(exp.rate_limits)
        http.update(exp.http)
        pings += exp.events.get("ping", 0)

    def totals(section: str) -> dict[str, float]:
        return {row: sum(cells.values()) for row, cells in shown[section].items()}

    assert totals("streams by outcome") == dict(outcomes)
    assert sum(application.values()) == streams
    assert totals("error frames by error.type (source)") == dict(frames)
    assert totals("rate-limit hits by source") == dict(rate_limits)
    assert totals("HTTP responses by status") == dict(http)
    assert totals("SSE events by type")["ping"] == pings
    columns = {workload.PLATFORM_NAMES[c] for c in clients if c not in workload.BOTO3}
    assert set(shown["streams by outcome"]["completed"]) == {*columns, "boto3 invoke", "boto3 converse"}  # one each
    assert ("bedrock_mantle" in columns) == (workload.platform_client_class("bedrock_mantle") is not None)
    p50, p95 = shown[summary.TTFC]["total"]["p50"], shown[summary.TTFC]["total"]["p95"]
    assert 0 < p50 <= p95
    table = "".join(printed)  # the printed table shows the same numbers
    assert "  rate_limit_error (event)" in table and f"{outcomes['completed']:>16,}" in table
    assert f"  p95{'':<39}" in table


RETRY_FAULTS = {"rate_limited_then_ok": 0.2, "throttled_then_ok": 0.15, "throttled_always": 0.1}


@SDK_ENDS
@pytest.mark.parametrize("retry", [False, True])
def test_demo_with_retry_absorbs_what_fails_once(tmp_path: Path, retry: bool) -> None:
    """The same planned workload with and without --retry: transient in-band errors reach the application only
    without it; with it they are retried, counted, and only the always-throttled streams still fail."""
    streams, seed = 60, 5
    report = tmp_path / "summary.json"
    faults = [arg for name, rate in RETRY_FAULTS.items() for arg in ("--fault", f"{name}={rate}")]
    result = subprocess.run([CLI, "demo", "--streams", str(streams), "--seed", str(seed), "--port", "0",
                             "--latency", "0.005", "--json", str(report), *faults, *(["--retry"] if retry else [])],
                            capture_output=True, text=True, timeout=300, env=child_env())
    assert result.returncode == 0, result.stderr
    shown = json.loads(report.read_text())
    plan = workload.plan(streams, RETRY_FAULTS, seed=seed, clients=workload.demo_clients(boto3=True))
    planned = Counter(p.scenario for p in plan)
    assert all(planned[name] for name in RETRY_FAULTS)
    once = planned["rate_limited_then_ok"] + planned["throttled_then_ok"]
    always = planned["throttled_always"]
    # Converse has no in-band error events: its rate_limit_error is a throttlingException frame
    converse = sum(p.scenario == "rate_limited_then_ok" and p.provider == "boto3_converse" for p in plan)
    # what the client raises once the attempts are spent: the SDK's RateLimitError, botocore's ThrottlingException
    saw = Counter("ok" if p.scenario != "throttled_always" else
                  "ThrottlingException" if p.provider in workload.BOTO3 else "RateLimitError" for p in plan)

    def totals(section: str) -> dict[str, float]:
        return {row: sum(cells.values()) for row, cells in shown[section].items()}

    if not retry:  # the errors reach the application (as a masquerading event on Bedrock before 0.110)
        assert totals("streams by outcome")["error"] == once + always
        assert totals("in-band retries by error.type (result)") == {}
        return
    assert shown["application saw"] == dict(saw)
    assert totals("streams by outcome") == {"completed": streams - always, "error": always}
    assert totals("in-band retries by error.type (result)") == {
        "rate_limit_error (retried)": planned["rate_limited_then_ok"] - converse,
        "throttlingException (retried)": planned["throttled_then_ok"] + converse + 2 * always,
        "throttlingException (exhausted)": always}
    assert sum(totals("streams recovered by retry, by model").values()) == once
    assert "in-band retries by error.type (result)" in result.stdout


@pytest.mark.heavy  # two quota runs of ~10 s each: once per CI run
def test_demo_with_pressure_shows_fewer_throttled_attempts_than_retry_alone(tmp_path: Path) -> None:
    report = tmp_path / "summary.json"
    result = subprocess.run([CLI, "demo", "--pressure", "--quota-seconds", "4", "--streams", "20", "--port", "0",
                             "--latency", "0.005", "--json", str(report)],
                            capture_output=True, text=True, timeout=300, env=child_env())
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if line.startswith("| |"))
    assert header == "| | retry mode | retry + pressure |"
    row = next(line for line in result.stdout.splitlines() if line.startswith("| throttled attempts per success"))
    alone, paced = (float(cell) for cell in row.strip("|").split("|")[1:])
    assert paced < alone / 2, row
    shown = json.loads(report.read_text())  # the demo's own run was in pressure mode: its sections are there
    assert {"pressure: attempts that waited, by model", "pressure: attempts refused, by reason"} <= set(shown)


# -- doctor ----------------------------------------------------------------------------------------------------


def test_doctor_finds_out_whether_this_sdk_mishandles_error_frames() -> None:
    result = cli("doctor")
    assert "patch targets: " in result.stdout and ", 0 missing" in result.stdout, result.stdout
    import botocore  # anthropic[bedrock] brings it: boto3's streams are checked and their targets patched

    assert f"botocore {botocore.__version__}: boto3 bedrock-runtime streams observed: InvokeModelWithResponseStream" \
        in result.stdout and "applied  botocore.eventstream:EventStream.__iter__" in result.stdout
    if FIXED_BEDROCK_DECODER:
        assert result.returncode == 0, result.stdout
        assert "#1472: not affected: an in-band rate_limit_error frame raises APIStatusError (HTTP status 200)" \
            in result.stdout
    else:
        assert result.returncode == 1, result.stdout
        assert "#1472: AFFECTED" in result.stdout and "message=None" in result.stdout and "0.110.0" in result.stdout
        repaired = cli("doctor", BEDROCK_OTEL_REPAIR="1")
        assert repaired.returncode == 0 and "repair mode is on" in repaired.stdout, repaired.stdout


@SDK_ENDS
def test_doctor_reports_bad_settings_and_exporters() -> None:
    result = cli("doctor", BEDROCK_OTEL_SPAN_EVENTS="loud")
    assert result.returncode == 1 and "FAIL  settings: BEDROCK_OTEL_SPAN_EVENTS='loud'" in result.stdout
    port = str(free_port())
    env = {"BEDROCK_OTEL_PROMETHEUS_PORT": port, "BEDROCK_OTEL_PROMETHEUS_ADDR": "0.0.0.0",
           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "BEDROCK_OTEL_REPAIR": "1"}
    result = cli("doctor", **env)
    assert f"warn  /metrics endpoint: 0.0.0.0:{port}: reachable from other hosts" in result.stdout
    assert "ok    traces: otlp (grpc) to http://collector:4317" in result.stdout
    assert "ok    metrics: otlp (grpc) to http://collector:4317" in result.stdout
    quiet = cli("doctor", "--quiet", **env)
    assert "\n  ok    " not in quiet.stdout and f"warn  /metrics endpoint: 0.0.0.0:{port}" in quiet.stdout


def test_doctor_names_the_newest_tested_sdk_and_warns_when_the_installed_one_is_newer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import anthropic

    from bedrock_otel.cli import doctor
    from bedrock_otel.support import NEWEST_TESTED_ANTHROPIC, version_tuple

    def sdk_lines() -> str:
        report = doctor.Report()
        doctor.check_sdk(report, None)
        return report.render()

    installed = sdk_lines()
    assert f"anthropic {anthropic.__version__} (supported: anthropic >= 0.25.0, < 3; tested up to " \
           f"{NEWEST_TESTED_ANTHROPIC})" in installed
    newer = version_tuple(anthropic.__version__) > version_tuple(NEWEST_TESTED_ANTHROPIC)  # the `newest` session
    assert ("is newer than" in installed) == newer, installed
    monkeypatch.setattr(anthropic, "__version__", "2.999.0")
    assert f"warn  anthropic 2.999.0 is newer than {NEWEST_TESTED_ANTHROPIC}, the newest version" \
        in sdk_lines()
