"""How tasks, timelines and interventions look in a terminal (Rich).

Every piece of stored text goes through :class:`rich.text.Text`, never Rich markup, so a
step output that contains ``[brackets]`` prints as it is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from handrail import narrative
from handrail.approvals import Approval
from handrail.journal import Event, EventKind, Intervention, TaskStatus
from handrail.ops import TaskView
from handrail.store.base import TaskRecord

EXCERPT = 100

STATUS_STYLE: dict[str, str] = {
    TaskStatus.PENDING: "blue",
    TaskStatus.IN_PROGRESS: "cyan",
    TaskStatus.AWAITING_APPROVAL: "magenta",
    TaskStatus.AWAITING_INTERVENTION: "bold magenta",
    TaskStatus.COMPLETED: "green",
    TaskStatus.FAILED: "bold red",
    TaskStatus.CANCELLED: "yellow",
}

_KIND_STYLE: dict[EventKind, str] = {
    EventKind.STEP_FAILED: "red",
    EventKind.STEP_RETRIED: "yellow",
    EventKind.INTERVENTION_RAISED: "bold magenta",
    EventKind.INTERVENTION_RESOLVED: "magenta",
    EventKind.TASK_CLAIMED: "dim",
    EventKind.TASK_COMPLETED: "green",
    EventKind.TASK_FAILED: "bold red",
    EventKind.TASK_CANCELLED: "yellow",
    EventKind.CANCEL_REQUESTED: "yellow",
    EventKind.TASK_RESUMED: "cyan",
}


# -- small formatters -------------------------------------------------------------------


def when(ts: float | None) -> str:
    """A timestamp as local date and time (``-`` for none)."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def clock_time(ts: float) -> str:
    """A timestamp as local time of day with milliseconds (timeline rows)."""
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")[:-3]


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    return narrative.excerpt(text, limit)


def call_arguments(inputs_json: str | None) -> str:
    """Recorded ``{"args": [...], "kwargs": {...}}`` as ``a, b, key=value``."""
    return narrative.call_arguments(inputs_json)


def event_detail(event: Event) -> str:
    """The one-line gist of an event, times in local time."""
    return narrative.describe(event, when=when, limit=EXCERPT)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _status(value: str) -> Text:
    return Text(value, style=STATUS_STYLE.get(value, ""))


# -- tables -----------------------------------------------------------------------------


def timeline_table(events: Sequence[Event], *, title: str | None = None) -> Table:
    """Every event of a task's journal, in order."""
    table = Table(title=title or f"Timeline ({_count(len(events), 'event')})", title_justify="left")
    table.add_column("time", no_wrap=True)
    table.add_column("seq", justify="right")
    table.add_column("event", no_wrap=True)
    table.add_column("step")
    table.add_column("status")
    table.add_column("agent reasoning", ratio=2)
    table.add_column("actor")
    table.add_column("inputs / outputs / error", ratio=3)
    for event in events:
        step = "" if event.step_index is None else f"{event.step_index} {event.step_name or ''}"
        table.add_row(
            Text(clock_time(event.timestamp)),
            Text(str(event.seq)),
            Text(event.kind.value, style=_KIND_STYLE.get(event.kind, "")),
            Text(step.strip()),
            _status(event.status),
            Text(event.agent_reasoning or "", style="italic"),
            Text(event.actor or ""),
            Text(event_detail(event)),
        )
    return table


def tasks_table(records: Sequence[TaskRecord], *, now: float) -> Table:
    """Task rows, as ``handrail tasks list`` prints them."""
    table = Table(title=f"Tasks ({len(records)})", title_justify="left")
    for name in ("task id", "workflow", "status", "queue", "initiator", "created", "updated"):
        table.add_column(name, no_wrap=name in ("task id", "status"))
    table.add_column("worker")
    for r in records:
        table.add_row(
            Text(r.task_id),
            Text(r.workflow),
            _status(r.status.value),
            Text(r.queue),
            Text(r.initiator or "-"),
            Text(when(r.created_at)),
            Text(when(r.updated_at)),
            Text(r.lease_owner if r.leased(now) and r.lease_owner else "-"),
        )
    return table


def interventions_table(items: Sequence[Intervention], *, title: str | None = None) -> Table:
    """Interventions: what is asked of a human, and for which step."""
    table = Table(title=title or f"Interventions ({len(items)})", title_justify="left")
    table.add_column("intervention id", no_wrap=True)
    table.add_column("task id")
    table.add_column("step")
    table.add_column("kind")
    table.add_column("raised")
    table.add_column("state")
    table.add_column("reason", ratio=3)
    for item in items:
        step = "" if item.step_index is None else f"{item.step_index} {item.step_name or ''}"
        state = (
            Text("open", style="bold magenta")
            if item.open
            else Text(f"{item.resolution} by {item.resolved_by}", style="dim")
        )
        table.add_row(
            Text(item.intervention_id),
            Text(item.task_id),
            Text(step.strip()),
            Text(item.kind),
            Text(when(item.raised_at)),
            state,
            Text(item.reason),
        )
    return table


def _approval_state(item: Approval) -> Text:
    status = item.status
    if status == "pending":
        got = len(item.approvers_approving())
        extra = f" ({got}/{item.request.quorum})" if item.request.quorum > 1 else ""
        return Text(f"pending{extra}", style="bold magenta")
    last = item.denial if status == "denied" else (item.decisions[-1] if item.decisions else None)
    by = f" by {last.by}" if last is not None else ""
    return Text(f"{status}{by}", style="dim")


def approvals_table(items: Sequence[Approval], *, now: float) -> Table:
    """Approval requests: what is asked, of whom, and until when."""
    table = Table(title=f"Approval requests ({len(items)})", title_justify="left")
    table.add_column("request id", no_wrap=True)
    table.add_column("proposed action", ratio=3)
    table.add_column("reversibility")
    table.add_column("approvers")
    table.add_column("deadline")
    table.add_column("state")
    for item in items:
        request = item.request
        deadline = "-"
        if request.expires_at is not None:
            deadline = f"{request.deadline_action or 'denied'} {when(request.expires_at)}"
        table.add_row(
            Text(request.request_id),
            Text(request.proposed_action),
            Text(request.reversibility),
            Text(", ".join(request.approvers) or "any approver"),
            Text(deadline),
            _approval_state(item),
        )
    return table


def approval_view(item: Approval, *, now: float) -> RenderableType:
    """Every field of one request, the task's context summary and the decisions."""
    request = item.request
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:g} s"

    rows = [
        ("request id", request.request_id),
        ("task id", request.task_id),
        ("status", item.status),
        ("requesting agent", request.requesting_agent),
        ("started by", request.initiator or "-"),
        ("proposed action", request.proposed_action),
        ("tool", f"{request.tool} (step {request.step_index})"),
        ("parameters", json.dumps(request.action_parameters, ensure_ascii=False, indent=1)),
        ("agent reasoning", request.agent_reasoning or "-"),
        ("expected outcome", request.expected_outcome),
        ("reversibility", request.reversibility),
        ("auto-approve after", seconds(request.auto_approve_after)),
        ("auto-deny after", seconds(request.auto_deny_after)),
        ("created", when(request.created_at)),
        (
            "expires",
            "never" if request.expires_at is None
            else f"{when(request.expires_at)} ({request.deadline_action or 'denied'})",
        ),
        ("approvers", ", ".join(request.approvers) or "any approver"),
        ("quorum", str(request.quorum)),
        ("group", request.group),
        ("digest", request.digest),
    ]  # fmt: skip
    if request.supersedes:
        rows.append(("supersedes", request.supersedes))
    for label, value in rows:
        table.add_row(label, Text(value))
    decided = Table(title="Decisions", title_justify="left")
    decided.add_column("when")
    decided.add_column("who")
    decided.add_column("decision")
    decided.add_column("comment / reason", ratio=2)
    for d in item.decisions:
        note = d.comment or d.reason or ""
        if d.edited_digest:
            note = f"edited to {d.edited_digest}; {note}".rstrip("; ")
        decided.add_row(when(d.at), d.by, d.decision, Text(note))
    summary = Panel(Text(request.context_summary), title="Context summary", title_align="left")
    parts: list[RenderableType] = [table, summary]
    if item.decisions:
        parts.append(decided)
    return Group(*parts)


# -- one task ---------------------------------------------------------------------------


def _lease(record: TaskRecord, now: float) -> str:
    if record.leased(now):
        return f"held by {record.lease_owner} until {when(record.lease_expires_at)}"
    if record.lease_owner:
        return f"expired (was {record.lease_owner})"
    return "-"


def _schedule(record: TaskRecord, now: float) -> str:
    if record.status.terminal:
        return "-"
    if record.run_at is None:
        return "waits for a human"
    if record.run_at <= now:
        return "runnable now"
    return f"due {when(record.run_at)}"


def next_step_hint(view: TaskView, now: float) -> str | None:
    """What an operator can do with the task now, as a command to run."""
    record, tid = view.record, view.record.task_id
    if record.status is TaskStatus.AWAITING_INTERVENTION:
        ids = [i.intervention_id for i in view.state.open_interventions()]
        first = ids[0] if ids else "INTERVENTION_ID"
        return (
            "resolve it: handrail --as NAME interventions resolve "
            f"{first} --action mark_done|retry|fail"
        )
    if record.status is TaskStatus.AWAITING_APPROVAL:
        ids = [a.request_id for a in view.state.open_approvals()]
        if ids:
            return f"decide it: handrail approvals show {ids[0]}, then approve or deny it"
        return "its gated call is queued behind other requests (approver group at its cap)"
    if record.status is TaskStatus.FAILED:
        return f"run it again from the failed step: handrail --as NAME tasks resume {tid}"
    if record.status is TaskStatus.IN_PROGRESS and not record.leased(now):
        return (
            f"its worker is gone; continue it now: handrail --as NAME tasks resume {tid} "
            "(or wait for any worker to take it over)"
        )
    return None


def task_header(view: TaskView, *, now: float) -> Table:
    """The task's facts, one per row."""
    record, state = view.record, view.state
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows: list[tuple[str, Text]] = [
        ("task", Text(record.task_id, style="bold")),
        ("workflow", Text(record.workflow)),
        ("status", _status(record.status.value)),
        ("queue", Text(record.queue)),
        ("initiator", Text(record.initiator or "-")),
        ("created", Text(when(record.created_at))),
        ("updated", Text(when(record.updated_at))),
        ("inputs", Text(excerpt(call_arguments(state.inputs_json) or "-", 300))),
        ("lease", Text(_lease(record, now))),
        ("schedule", Text(_schedule(record, now))),
    ]
    if record.cancel_requested_by:
        rows.append(("cancel requested by", Text(record.cancel_requested_by, style="yellow")))
    if state.result_json is not None:
        rows.append(("result", Text(excerpt(narrative.decoded(state.result_json), 300))))
    if state.error:
        error = state.error
        where = f" at step {error['step_index']}" if error.get("step_index") is not None else ""
        rows.append(
            (
                "error",
                Text(
                    excerpt(
                        f"{error.get('type', 'Error')}{where}: {error.get('message', '')}", 300
                    ),
                    style="red",
                ),
            )
        )
    hint = next_step_hint(view, now)
    if hint:
        rows.append(("next", Text(hint, style="cyan")))
    for key, value in rows:
        grid.add_row(key, value)
    return grid


def task_view(view: TaskView, *, now: float) -> RenderableType:
    """Header, timeline, open interventions and the context summary of one task."""
    parts: list[RenderableType] = [
        task_header(view, now=now),
        Text(""),
        timeline_table(view.events),
    ]
    open_items = view.state.open_interventions()
    if open_items:
        parts += [Text(""), interventions_table(open_items, title="Open interventions")]
    parts += [
        Text(""),
        Text("Context summary", style="bold"),
        Text(view.state.context_summary()),
    ]
    return Group(*parts)


PIPE_WIDTH = 160


def console(*, stderr: bool = False) -> Console:
    """A console for command output. Piped output (no terminal, no ``$COLUMNS``) gets
    :data:`PIPE_WIDTH` columns rather than Rich's 80, so timelines stay readable in logs."""
    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        out = Console(stderr=stderr, highlight=False, width=PIPE_WIDTH)
    return out
