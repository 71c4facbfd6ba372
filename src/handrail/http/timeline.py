"""Reading a task's journal for people: where it went off course, and one line per event."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from handrail.journal import Event, EventKind

EXCERPT = 160

_OFF_COURSE = frozenset(
    {EventKind.STEP_FAILED, EventKind.INTERVENTION_RAISED, EventKind.TASK_FAILED}
)


def _step(event: Event) -> str:
    if event.step_index is None:
        return ""
    return f"step {event.step_index} ({event.step_name or '?'})"


def off_course(events: Sequence[Event]) -> tuple[Event, str] | None:
    """The first event where the task left its plan (a failed step, an intervention, a
    denied approval, a failed task) and a sentence saying so; ``None`` if it never did."""
    for event in events:
        data = event.data or {}
        if event.kind is EventKind.APPROVAL_DECIDED and data.get("decision") == "denied":
            why = data.get("comment") or data.get("reason") or "no comment"
            return event, f"approval {data.get('request_id', '?')} denied by {event.actor}: {why}"
        if event.kind in _OFF_COURSE:
            where = _step(event) or "the task"
            if event.kind is EventKind.INTERVENTION_RAISED:
                return event, f"{where} needs a human: {data.get('reason', '')}".rstrip(": ")
            error = event.error or {}
            return event, (
                f"{where} failed: {error.get('type', 'Error')}: {error.get('message', '')}"
            ).rstrip(": ")
    return None


def when(ts: float | None) -> str:
    """A timestamp as UTC date and time (``-`` for none)."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(seconds: float) -> str:
    """A duration, roughly: ``45 s``, ``12 min``, ``3 h``, ``2 d``."""
    s = abs(seconds)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172_800:
        return f"{s / 3600:.0f} h"
    return f"{s / 86_400:.0f} d"


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def compact(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _decoded(text: str | None) -> str:
    return "" if text is None else compact(json.loads(text))


def describe(event: Event) -> str:
    """The gist of an event in one line: inputs, output, error or the kind's own facts."""
    data = event.data or {}
    kind = event.kind
    if kind is EventKind.TASK_CREATED:
        where = f"workflow {data.get('workflow', '?')}, queue {data.get('queue', '?')}"
        return excerpt(f"{where}; in: {_decoded(event.inputs_json)}")
    if kind is EventKind.STEP_STARTED:
        return excerpt(f"in: {_decoded(event.inputs_json)}")
    if kind in (EventKind.STEP_COMPLETED, EventKind.TASK_COMPLETED):
        label = "out" if kind is EventKind.STEP_COMPLETED else "result"
        via = f" (via {data['via']})" if data.get("via") else ""
        return excerpt(f"{label}: {_decoded(event.outputs_json)}{via}")
    if kind in (EventKind.STEP_FAILED, EventKind.TASK_FAILED):
        error = event.error or {}
        handling = ""
        if error.get("failure_class"):
            handling = f" [{error['failure_class']}, attempt {error.get('attempt', '?')}"
            if data.get("decision"):
                handling += f" -> {data['decision']}"
            handling += "]"
        return excerpt(f"{error.get('type', 'Error')}: {error.get('message', '')}{handling}")
    if kind is EventKind.TASK_CLAIMED:
        return f"worker {data.get('worker', '?')}, epoch {data.get('epoch', '?')}"
    if kind is EventKind.STEP_RETRIED:
        return excerpt(f"attempt {data.get('attempt', '?')}: {data.get('reason', '')}")
    if kind is EventKind.APPROVAL_REQUESTED:
        return excerpt(
            f"approval {data.get('request_id', '?')}: {data.get('proposed_action', '')} "
            f"[{data.get('reversibility', '?')}]"
        )
    if kind is EventKind.APPROVAL_DECIDED:
        why = f" ({data['reason']})" if data.get("reason") else ""
        comment = f": {data['comment']}" if data.get("comment") else ""
        edited = " with edited parameters" if data.get("edited_parameters") else ""
        return excerpt(
            f"approval {data.get('request_id', '?')} {data.get('decision', '?')} by "
            f"{event.actor}{edited}{why}{comment}"
        )
    if kind is EventKind.APPROVAL_QUEUED:
        return excerpt(f"approver group {data.get('group', '?')} is at its cap; queued")
    if kind is EventKind.APPROVAL_REMINDED:
        return f"approvers reminded of {data.get('request_id', '?')}"
    if kind is EventKind.INTERVENTION_RAISED:
        return excerpt(
            f"intervention {data.get('intervention_id', '?')} ({data.get('kind', '?')}): "
            f"{data.get('reason', '')}"
        )
    if kind is EventKind.INTERVENTION_RESOLVED:
        comment = f": {data['comment']}" if data.get("comment") else ""
        return excerpt(
            f"intervention {data.get('intervention_id', '?')} -> {data.get('action', '?')}"
            + comment
        )
    if data.get("reason"):
        return excerpt(f"reason: {data['reason']}")
    return ""
