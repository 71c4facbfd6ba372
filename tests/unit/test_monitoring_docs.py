"""The example alert rules and Grafana dashboard in docs/ parse, and every handrail metric
they query is one handrail exposes (issue 6)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from handrail import App, TaskContext
from handrail.monitoring import render_metrics
from handrail.testing import ManualClock, MemoryStore

DOCS = Path(__file__).resolve().parents[2] / "docs"
RULES = DOCS / "prometheus-alerts.yml"
DASHBOARD = DOCS / "grafana-dashboard.json"
METRIC = re.compile(r"\bhandrail_[a-z_]+\b")


def exposed_names() -> set[str]:
    app = App(MemoryStore(), clock=ManualClock(start=1000.0))

    @app.tool(idempotent=True)
    def echo(text: str) -> str:
        return text

    @app.workflow
    def wf(ctx: TaskContext) -> str:
        return str(echo("x"))

    app.run(wf)
    text = render_metrics(app.store).decode()
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
    return names


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    rules: list[dict[str, Any]] = []
    for group in doc["groups"]:
        assert group["name"]
        rules.extend(group["rules"])
    return rules


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in doc["panels"] for t in panel["targets"]]


def test_alert_rules_have_the_prometheus_rule_shape() -> None:
    rules = alert_rules()
    names = {rule["alert"] for rule in rules}
    assert {
        "HandrailStuckTasks",
        "HandrailOldestPendingTaskTooOld",
        "HandrailMissedApprovals",
        "HandrailToolSuccessRateLow",
        "HandrailHumanInterventionRateHigh",
        "HandrailNotificationsGivenUp",
        "HandrailNotificationsDelayed",
        "HandrailAuditSinkBehind",
    } <= names
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
        assert rule["expr"].strip()
        assert rule["annotations"]["summary"]


def test_dashboard_has_a_panel_for_each_number() -> None:
    doc = json.loads(DASHBOARD.read_text())
    titles = " | ".join(panel["title"].lower() for panel in doc["panels"])
    for topic in (
        "queue depth",
        "oldest pending",
        "stuck",
        "missed approvals",
        "tool success rate",
        "latency p95",
        "intervention rate",
    ):
        assert topic in titles, topic
    ids = [panel["id"] for panel in doc["panels"]]
    assert len(ids) == len(set(ids))


def test_docs_query_only_metrics_handrail_exposes() -> None:
    exposed = exposed_names()
    queried = {m for expr in dashboard_exprs() for m in METRIC.findall(expr)}
    queried |= {m for rule in alert_rules() for m in METRIC.findall(rule["expr"])}
    assert queried
    assert queried <= exposed, queried - exposed


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (it ships with Prometheus)")
    done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
