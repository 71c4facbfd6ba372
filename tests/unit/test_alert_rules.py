"""Alert rules over constructed snapshots, and the incident tracker: once per incident,
once resolved, a failing rule or notifier changes nothing else (issue 6)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from handrail.errors import ConfigurationError
from handrail.monitoring import (
    AlertChange,
    Alerting,
    Finding,
    InterventionRate,
    Monitor,
    PendingAge,
    Snapshot,
    ToolStats,
    ToolSuccessRate,
    default_alert_rules,
)
from handrail.monitoring.snapshot import ApprovalStats, InterventionStats, quantile
from handrail.testing import MemoryStore


def snapshot(
    *,
    at: float = 1000.0,
    tools: tuple[ToolStats, ...] = (),
    finished: int = 0,
    intervened: int = 0,
    oldest: dict[str, PendingAge] | None = None,
) -> Snapshot:
    return Snapshot(
        taken_at=at,
        window_seconds=3600.0,
        tasks={},
        due={},
        oldest_pending=oldest or {},
        stuck=(),
        pending_approvals=(),
        approvals=ApprovalStats(),
        tools=tools,
        interventions=InterventionStats(finished=finished, intervened=intervened),
    )


def tool(name: str, successes: int, failures: int) -> ToolStats:
    return ToolStats(
        tool=name,
        calls=successes + failures,
        outcomes={"success": successes, "failure": failures},
        failure_classes={"transient": failures},
        retries=0,
        latency_p50=0.1,
        latency_p95=0.2,
        latency_max=0.3,
    )


def test_tool_success_rate_needs_enough_calls_and_a_low_rate() -> None:
    rule = ToolSuccessRate(minimum=0.9, min_calls=10)
    snap = snapshot(tools=(tool("crm", 8, 2), tool("mail", 9, 0), tool("sms", 18, 2)))
    (finding,) = rule.check(snap)  # mail has too few calls; sms is at 90%
    assert finding.key == "crm"
    assert finding.details["success_rate"] == 0.8
    assert "80% of 10 calls" in finding.title


def test_intervention_rate_needs_enough_tasks_and_a_high_ratio() -> None:
    rule = InterventionRate(maximum=0.2, min_tasks=10)
    assert rule.check(snapshot(finished=9, intervened=9)) == []
    assert rule.check(snapshot(finished=10, intervened=2)) == []
    (finding,) = rule.check(snapshot(finished=10, intervened=3))
    assert (finding.key, finding.details["ratio"]) == ("all", 0.3)


def test_rules_refuse_thresholds_that_make_no_sense() -> None:
    with pytest.raises(ConfigurationError):
        ToolSuccessRate(minimum=1.5)
    with pytest.raises(ConfigurationError):
        InterventionRate(min_tasks=0)
    with pytest.raises(ConfigurationError, match="unique"):
        Alerting([ToolSuccessRate(), ToolSuccessRate()], monitor=Monitor(MemoryStore()))


def test_default_rules_cover_every_condition() -> None:
    names = {rule.name for rule in default_alert_rules()}
    assert names == {
        "stuck_task",
        "pending_too_long",
        "missed_approval",
        "tool_success_rate",
        "intervention_rate",
    }


class Broken:
    name = "broken"

    def __init__(self) -> None:
        self.fail = False

    def check(self, snapshot: Snapshot) -> list[Finding]:
        if self.fail:
            raise RuntimeError("rule bug")
        return [Finding("x", "something is wrong")]


def test_incidents_fire_once_and_resolve_once_per_key() -> None:
    sent: list[AlertChange] = []
    broken = Broken()
    alerting = Alerting(
        [ToolSuccessRate(minimum=0.9, min_calls=1), broken],
        monitor=Monitor(MemoryStore()),
        send=sent.append,
    )
    bad = snapshot(at=1.0, tools=(tool("crm", 1, 1), tool("mail", 1, 1)))
    assert [(c.state, c.incident.key) for c in alerting.observe(bad)] == [
        ("firing", "crm"),
        ("firing", "mail"),
        ("firing", "x"),
    ]
    assert alerting.observe(bad) == []
    broken.fail = True  # a failing rule keeps its incidents open, and the others run
    half = snapshot(at=2.0, tools=(tool("crm", 2, 0), tool("mail", 1, 1)))
    (change,) = alerting.observe(half)
    assert (change.state, change.incident.key, change.at) == ("resolved", "crm", 2.0)
    assert change.incident.started_at == 1.0
    assert change.title.startswith("RESOLVED [tool_success_rate] Tool crm")
    assert change.details["resolved_at"] == 2.0
    assert sorted(i.key for i in alerting.firing) == ["mail", "x"]
    assert [c.state for c in sent] == ["firing", "firing", "firing", "resolved"]


def test_a_failing_notifier_does_not_stop_evaluation() -> None:
    def send(change: AlertChange) -> Any:
        raise OSError("smtp down")

    alerting = Alerting([Broken()], monitor=Monitor(MemoryStore()), send=send)
    assert len(alerting.observe(snapshot())) == 1
    assert [i.key for i in alerting.firing] == ["x"]


def test_quantile_is_nearest_rank() -> None:
    assert quantile([], 0.5) is None
    assert quantile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert quantile([float(n) for n in range(1, 101)], 0.95) == 95.0


def test_snapshot_to_dict_is_json() -> None:
    snap = snapshot(
        tools=(tool("crm", 1, 1),),
        finished=4,
        intervened=1,
        oldest={"default": PendingAge("default", "t1", 900.0, 100.0)},
    )
    data = json.loads(json.dumps(snap.to_dict()))
    assert data["oldest_pending_age_seconds"] == 100.0
    assert data["tools"][0]["success_rate"] == 0.5
    assert data["interventions"]["ratio"] == 0.25


def test_monitoring_does_not_import_prometheus_client_until_asked() -> None:
    code = (
        "import sys, handrail; a = 'handrail.monitoring' in sys.modules; "
        "import handrail.monitoring; b = 'prometheus_client' in sys.modules; print(a, b)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
