"""Events told in one line, for people: the same words in the CLI and the dashboard.

Each face passes its own way of writing a time (local time in a terminal, UTC on the web)
and its line length.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from handrail.journal import Event, EventKind

TimeFormat = Callable[[float | None], str]


def excerpt(text: str, limit: int = 100) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def compact(value: Any) -> str:
    """A value as compact one-line JSON."""
    return json.dumps(value, default=str, ensure_ascii=False)


def call_arguments(inputs_json: str | None) -> str:
    """Recorded ``{"args": [...], "kwargs": {...}}`` as ``a, b, key=value``."""
    if inputs_json is None:
        return ""
    value = json.loads(inputs_json)
    if not isinstance(value, dict) or set(value) - {"args", "kwargs"}:
        return compact(value)
    parts = [compact(a) for a in value.get("args") or []]
    parts += [f"{k}={compact(v)}" for k, v in (value.get("kwargs") or {}).items()]
    return ", ".join(parts)


def decoded(text: str | None) -> str:
    """Stored JSON text as compact one-line JSON."""
    return "" if text is None else compact(json.loads(text))


def describe(event: Event, *, when: TimeFormat, limit: int = 100) -> str:
    """The one-line gist of an event: inputs, output, error or the kind's own facts.
    ``when`` writes a time; lines are cut to ``limit`` characters."""

    def cut(text: str) -> str:
        return excerpt(text, limit)

    data = event.data or {}
    kind = event.kind
    if kind in (EventKind.TASK_CREATED, EventKind.STEP_STARTED):
        detail = f"in: {call_arguments(event.inputs_json)}"
        if kind is EventKind.TASK_CREATED:
            where = f"workflow {data.get('workflow', '?')}, queue {data.get('queue', '?')}"
            detail = f"{where}; {detail}"
        return cut(detail)
    if kind in (EventKind.STEP_COMPLETED, EventKind.TASK_COMPLETED):
        label = "out" if kind is EventKind.STEP_COMPLETED else "result"
        via = f" (via {data['via']})" if data.get("via") else ""
        return cut(f"{label}: {decoded(event.outputs_json)}{via}")
    if kind in (EventKind.STEP_FAILED, EventKind.TASK_FAILED):
        error = event.error or {}
        handling = ""
        if error.get("failure_class"):
            handling = f" [{error['failure_class']}, attempt {error.get('attempt', '?')}"
            if data.get("decision"):
                handling += f" -> {data['decision']}"
            if data.get("retry_at") is not None:
                handling += f" at {when(float(data['retry_at']))}"
            handling += "]"
        return cut(f"error: {error.get('type', 'Error')}: {error.get('message', '')}{handling}")
    if kind is EventKind.TASK_CLAIMED:
        return f"worker {data.get('worker', '?')}, epoch {data.get('epoch', '?')}"
    if kind is EventKind.STEP_RETRIED:
        return cut(f"attempt {data.get('attempt', '?')}: {data.get('reason', '')}")
    if kind is EventKind.TIMER_SET:
        due = data.get("due")
        return f"due {when(float(due))}" if due is not None else ""
    if kind is EventKind.APPROVAL_REQUESTED:
        deadline = data.get("expires_at")
        due = f"; decides itself {when(float(deadline))}" if deadline is not None else ""
        return cut(
            f"approval {data.get('request_id', '?')}: {data.get('proposed_action', '')} "
            f"[{data.get('reversibility', '?')}]{due}"
        )
    if kind is EventKind.APPROVAL_DECIDED:
        how = data.get("decision", "?")
        why = f" ({data['reason']})" if data.get("reason") else ""
        comment = f": {data['comment']}" if data.get("comment") else ""
        edited = " with edited parameters" if data.get("edited_parameters") else ""
        return cut(
            f"approval {data.get('request_id', '?')} {how} by {event.actor}{edited}{why}{comment}"
        )
    if kind is EventKind.APPROVAL_QUEUED:
        return cut(
            f"approver group {data.get('group', '?')} has {data.get('pending', '?')} pending "
            f"(cap {data.get('cap', '?')}); queued"
        )
    if kind is EventKind.APPROVAL_REMINDED:
        return f"approvers reminded of {data.get('request_id', '?')}"
    if kind is EventKind.INTERVENTION_RAISED:
        return cut(
            f"intervention {data.get('intervention_id', '?')} ({data.get('kind', '?')}): "
            f"{data.get('reason', '')}"
        )
    if kind is EventKind.INTERVENTION_RESOLVED:
        comment = f": {data['comment']}" if data.get("comment") else ""
        return cut(
            f"intervention {data.get('intervention_id', '?')} -> {data.get('action', '?')}"
            + comment
        )
    if data.get("reason"):
        return cut(f"reason: {data['reason']}")
    return ""
