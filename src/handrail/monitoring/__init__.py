"""Monitoring: the numbers an operator watches, computed from the store so that they hold
across workers, and the faces over them.

- :class:`Monitor` takes :class:`Snapshot` s of a store (cached a few seconds): queue
  depth, oldest due task, stuck tasks, missed approvals, tool calls by tool/outcome/failure
  class with latency and retries, approval time-to-decision, the human-intervention rate;
- :func:`render_metrics` / :func:`metrics_app`: Prometheus exposition of a monitor;
- alert rules (:class:`StuckTasks`, :class:`PendingTooLong`, :class:`MissedApprovals`,
  :class:`ToolSuccessRate`, :class:`InterventionRate`) evaluated by :class:`Alerting`,
  which a worker runs when its app has ``alert_rules``;
- ``handrail status`` and ``handrail metrics`` on the command line.

``import handrail.monitoring`` does not import ``prometheus_client``; the Prometheus
functions import it when called. See docs/monitoring.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from handrail.monitoring.alerts import AlertChange, Alerting, Incident
from handrail.monitoring.monitor import Monitor
from handrail.monitoring.rules import (
    AlertRule,
    Finding,
    InterventionRate,
    MissedApprovals,
    PendingTooLong,
    StuckTasks,
    ToolSuccessRate,
    default_alert_rules,
)
from handrail.monitoring.snapshot import (
    ApprovalStats,
    InterventionStats,
    PendingAge,
    PendingApproval,
    Snapshot,
    StuckTask,
    ToolStats,
    take_snapshot,
)

if TYPE_CHECKING:
    from handrail.store.base import Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The content type of :func:`render_metrics`' output (Prometheus text format 0.0.4)."""


def render_metrics(source: Monitor | Store) -> bytes:
    """The Prometheus text exposition of a :class:`Monitor` (keep one per process) or of a
    store (read once, in full). Serve it with :data:`CONTENT_TYPE`."""
    from handrail.monitoring.prometheus import render_metrics as render

    return render(source)


def metrics_app(monitor: Monitor) -> Callable[..., Any]:
    """An ASGI app serving ``monitor``'s metrics; mount it at ``/metrics``."""
    from handrail.monitoring.prometheus import metrics_app as make

    return make(monitor)


__all__ = [
    "CONTENT_TYPE",
    "AlertChange",
    "AlertRule",
    "Alerting",
    "ApprovalStats",
    "Finding",
    "Incident",
    "InterventionRate",
    "InterventionStats",
    "MissedApprovals",
    "Monitor",
    "PendingAge",
    "PendingApproval",
    "PendingTooLong",
    "Snapshot",
    "StuckTask",
    "StuckTasks",
    "ToolStats",
    "ToolSuccessRate",
    "default_alert_rules",
    "metrics_app",
    "render_metrics",
    "take_snapshot",
]
