"""Alert rules: thresholds over a :class:`~handrail.monitoring.Snapshot`.

A rule looks at a snapshot and returns its :class:`Finding` s, one per thing that is wrong
now, each with a ``key`` that names the incident (a task, a queue, a tool, an approval
request). :class:`~handrail.monitoring.alerts.Alerting` turns findings into notifications:
one when a key first appears, one "resolved" when it is gone. Write your own rule as any
object with a ``name`` and a ``check(snapshot) -> list[Finding]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from handrail.errors import ConfigurationError
from handrail.monitoring.snapshot import LEASE_EXPIRED, PAST_DEADLINE, PAST_EXPECTED, Snapshot

__all__ = [
    "AlertRule",
    "Finding",
    "InterventionRate",
    "MissedApprovals",
    "PendingTooLong",
    "StuckTasks",
    "ToolSuccessRate",
    "default_alert_rules",
]


@dataclass(frozen=True)
class Finding:
    """One thing a rule finds wrong: ``key`` identifies the incident within the rule."""

    key: str
    title: str
    details: Mapping[str, Any] = field(default_factory=dict)


class AlertRule(Protocol):
    """A named check over a snapshot."""

    @property
    def name(self) -> str: ...

    def check(self, snapshot: Snapshot) -> list[Finding]: ...


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


@dataclass(frozen=True)
class StuckTasks:
    """A task whose lease expired while in progress, or in progress past its workflow's
    ``max_execution_time``. One incident per task."""

    name: str = "stuck_task"

    def check(self, snapshot: Snapshot) -> list[Finding]:
        found = []
        for task in snapshot.stuck:
            if task.reason == LEASE_EXPIRED:
                why = f"its lease (worker {task.worker}) expired {_seconds(task.seconds)} ago"
            else:
                why = (
                    f"in progress for {_seconds(task.seconds)}, over its max_execution_time "
                    f"of {_seconds(task.max_execution_seconds or 0)}"
                )
            found.append(
                Finding(
                    key=task.task_id,
                    title=f"Task {task.task_id} ({task.workflow}) is stuck: {why}",
                    details={
                        "task_id": task.task_id,
                        "workflow": task.workflow,
                        "queue": task.queue,
                        "reason": task.reason,
                        "since": task.since,
                        "seconds": task.seconds,
                        "worker": task.worker,
                    },
                )
            )
        return found


@dataclass(frozen=True)
class PendingTooLong:
    """A queue whose oldest due task has waited for a worker more than ``max_age``
    seconds. One incident per queue."""

    max_age: float = 300.0
    name: str = "pending_too_long"

    def __post_init__(self) -> None:
        if self.max_age <= 0:
            raise ConfigurationError("PendingTooLong.max_age must be > 0 seconds")

    def check(self, snapshot: Snapshot) -> list[Finding]:
        return [
            Finding(
                key=queue,
                title=(
                    f"Queue {queue}: task {p.task_id} has waited {_seconds(p.age_seconds)} "
                    f"for a worker (threshold {_seconds(self.max_age)})"
                ),
                details={
                    "queue": queue,
                    "task_id": p.task_id,
                    "age_seconds": p.age_seconds,
                    "threshold_seconds": self.max_age,
                    "due": snapshot.due.get(queue, 0),
                },
            )
            for queue, p in sorted(snapshot.oldest_pending.items())
            if p.age_seconds > self.max_age
        ]


@dataclass(frozen=True)
class MissedApprovals:
    """A pending approval request past its deadline, or waiting longer than
    ``expected_decision_seconds`` (this rule's, else the monitor's). One incident per
    request."""

    expected_decision_seconds: float | None = None
    name: str = "missed_approval"

    def __post_init__(self) -> None:
        if self.expected_decision_seconds is not None and self.expected_decision_seconds <= 0:
            raise ConfigurationError("MissedApprovals.expected_decision_seconds must be > 0")

    def check(self, snapshot: Snapshot) -> list[Finding]:
        found = []
        expected = self.expected_decision_seconds
        for item in snapshot.pending_approvals:
            reason = item.missed
            if reason is None and expected is not None and item.waiting_seconds > expected:
                reason = PAST_EXPECTED
            if reason is None:
                continue
            why = (
                "its deadline passed and no worker decided it"
                if reason == PAST_DEADLINE
                else "no decision in the expected time"
            )
            found.append(
                Finding(
                    key=item.request_id,
                    title=(
                        f"Approval {item.request_id} ({item.tool}) has waited "
                        f"{_seconds(item.waiting_seconds)}: {why}"
                    ),
                    details={
                        "request_id": item.request_id,
                        "task_id": item.task_id,
                        "tool": item.tool,
                        "group": item.group,
                        "reason": reason,
                        "waiting_seconds": item.waiting_seconds,
                        "expires_at": item.expires_at,
                    },
                )
            )
        return found


@dataclass(frozen=True)
class ToolSuccessRate:
    """A tool whose calls in the window succeeded less often than ``minimum`` (a fraction),
    once it made at least ``min_calls``. One incident per tool."""

    minimum: float = 0.9
    min_calls: int = 10
    name: str = "tool_success_rate"

    def __post_init__(self) -> None:
        if not 0 < self.minimum <= 1:
            raise ConfigurationError("ToolSuccessRate.minimum is a fraction in (0, 1]")
        if self.min_calls < 1:
            raise ConfigurationError("ToolSuccessRate.min_calls must be at least 1")

    def check(self, snapshot: Snapshot) -> list[Finding]:
        found = []
        for tool in snapshot.tools:
            rate = tool.success_rate
            if rate is None or tool.calls < self.min_calls or rate >= self.minimum:
                continue
            found.append(
                Finding(
                    key=tool.tool,
                    title=(
                        f"Tool {tool.tool}: {rate:.0%} of {tool.calls} calls succeeded in the "
                        f"last {_seconds(snapshot.window_seconds)} (threshold "
                        f"{self.minimum:.0%})"
                    ),
                    details={
                        "tool": tool.tool,
                        "success_rate": rate,
                        "calls": tool.calls,
                        "failure_classes": dict(tool.failure_classes),
                        "threshold": self.minimum,
                    },
                )
            )
        return found


@dataclass(frozen=True)
class InterventionRate:
    """The human-intervention ratio over the window rose above ``maximum``, with at least
    ``min_tasks`` finished tasks. One incident."""

    maximum: float = 0.2
    min_tasks: int = 10
    name: str = "intervention_rate"

    def __post_init__(self) -> None:
        if not 0 <= self.maximum < 1:
            raise ConfigurationError("InterventionRate.maximum is a fraction in [0, 1)")
        if self.min_tasks < 1:
            raise ConfigurationError("InterventionRate.min_tasks must be at least 1")

    def check(self, snapshot: Snapshot) -> list[Finding]:
        stats = snapshot.interventions
        ratio = stats.ratio
        if ratio is None or stats.finished < self.min_tasks or ratio <= self.maximum:
            return []
        return [
            Finding(
                key="all",
                title=(
                    f"{ratio:.0%} of the {stats.finished} tasks finished in the last "
                    f"{_seconds(snapshot.window_seconds)} needed a human intervention "
                    f"(threshold {self.maximum:.0%})"
                ),
                details={
                    "ratio": ratio,
                    "finished": stats.finished,
                    "intervened": stats.intervened,
                    "threshold": self.maximum,
                },
            )
        ]


def default_alert_rules() -> list[AlertRule]:
    """Every built-in rule with its default threshold."""
    return [
        StuckTasks(),
        PendingTooLong(),
        MissedApprovals(),
        ToolSuccessRate(),
        InterventionRate(),
    ]
