"""How ``handrail status`` looks in a terminal: one screen over a monitoring snapshot.

Stored text (task ids, tool names, alert titles) goes through :class:`rich.text.Text`,
never Rich markup, as in :mod:`handrail.cli.render`.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from handrail.cli.render import STATUS_STYLE, when
from handrail.monitoring.rules import Finding
from handrail.monitoring.snapshot import UNFINISHED, Snapshot

Firing = Sequence[tuple[str, Finding]]
"""``(rule name, finding)`` pairs."""


def duration(seconds: float | None) -> str:
    """Seconds as ``850 ms``, ``42 s``, ``12 min`` or ``3.5 h`` (``-`` for none)."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _note(text: str, style: str = "green") -> Text:
    return Text(text, style=style)


def queues_table(s: Snapshot) -> RenderableType:
    """Unfinished tasks by queue and status, due tasks and the longest wait."""
    if not s.queues:
        return _note("Queues: no unfinished tasks")
    table = Table(title="Queues", title_justify="left")
    table.add_column("queue")
    for status in UNFINISHED:
        table.add_column(Text(status.value, style=STATUS_STYLE.get(status, "")), justify="right")
    table.add_column("due", justify="right")
    table.add_column("oldest due waits", justify="right")
    for queue in s.queues:
        oldest = s.oldest_pending.get(queue)
        table.add_row(
            Text(queue),
            *[str(s.tasks.get((queue, status.value), 0)) for status in UNFINISHED],
            str(s.due.get(queue, 0)),
            duration(None if oldest is None else oldest.age_seconds),
        )
    return table


def stuck_table(s: Snapshot) -> RenderableType:
    if not s.stuck:
        return _note("Stuck tasks: none")
    table = Table(title=f"Stuck tasks ({len(s.stuck)})", title_justify="left", style="red")
    table.add_column("task")
    table.add_column("workflow")
    table.add_column("queue")
    table.add_column("reason")
    table.add_column("for", justify="right")
    table.add_column("worker")
    for task in s.stuck:
        table.add_row(
            Text(task.task_id),
            Text(task.workflow),
            Text(task.queue),
            Text(task.reason, style="red"),
            duration(task.seconds),
            Text(task.worker or "-"),
        )
    return table


def approvals_part(s: Snapshot) -> RenderableType:
    a = s.approvals
    line = Text(
        f"Approvals: {a.pending} pending, {a.queued} queued; {a.decided} decided in the window "
        f"({a.approved} approved, {a.denied} denied, {a.by_timer} by timer), time to decision "
        f"p50 {duration(a.decision_p50)}, p95 {duration(a.decision_p95)}"
    )
    parts: list[RenderableType] = [line]
    if s.notices:
        parts.append(notifications_line(s))
    missed = s.missed_approvals
    if not missed:
        return Group(*parts, _note("Missed approvals: none"))
    table = Table(title=f"Missed approvals ({len(missed)})", title_justify="left", style="red")
    table.add_column("request")
    table.add_column("tool")
    table.add_column("group")
    table.add_column("waiting", justify="right")
    table.add_column("deadline")
    table.add_column("why")
    for item in missed:
        table.add_row(
            Text(item.request_id),
            Text(item.tool),
            Text(item.group),
            duration(item.waiting_seconds),
            when(item.expires_at),
            Text(item.missed or "", style="red"),
        )
    return Group(*parts, table)


NOTICE_LATE = 300.0
"""Seconds after which an unsent notification is shown in red (a dead holder's wait)."""


def notifications_line(s: Snapshot) -> Text:
    """The outbox per notifier: red when one was given up or waits too long."""
    late = False
    parts = []
    for name, c in sorted(s.notices.items()):
        waited = None if c.oldest_queued_at is None else s.taken_at - c.oldest_queued_at
        late = late or c.dropped > 0 or (waited is not None and waited > NOTICE_LATE)
        oldest = "" if waited is None else f" (oldest {duration(waited)})"
        parts.append(f"{name} {c.queued} queued{oldest}, {c.sent} sent, {c.dropped} given up")
    return Text("Notifications: " + "; ".join(parts), style="red" if late else "")


def tools_table(s: Snapshot) -> RenderableType:
    if not s.tools:
        return _note("Tools: no calls in the window", style="dim")
    table = Table(title="Tools (in the window)", title_justify="left")
    table.add_column("tool")
    table.add_column("calls", justify="right")
    table.add_column("success", justify="right")
    table.add_column("failures by class")
    table.add_column("retries", justify="right")
    table.add_column("p50", justify="right")
    table.add_column("p95", justify="right")
    table.add_column("max", justify="right")
    for tool in s.tools:
        rate = tool.success_rate
        style = "" if rate is None or rate >= 0.9 else "bold red"
        failures = ", ".join(f"{cls} {n}" for cls, n in tool.failure_classes.items())
        table.add_row(
            Text(tool.tool),
            str(tool.calls),
            Text(_percent(rate), style=style),
            Text(failures or "-"),
            str(tool.retries),
            duration(tool.latency_p50),
            duration(tool.latency_p95),
            duration(tool.latency_max),
        )
    return table


SINK_LATE = 300.0
"""Seconds after which an undelivered audit record is shown in red."""


def sinks_line(s: Snapshot) -> Text:
    """The audit log's outbox per sink: red when a record waits too long."""
    late = False
    parts = []
    for name, b in sorted(s.sinks.items()):
        waited = None if b.oldest_logged_at is None else s.taken_at - b.oldest_logged_at
        late = late or (waited is not None and waited > SINK_LATE)
        text = f"{name} {b.pending} pending, {b.delivered} delivered"
        if waited is not None:
            text += f" (oldest {duration(waited)}"
            text += f", {b.attempts} attempts: {b.last_error})" if b.last_error else ")"
        parts.append(text)
    return Text("Audit sinks: " + "; ".join(parts), style="red" if late else "")


def interventions_line(s: Snapshot) -> Text:
    i = s.interventions
    return Text(
        f"Human intervention: {_percent(i.ratio)} of {i.finished} tasks finished in the window "
        f"({i.intervened} needed a human beyond their policy); {_percent(i.approval_ratio)} "
        "asked for an approval"
    )


def alerts_part(firing: Firing) -> RenderableType:
    if not firing:
        return _note("Alerts: none firing")
    table = Table(title=f"Alerts firing ({len(firing)})", title_justify="left", style="bold red")
    table.add_column("rule")
    table.add_column("alert")
    for rule, finding in firing:
        table.add_row(Text(rule), Text(finding.title))
    return table


def status_view(s: Snapshot, firing: Firing) -> RenderableType:
    """The whole ``handrail status`` screen."""
    header = Text(
        f"handrail status at {when(s.taken_at)}; window {duration(s.window_seconds)}",
        style="bold",
    )
    parts: list[RenderableType] = [header]
    if s.truncated:
        parts.append(_note("(only the newest task rows were read: counts are partial)", "yellow"))
    parts += [
        queues_table(s),
        stuck_table(s),
        approvals_part(s),
        tools_table(s),
        interventions_line(s),
        *([sinks_line(s)] if s.sinks else []),
        alerts_part(firing),
    ]
    return Group(*parts)
