"""Dashboards and alerts: the committed files are what the generator writes; promtool lints and unit-tests the
rules; every dashboard is structurally sound; the Grafana alert provisioning follows Grafana's documented
schema; and end to end, the real Prometheus scrapes an instrumented workload, every panel query returns data
and an alert fires."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from procs import TESTS, prometheus_tool

import bedrock_otel
from bedrock_otel.monitoring import alerts, dashboard, files
from bedrock_otel.monitoring.promql import JOB, VARIABLES
from bedrock_otel.telemetry import catalog as c
from bedrock_otel.testing import LoopbackServer, scenarios, workload
from bedrock_otel.testing.alertmanager import AlertmanagerServer, WebhookReceiver
from bedrock_otel.testing.capture import CapturedTelemetry
from bedrock_otel.testing.prometheus import PrometheusServer, host_port

pytestmark = pytest.mark.sdk_independent  # see noxfile.py: the two ends of the Python range, and the floors

ROOT = TESTS.parent
OUT = ROOT / "dashboards"
RULES = OUT / "prometheus" / "bedrock-otel-alerts.yml"
GRAFANA_ALERTS = OUT / "grafana" / "provisioning" / "alerting" / "bedrock-otel-alerts.yaml"
NOTIFICATIONS = OUT / "grafana" / "provisioning" / "alerting" / "bedrock-otel-notifications.yaml"
DATASOURCES = OUT / "grafana" / "provisioning" / "datasources" / "bedrock-otel-prometheus.yaml"
DASHBOARDS = sorted((OUT / "grafana").glob("*.json"))
BY_NAME = {i.prometheus_name: i for i in c.CATALOG}


def targets(board: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(panel, target) for panel in board["panels"] for target in panel.get("targets", [])]


def substitute(expr: str, window: str = "1m") -> str:
    """A dashboard query as Grafana sends it with every template variable on All."""
    expr = expr.replace("$__rate_interval", window)
    for var in VARIABLES:
        expr = expr.replace(f"${var}", ".*")
    return expr


# -- generated files ---------------------------------------------------------------------------------------------


def test_committed_files_are_what_the_generator_writes() -> None:
    generated = files.generated()
    on_disk = {str(p.relative_to(OUT)): p.read_text() for p in OUT.rglob("*") if p.is_file() and p.name != "README.md"}
    assert on_disk.keys() == generated.keys(), "run: bedrock-otel dashboards"
    for path, text in generated.items():
        assert on_disk[path] == text, f"{path} differs; run: bedrock-otel dashboards"
    for path in generated:  # and the YAML written here parses to the structure it was written from
        if path.endswith((".yml", ".yaml")):
            assert yaml.safe_load((OUT / path).read_text())


def test_the_dashboards_command_writes_every_file_with_runbook_links_and_refuses_what_it_cannot_do(
        tmp_path: Path) -> None:
    """`bedrock-otel dashboards DIR` (what a user who installed a wheel has) writes what the repository commits;
    `--runbook-url` points every rule at another copy of the runbooks; bad input gets a clear error, no folder."""
    cli = [str(Path(sys.executable).with_name("bedrock-otel")), "dashboards"]
    written = subprocess.run([*cli, str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert written.returncode == 0, written.stderr
    assert {str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file()} == \
        set(files.generated())
    assert (tmp_path / "out" / "prometheus" / "bedrock-otel-alerts.yml").read_text() == RULES.read_text()

    wiki = "https://wiki.example.com/runbooks/bedrock-otel"
    module = subprocess.run([sys.executable, "-m", "bedrock_otel.monitoring", str(tmp_path / "wiki"), "--runbook-url",
                             wiki], capture_output=True, text=True, timeout=120)
    assert module.returncode == 0, module.stderr
    for path in ("prometheus/bedrock-otel-alerts.yml", "grafana/provisioning/alerting/bedrock-otel-alerts.yaml"):
        links = re.findall(r'runbook_url: "([^"]+)"', (tmp_path / "wiki" / path).read_text())
        assert links == [f"{wiki}#{a.name.lower()}" for a in alerts.ALERTS]

    (tmp_path / "a-file").write_text("")
    for args, says in (([str(tmp_path / "a-file")], "is not a directory"),
                       ([str(tmp_path / "x"), "--runbook-url", "docs/alerts.md"], "--runbook-url must be an absolute"),
                       (["--bogus"], "unrecognized arguments: --bogus")):
        refused = subprocess.run([*cli, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert refused.returncode == 2 and says in refused.stderr, refused.stderr
    helped = subprocess.run([sys.executable, "-m", "bedrock_otel.monitoring", "--help"], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    assert helped.returncode == 0 and "--runbook-url" in helped.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "out", "wiki"]  # no folder named --help or x


# -- Prometheus rules --------------------------------------------------------------------------------------------


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    promtool = prometheus_tool("promtool")
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and f"SUCCESS: {len(alerts.ALERTS)} rules found" in check.stdout, check.stdout
    unit = subprocess.run([promtool, "test", "rules", str(TESTS / "rules" / "bedrock-otel-alerts.test.yml")],
                          capture_output=True, text=True, timeout=60)
    assert unit.returncode == 0, unit.stdout + unit.stderr
    tested = re.findall(r"alertname: (\w+)", (TESTS / "rules" / "bedrock-otel-alerts.test.yml").read_text())
    assert set(tested) == {a.name for a in alerts.ALERTS}  # every alert has unit tests


def test_every_alert_has_severity_annotations_and_a_runbook() -> None:
    runbooks = (ROOT / "docs" / "alerts.md").read_text()
    anchors = {heading.strip().lower() for heading in re.findall(r"^## (\w+)", runbooks, re.M)}
    (group,) = yaml.safe_load(RULES.read_text())["groups"]
    for rule in group["rules"]:
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
        assert rule["annotations"]["runbook_url"].split("#")[1] in anchors, rule["alert"]


# -- dashboards ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["uid"] and len(board["uid"]) <= 40 and board["title"] and board["schemaVersion"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"job", "provider", "model", "region", "profile"} <= set(variables)
    for name, var in variables.items():
        if name != "datasource":
            assert var["datasource"] == dashboard.DATASOURCE and var["includeAll"] and var["refresh"] == 2
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], int] = {}
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps panel {cells[(x, y)]}"
                cells[(x, y)] = panel["id"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == dashboard.DATASOURCE, panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        assert panel["description"] and panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == dashboard.DATASOURCE and target["refId"]
            assert target["expr"].strip() and target["legendFormat"].strip(), panel["title"]
    text = path.read_text()
    uids = set(re.findall(r'"uid": "([^"]*)"', text))
    assert uids == {"${datasource}", board["uid"]}  # no hard-coded data source uid anywhere


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_uses_catalogue_names_and_honours_the_variables(path: Path) -> None:
    board = json.loads(path.read_text())
    for panel, target in targets(board):
        uses = re.findall(r"([a-z_:]+)\{([^}]*)\}", target["expr"])
        assert uses, target["expr"]
        for name, matchers in uses:
            instrument = BY_NAME.get(re.sub(r"_(bucket|count|sum)$", "", name))
            assert instrument is not None, f"{panel['title']}: {name} is not a bedrock_otel metric"
            labels = {JOB, *instrument.prometheus_labels}
            for var, label in VARIABLES.items():
                if label in labels:
                    assert f'{label}=~"${var}"' in matchers, f"{panel['title']}: {name} ignores ${var}"
        if "rate(" in target["expr"] or "increase(" in target["expr"]:
            assert "[$__rate_interval]" in target["expr"], panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panels_of_series_with_exemplars_show_them_and_they_open_the_trace(path: Path) -> None:
    """A time series panel that queries a series with exemplars (the catalogue's) shows them; the provisioned
    Prometheus data source sends an exemplar's trace_id to a provisioned trace data source."""
    with_exemplars = {i.prometheus_name for i in c.CATALOG if i.exemplars}
    shown = set()
    for panel, target in targets(json.loads(path.read_text())):
        queried = {re.sub(r"_(bucket|count|sum)$", "", name) for name in re.findall(r"([a-z_:]+)\{", target["expr"])}
        assert target["exemplar"] is (panel["type"] == "timeseries" and bool(queried & with_exemplars)), panel["title"]
        shown |= queried & with_exemplars if target["exemplar"] else set()
    assert shown == with_exemplars  # every series with exemplars has a panel that shows them
    sources = {d["uid"]: d for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    (link,) = sources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert link["name"] == "trace_id" and sources[link["datasourceUid"]]["type"] == "tempo"


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    promtool = prometheus_tool("promtool")
    rules = [{"record": f"dashboard:query:{i}", "expr": substitute(target["expr"])}
             for path in DASHBOARDS for i, (_, target) in enumerate(targets(json.loads(path.read_text())))]
    rule_file = tmp_path / "queries.yml"
    rule_file.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    check = subprocess.run([promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


# -- Grafana alert provisioning ----------------------------------------------------------------------------------

DURATION = re.compile(r"^\d+[smhd]$")


def test_grafana_alert_provisioning_follows_the_documented_schema() -> None:
    datasource_uids = {d["uid"] for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    provisioned = yaml.safe_load(GRAFANA_ALERTS.read_text())
    assert provisioned["apiVersion"] == 1
    prometheus_rules = {r["alert"]: r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    seen_uids = set()
    for group in provisioned["groups"]:
        assert {"orgId", "name", "folder", "interval", "rules"} <= set(group) and DURATION.match(group["interval"])
        for rule in group["rules"]:
            assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", rule["uid"]) and rule["uid"] not in seen_uids
            seen_uids.add(rule["uid"])
            assert rule["title"] and DURATION.match(rule["for"])
            assert rule["noDataState"] in ("NoData", "Alerting", "OK")
            assert rule["execErrState"] in ("Error", "Alerting", "OK")
            data = {d["refId"]: d for d in rule["data"]}
            assert rule["condition"] in data
            query, reduce, threshold = data["A"], data["B"], data["C"]
            assert query["datasourceUid"] in datasource_uids  # references the provisioned data source
            assert query["model"]["expr"] and query["relativeTimeRange"]["from"] > 0
            assert reduce["datasourceUid"] == "__expr__" and reduce["model"]["type"] == "reduce"
            assert reduce["model"]["expression"] == "A" and reduce["model"]["reducer"] in ("last", "max", "mean")
            assert threshold["datasourceUid"] == "__expr__" and threshold["model"]["type"] == "threshold"
            assert threshold["model"]["expression"] == "B" and rule["condition"] == "C"
            (condition,) = threshold["model"]["conditions"]
            assert condition["evaluator"]["type"] in ("gt", "lt") and len(condition["evaluator"]["params"]) == 1
            # the same alert as the Prometheus rule: same query, threshold, severity
            twin = prometheus_rules[rule["title"]]
            op = ">" if condition["evaluator"]["type"] == "gt" else "<"
            assert twin["expr"] == f"({query['model']['expr']}) {op} {condition['evaluator']['params'][0]:g}"
            assert twin["labels"] == rule["labels"]
            assert "$value" not in json.dumps(rule["annotations"]).replace("$values", "")
    assert {r["title"] for g in provisioned["groups"] for r in g["rules"]} == set(prometheus_rules)

    notifications = yaml.safe_load(NOTIFICATIONS.read_text())
    receivers = {cp["name"] for cp in notifications["contactPoints"]}
    for contact_point in notifications["contactPoints"]:
        for receiver in contact_point["receivers"]:
            assert receiver["uid"] and receiver["type"] and receiver["settings"]
    for policy in notifications["policies"]:
        assert policy["receiver"] in receivers
        assert all(route["receiver"] in receivers for route in policy.get("routes", []))


# -- end to end with the real Prometheus --------------------------------------------------------------------------

# error_first on Bedrock before 0.110 and unknown_event from 1.16 reach the caller as #1472 start events
E2E_FAULTS = {**workload.DEFAULT_FAULTS, "typeless": 0.05, "error_first": 0.1, "throttled_always": 0.05,
              "unknown_event": 0.05}
FIRING = "BedrockOtelInBandRateLimited"
ZERO = " or on() ("  # what promql.or_zero appends to a query that shows 0 rather than "No data"


def _query_every_panel(prometheus: PrometheusServer, primary_only: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Every panel query's result, keyed by panel and target; `primary_only`: without the 0 fallback."""
    results = {}
    for path in DASHBOARDS:
        for panel, target in targets(json.loads(path.read_text())):
            expr = target["expr"].split(ZERO)[0] if primary_only else target["expr"]
            results[f"{panel['title']} [{target['refId']}]"] = prometheus.query(substitute(expr))
    print("\nseries per panel query:\n" + "\n".join(f"  {len(r):>3}  {name}" for name, r in results.items()))
    return results


def _stays_empty_until_it_happens(board: dict[str, Any], title: str) -> bool:
    (panel,) = [p for p in board["panels"] if p["title"] == title.rsplit(" [", 1)[0]]
    return dashboard.EMPTY_UNTIL.strip() in panel["description"]


def test_every_panel_shows_zero_not_no_data_while_nothing_happens_and_stays_empty_without_telemetry(
        tmp_path: Path) -> None:
    """A healthy system: every rate and count panel shows 0 (not "No data"); only percentiles of what has not
    happened (retry-after) and pressure mode's rate and waits (the mode is off) stay empty, as their descriptions
    say. No telemetry at all: the 0s go too."""
    prometheus_tool("prometheus")
    (board,) = [json.loads(path.read_text()) for path in DASHBOARDS]
    with CapturedTelemetry(prometheus_port=0), LoopbackServer(first_event_delay=0.002) as loopback:
        endpoint = bedrock_otel.metrics_server()
        assert endpoint is not None
        with PrometheusServer([host_port(endpoint.url)]) as prometheus:
            prometheus.wait_for_scrapes(2)
            silent = _query_every_panel(prometheus)  # instrumented, no stream yet
            workload.run(loopback, workload.plan(60, {}, seed=5), concurrency=8)
            prometheus.wait_for_scrapes(2)
            clean = _query_every_panel(prometheus)
    empty = {name for name, result in clean.items() if not result}
    assert empty == {name for name in clean if name.startswith(("retry-after", "Allowed rate", "Waits per"))}, empty
    assert all(_stays_empty_until_it_happens(board, name) for name in empty)
    zeros = [name for name, result in clean.items() if result and ZERO in _expr(board, name)
             and all(float(s["value"][1]) == 0 for s in result)]
    assert len(zeros) >= 8  # malformed events, error frames, rate limits, retries, ... are 0, not missing
    # instrumented before the first stream: every rate and count panel is 0, every percentile empty
    assert {n: {float(s["value"][1]) for s in r} for n, r in silent.items()} \
        == {n: {0.0} if ZERO in _expr(board, n) else set() for n in silent}
    with PrometheusServer(["127.0.0.1:9"]) as nothing:  # a target that is down: no bedrock_otel telemetry at all
        deadline = time.monotonic() + 30
        while not nothing.query("up") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert nothing.query("up")[0]["value"][1] == "0"
        assert not any(_query_every_panel(nothing).values())


def _expr(board: dict[str, Any], name: str) -> str:
    title, ref = name.rsplit(" [", 1)
    (panel,) = [p for p in board["panels"] if p["title"] == title]
    return next(t["expr"] for t in panel["targets"] if t["refId"] == ref.rstrip("]"))


def test_end_to_end_every_panel_returns_data_and_an_alert_fires(tmp_path: Path) -> None:
    """Under faults, every panel query returns data of its own: the fallback 0 is left out, so a query that
    matches nothing (a misspelt label, a metric that is never written) fails here."""
    prometheus_tool("prometheus")
    test_rules = tmp_path / "rules.yml"  # the real rules with `for: 0s`, so firing needs no waiting
    test_rules.write_text(json.dumps(alerts.prometheus_rules(for_override="0s")))
    with CapturedTelemetry(prometheus_port=0, retry=True), LoopbackServer(first_event_delay=0.002) as loopback:
        endpoint = bedrock_otel.metrics_server()
        assert endpoint is not None
        with PrometheusServer([host_port(endpoint.url)], rule_files=[test_rules]) as prometheus:
            prometheus.wait_for_scrapes(1)
            workload.run(loopback, workload.plan(160, E2E_FAULTS, seed=3, clients=workload.CLIENTS), concurrency=8)
            prometheus.wait_for_scrapes(2)  # two scrapes after the workload: every new series has two points

            results = _query_every_panel(prometheus, primary_only=True)
            pressure = {name for name in results if name.rsplit(" [", 1)[0] in PRESSURE_PANELS}  # the mode is off
            assert len(pressure) == 4 and all(not results[name] for name in pressure)
            assert all(r for name, r in results.items() if name not in pressure), [
                name for name, result in results.items() if not result and name not in pressure]

            for alert in alerts.ALERTS:  # every alert expression evaluates (api() raises on an error)
                prometheus.query(alert.expr)
            firing = _wait_for_alert(prometheus, FIRING)
            assert firing["labels"]["job"] == "bedrock_otel" and firing["labels"]["severity"] == "warning"
            assert firing["labels"]["gen_ai_request_model"] and "rate-limit errors per minute" in \
                firing["annotations"]["description"]


PRESSURE_PANELS = {panel.title for title, panels in dashboard.ROWS if title == "Request pressure" for panel in panels}


def test_the_request_pressure_row_returns_data_in_pressure_mode() -> None:
    """The same faults in pressure mode with a short bound: the allowed rate, the waits and their p95, and the
    refused attempts all have series of their own."""
    prometheus_tool("prometheus")
    with CapturedTelemetry(prometheus_port=0, retry=True, pressure=True, pressure_max_wait=0.3), \
            LoopbackServer(first_event_delay=0.002) as loopback:
        endpoint = bedrock_otel.metrics_server()
        assert endpoint is not None
        with PrometheusServer([host_port(endpoint.url)]) as prometheus:
            prometheus.wait_for_scrapes(1)
            workload.run(loopback, workload.plan(160, E2E_FAULTS, seed=3, clients=workload.CLIENTS), concurrency=8)
            prometheus.wait_for_scrapes(2)
            results = _query_every_panel(prometheus, primary_only=True)
    row = {name: result for name, result in results.items() if name.rsplit(" [", 1)[0] in PRESSURE_PANELS}
    assert len(row) == 4 and all(row.values()), row


def _wait_for_alert(prometheus: PrometheusServer, name: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for alert in prometheus.api("alerts")["alerts"]:
            if alert["labels"]["alertname"] == name and alert["state"] == "firing":
                return dict(alert)
        time.sleep(0.5)
    raise AssertionError(f"{name} did not fire: {prometheus.api('alerts')}")


# What docs/alerts.md calls normal, in 200 streams: 1 % ending in an error mid-stream, a transient in-band rate limit
# now and then, a few HTTP 429s the SDK retries, one truncated stream. Counted, not drawn at random: with the
# rules' `for:` shortened to 0s, four in-band hits within seconds are already ~1 a minute over a 5-minute window
HEALTHY_NOISE = {"error_mid": 2, "rate_limited_then_ok": 2, "http_429_then_ok": 3, "truncated": 1}


def _healthy_run(streams: int = 200) -> list[workload.Planned]:
    planned = [name for name, count in HEALTHY_NOISE.items() for _ in range(count)]
    planned += ["normal"] * (streams - len(planned))
    random.Random(11).shuffle(planned)
    return [workload.Planned("first_party", ("sync", "async")[i % 2], "create", scenario, f"healthy-{i}")
            for i, scenario in enumerate(planned)]


def _malformed_start_event() -> str | None:
    """The scenario that reaches the caller of this SDK, on Bedrock, as a #1472 start event with no message."""
    from packaging.version import Version

    version = Version(__import__("anthropic").__version__)
    return "error_first" if version < Version("0.110.0") else "unknown_event" if version >= Version("1.16.0") else None


def test_alertmanager_pages_a_storm_and_a_single_malformed_event_not_a_healthy_run_and_resolves(
        tmp_path: Path) -> None:
    """The shipped rules (only `for:` shortened) through the real Prometheus and Alertmanager to a webhook, as an
    on-call engineer would get them: quiet on a healthy workload; an in-band storm paged for its model, with the
    error ratio; one #1472 event on a model that never had one paged at once; the error ratio resolved once healthy
    traffic dilutes the storm; and when the target's telemetry goes, the absence paged and the alerts on instant
    series resolved. (Alerts on a `rate()` window, the storm's, resolve when the window has passed: 5 minutes.)"""
    prometheus_tool("prometheus")
    prometheus_tool("prometheus-alertmanager", package="prometheus-alertmanager")
    rules = tmp_path / "rules.yml"
    rules.write_text(json.dumps(alerts.prometheus_rules(for_override="0s")))
    malformed = _malformed_start_event()
    with CapturedTelemetry(prometheus_port=0), LoopbackServer(first_event_delay=0.002) as loopback, \
            WebhookReceiver() as webhook, AlertmanagerServer(webhook.url) as alertmanager:
        endpoint = bedrock_otel.metrics_server()
        assert endpoint is not None
        instance = host_port(endpoint.url)
        with PrometheusServer([instance], rule_files=[rules], alertmanagers=[alertmanager.host_port]) as prometheus:
            prometheus.wait_for_scrapes(1)
            workload.run(loopback, _healthy_run())
            prometheus.wait_for_scrapes(5)  # five evaluations of every rule over the whole run
            assert prometheus.api("alerts")["alerts"] == [] and webhook.alerts == []

            workload.run(loopback, workload.plan(30, {"rate_limited_then_ok": 1.0}, seed=12, clients=("first_party",)))
            storm = webhook.wait_for("BedrockOtelInBandRateLimited", gen_ai_request_model=scenarios.MODEL)
            assert storm["labels"]["severity"] == "warning" and storm["labels"]["gen_ai_provider_name"] == "anthropic"
            assert storm["annotations"]["runbook_url"].endswith("#bedrockotelinbandratelimited")
            webhook.wait_for("BedrockOtelStreamErrorRatioHigh", gen_ai_request_model=scenarios.MODEL)

            if malformed is not None:  # one event, on a model whose malformed series does not exist yet
                workload.run(loopback, [workload.Planned("bedrock", "sync", "create", malformed, "one")])
                page = webhook.wait_for("BedrockOtelMalformedStartEvent", gen_ai_request_model=scenarios.BEDROCK_MODEL)
                assert page["annotations"]["description"].startswith("1 stream events in the last 10 minutes")

            # ~34 errors in the window: under 5 % once ~700 streams have run
            workload.run(loopback, workload.plan(600, {}, seed=13, clients=("first_party",)))
            webhook.wait_for("BedrockOtelStreamErrorRatioHigh", status="resolved", gen_ai_request_model=scenarios.MODEL)

            endpoint.close()  # the target is still discovered, its telemetry is gone
            absent = webhook.wait_for("BedrockOtelTelemetryAbsent", instance=instance)
            assert absent["labels"]["severity"] == "critical"
            if malformed is not None:
                webhook.wait_for("BedrockOtelMalformedStartEvent", status="resolved")
    fired = {a["labels"]["alertname"] for a in webhook.alerts}
    assert fired == {"BedrockOtelInBandRateLimited", "BedrockOtelStreamErrorRatioHigh", "BedrockOtelTelemetryAbsent",
                     *(("BedrockOtelMalformedStartEvent",) if malformed else ())}, fired


# -- Grafana's own dashboard model ---------------------------------------------------------------------------------


@pytest.mark.skipif(sys.version_info < (3, 11), reason="grafana-foundation-sdk needs Python >= 3.11 (the dashboard "
                    "files are the same on every Python; the sessions on 3.11+ check them)")
@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_grafana_dashboard_model_decodes_every_field(path: Path) -> None:
    """Grafana's published dashboard model (the grafana-foundation-sdk, generated from Grafana's own schema)
    decodes the dashboard and encodes it back with nothing dropped or changed: every field written is one
    Grafana knows, with the structure it expects (it only adds its defaults)."""
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    plugins.register_default_plugins()
    board = json.loads(path.read_text())
    decoded = json.loads(json.dumps(Dashboard.from_json(board).to_json(), default=lambda o: o.to_json()))
    assert _lost(board, decoded) == []


def _lost(ours: Any, grafana: Any, at: str = "") -> list[str]:
    """Paths where `grafana` lacks or differs from what `ours` has (keys it adds are defaults, not losses)."""
    if isinstance(ours, dict) and isinstance(grafana, dict):
        lost = []
        for key, value in ours.items():
            lost += [f"{at}/{key}"] if key not in grafana else _lost(value, grafana[key], f"{at}/{key}")
        return lost
    if isinstance(ours, list) and isinstance(grafana, list) and len(ours) == len(grafana):
        return [p for i, (a, b) in enumerate(zip(ours, grafana)) for p in _lost(a, b, f"{at}[{i}]")]
    return [] if ours == grafana else [at]
