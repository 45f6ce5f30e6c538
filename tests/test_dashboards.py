"""Dashboards and alerts: the committed files are what the generator writes; promtool lints and unit-tests the
rules; every dashboard is structurally sound; the Grafana alert provisioning follows Grafana's documented
schema; and end to end, the real Prometheus scrapes an instrumented workload, every panel query returns data
and an alert fires."""

from __future__ import annotations

import json
import re
import subprocess
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
from bedrock_otel.testing import LoopbackServer, workload
from bedrock_otel.testing.capture import CapturedTelemetry
from bedrock_otel.testing.prometheus import PrometheusServer, host_port

pytestmark = pytest.mark.sdk_independent  # see noxfile.py: oldest and newest SDK sessions, floors

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
    assert on_disk.keys() == generated.keys(), "run: python -m bedrock_otel.monitoring dashboards"
    for path, text in generated.items():
        assert on_disk[path] == text, f"{path} differs; run: python -m bedrock_otel.monitoring dashboards"
    for path in generated:  # and the YAML written here parses to the structure it was written from
        if path.endswith((".yml", ".yaml")):
            assert yaml.safe_load((OUT / path).read_text())


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

E2E_FAULTS = {**workload.DEFAULT_FAULTS, "typeless": 0.05, "error_first": 0.1, "throttled_always": 0.05}
FIRING = "BedrockOtelInBandRateLimited"


def test_end_to_end_every_panel_returns_data_and_an_alert_fires(tmp_path: Path) -> None:
    prometheus_tool("prometheus")
    test_rules = tmp_path / "rules.yml"  # the real rules with `for: 0s`, so firing needs no waiting
    test_rules.write_text(json.dumps(alerts.prometheus_rules(for_override="0s")))
    with CapturedTelemetry(prometheus_port=0, retry=True), LoopbackServer(first_event_delay=0.002) as loopback:
        endpoint = bedrock_otel.metrics_server()
        assert endpoint is not None
        with PrometheusServer([host_port(endpoint.url)], rule_files=[test_rules]) as prometheus:
            prometheus.wait_for_scrapes(1)
            workload.run(loopback, workload.plan(160, E2E_FAULTS, seed=3), concurrency=8)
            prometheus.wait_for_scrapes(2)  # two scrapes after the workload: every new series has two points

            counts = {}
            for path in DASHBOARDS:
                for panel, target in targets(json.loads(path.read_text())):
                    result = prometheus.query(substitute(target["expr"]))
                    counts[f"{panel['title']} [{target['refId']}]"] = len(result)
            print("\nseries per panel query:\n" + "\n".join(f"  {n:>3}  {name}" for name, n in counts.items()))
            assert all(counts.values()), {name: n for name, n in counts.items() if not n}

            for alert in alerts.ALERTS:  # every alert expression evaluates (api() raises on an error)
                prometheus.query(alert.expr)
            firing = _wait_for_alert(prometheus, FIRING)
            assert firing["labels"]["job"] == "bedrock_otel" and firing["labels"]["severity"] == "warning"
            assert firing["labels"]["gen_ai_request_model"] and "rate-limit errors per minute" in \
                firing["annotations"]["description"]


def _wait_for_alert(prometheus: PrometheusServer, name: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for alert in prometheus.api("alerts")["alerts"]:
            if alert["labels"]["alertname"] == name and alert["state"] == "firing":
                return dict(alert)
        time.sleep(0.5)
    raise AssertionError(f"{name} did not fire: {prometheus.api('alerts')}")
