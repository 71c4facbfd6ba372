"""Prometheus exposition: a custom collector that turns a snapshot into metric families.

Names follow Prometheus conventions: the ``handrail_`` prefix, base units (seconds),
``_total`` on counters. Gauges describe the store now; counters and histograms are the
audit log's cumulative totals (see :mod:`handrail.monitoring.totals`), so ``rate()`` and
``histogram_quantile()`` work on them. docs/monitoring.md lists every metric.

Serve them from an HTTP API with :func:`metrics_app` (an ASGI app to mount at
``/metrics``) or :func:`render_metrics` (the text exposition as bytes, to return with
:data:`CONTENT_TYPE`). Keep one :class:`~handrail.monitoring.Monitor` per process: it
caches snapshots and reads the audit log incrementally.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from handrail.monitoring.monitor import Monitor
from handrail.monitoring.snapshot import (
    LEASE_EXPIRED,
    OVERDUE,
    PAST_DEADLINE,
    PAST_EXPECTED,
    UNFINISHED,
    Snapshot,
)

if TYPE_CHECKING:
    from handrail.monitoring.totals import Cumulative, Histogram
    from handrail.store.base import Store

__all__ = [
    "CONTENT_TYPE",
    "HandrailCollector",
    "families",
    "metrics_app",
    "metrics_registry",
    "render_metrics",
]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The content type of :func:`render_metrics`' output (text format 0.0.4)."""


class HandrailCollector:
    """A ``prometheus_client`` collector over one :class:`Monitor`: every scrape reads
    the monitor's current (cached) snapshot."""

    def __init__(self, monitor: Monitor):
        self.monitor = monitor

    def describe(self) -> Iterable[Metric]:
        return []  # no collect at registration: it would read the store

    def collect(self) -> Iterator[Metric]:
        yield from families(self.monitor.snapshot())


def families(snapshot: Snapshot) -> Iterator[Metric]:
    """The metric families of ``snapshot``."""
    yield from _tasks(snapshot)
    yield from _approvals(snapshot)
    yield from _interventions(snapshot)
    yield from _notices(snapshot)
    yield from _sinks(snapshot)
    if snapshot.totals is not None:
        yield from _totals(snapshot.totals)
    yield from _self(snapshot)


def _tasks(s: Snapshot) -> Iterator[Metric]:
    tasks = GaugeMetricFamily(
        "handrail_tasks",
        "Unfinished tasks by queue and status (the queue depth).",
        labels=["queue", "status"],
    )
    due = GaugeMetricFamily(
        "handrail_tasks_due",
        "Tasks whose due time has come and that no live lease holds: waiting for a worker.",
        labels=["queue"],
    )
    oldest = GaugeMetricFamily(
        "handrail_oldest_pending_task_age_seconds",
        "How long the oldest due task of the queue has waited for a worker (0: none waits).",
        labels=["queue"],
    )
    for queue in s.queues:
        for status in UNFINISHED:
            tasks.add_metric([queue, status.value], s.tasks.get((queue, status.value), 0))
        due.add_metric([queue], s.due.get(queue, 0))
        pending = s.oldest_pending.get(queue)
        oldest.add_metric([queue], 0.0 if pending is None else pending.age_seconds)
    stuck = GaugeMetricFamily(
        "handrail_stuck_tasks",
        "In-progress tasks whose lease expired (lease_expired) or that are in progress past "
        "their max_execution_time (overdue).",
        labels=["reason"],
    )
    for reason in (LEASE_EXPIRED, OVERDUE):
        stuck.add_metric([reason], sum(1 for t in s.stuck if t.reason == reason))
    yield from (tasks, due, oldest, stuck)


def _approvals(s: Snapshot) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "handrail_pending_approvals",
        "Approval requests waiting for a decision.",
        value=s.approvals.pending,
    )
    yield GaugeMetricFamily(
        "handrail_queued_approvals",
        "Gated calls queued behind a full approver group (no request made yet).",
        value=s.approvals.queued,
    )
    missed = GaugeMetricFamily(
        "handrail_missed_approvals",
        "Pending approval requests past their deadline (past_deadline) or past the expected "
        "decision time (past_expected).",
        labels=["reason"],
    )
    for reason in (PAST_DEADLINE, PAST_EXPECTED):
        missed.add_metric([reason], sum(1 for p in s.missed_approvals if p.missed == reason))
    yield missed


def _interventions(s: Snapshot) -> Iterator[Metric]:
    stats = s.interventions
    yield GaugeMetricFamily(
        "handrail_human_intervention_ratio",
        "Of the tasks finished in the window, the fraction that raised an intervention or was "
        "resumed by an operator (0 when none finished).",
        value=stats.ratio or 0.0,
    )
    yield GaugeMetricFamily(
        "handrail_human_approval_ratio",
        "Of the tasks finished in the window, the fraction that asked for an approval.",
        value=stats.approval_ratio or 0.0,
    )
    yield GaugeMetricFamily(
        "handrail_window_tasks_finished",
        "Tasks finished (completed, failed or cancelled) in the window.",
        value=stats.finished,
    )
    yield GaugeMetricFamily(
        "handrail_window_tasks_intervened",
        "Tasks finished in the window that needed a human intervention.",
        value=stats.intervened,
    )


def _notices(s: Snapshot) -> Iterator[Metric]:
    queued = GaugeMetricFamily(
        "handrail_notifications_queued",
        "Notifications kept in the outbox and not sent yet, by notifier.",
        labels=["notifier"],
    )
    oldest = GaugeMetricFamily(
        "handrail_notifications_oldest_queued_age_seconds",
        "How long the oldest unsent notification has waited, by notifier (0 if none).",
        labels=["notifier"],
    )
    sent = CounterMetricFamily(
        "handrail_notifications_sent", "Notifications sent, by notifier.", labels=["notifier"]
    )
    dropped = GaugeMetricFamily(  # not a counter: an operator's retry takes them back
        "handrail_notifications_dropped",
        "Notifications given up after the dispatcher's last attempt and not retried, by "
        "notifier (`handrail notifications retry` queues them again).",
        labels=["notifier"],
    )
    for name, counts in sorted(s.notices.items()):
        queued.add_metric([name], counts.queued)
        first = counts.oldest_queued_at
        oldest.add_metric([name], 0.0 if first is None else max(0.0, s.taken_at - first))
        sent.add_metric([name], counts.sent)
        dropped.add_metric([name], counts.dropped)
    yield from (queued, oldest, sent, dropped)


def _sinks(s: Snapshot) -> Iterator[Metric]:
    pending = GaugeMetricFamily(
        "handrail_audit_sink_pending",
        "Audit records queued for a sink and not delivered yet, by sink.",
        labels=["sink"],
    )
    oldest = GaugeMetricFamily(
        "handrail_audit_sink_oldest_pending_age_seconds",
        "How long ago the oldest undelivered record of a sink was logged (0 if none).",
        labels=["sink"],
    )
    delivered = CounterMetricFamily(
        "handrail_audit_sink_delivered", "Audit records delivered, by sink.", labels=["sink"]
    )
    for name, backlog in sorted(s.sinks.items()):
        pending.add_metric([name], backlog.pending)
        first = backlog.oldest_logged_at
        oldest.add_metric([name], 0.0 if first is None else max(0.0, s.taken_at - first))
        delivered.add_metric([name], backlog.delivered)
    yield from (pending, oldest, delivered)


def _totals(t: Cumulative) -> Iterator[Metric]:
    calls = CounterMetricFamily(
        "handrail_tool_calls",
        "Tool-call attempts by tool, outcome and failure class (none for a success).",
        labels=["tool", "outcome", "failure_class"],
    )
    for (tool, outcome, failure), n in sorted(t.calls.items()):
        calls.add_metric([tool, outcome, failure], n)
    retries = CounterMetricFamily(
        "handrail_tool_retries",
        "Tool-call attempts after a step's first (retries), by tool.",
        labels=["tool"],
    )
    for tool, n in sorted(t.retries.items()):
        retries.add_metric([tool], n)
    latency = HistogramMetricFamily(
        "handrail_tool_call_duration_seconds",
        "How long tool calls took, by tool.",
        labels=["tool"],
    )
    for tool, histogram in sorted(t.latency.items()):
        latency.add_metric([tool], _buckets(histogram), histogram.total)
    decisions = HistogramMetricFamily(
        "handrail_approval_decision_seconds",
        "Time from an approval request to its decision, by decision (approved, denied).",
        labels=["decision"],
    )
    for decision, histogram in sorted(t.decisions.items()):
        decisions.add_metric([decision], _buckets(histogram), histogram.total)
    yield from (calls, retries, latency, decisions)
    yield CounterMetricFamily(
        "handrail_audit_records",
        "Records in the audit log, of every kind.",
        value=t.records,
    )


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    return [
        ("+Inf" if bound == float("inf") else _float(bound), float(n))
        for bound, n in histogram.cumulative()
    ]


def _float(value: float) -> str:
    return repr(float(value))


def _self(s: Snapshot) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "handrail_monitoring_window_seconds",
        "The window of the windowed figures (intervention ratio, finished tasks).",
        value=s.window_seconds,
    )
    yield GaugeMetricFamily(
        "handrail_monitoring_snapshot_duration_seconds",
        "How long computing the last snapshot took.",
        value=s.elapsed_seconds,
    )
    yield GaugeMetricFamily(
        "handrail_monitoring_truncated",
        "1 if the snapshot read only the newest max_tasks task rows of a status group.",
        value=1.0 if s.truncated else 0.0,
    )


# -- serving ---------------------------------------------------------------------------------


def metrics_registry(monitor: Monitor) -> CollectorRegistry:
    """A registry holding only handrail's collector over ``monitor``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HandrailCollector(monitor))
    return registry


def render_metrics(source: Monitor | Store) -> bytes:
    """The Prometheus text exposition (:data:`CONTENT_TYPE`) of ``source``: a
    :class:`Monitor` (reuse one per process), or a store (read once in full)."""
    monitor = source if isinstance(source, Monitor) else Monitor(source)
    return generate_latest(metrics_registry(monitor))


def metrics_app(monitor: Monitor) -> Callable[..., Any]:
    """An ASGI app serving ``monitor``'s metrics (content negotiation and gzip included);
    mount it at ``/metrics``: ``fastapi_app.mount("/metrics", metrics_app(monitor))``."""
    from prometheus_client import make_asgi_app

    return make_asgi_app(metrics_registry(monitor))
