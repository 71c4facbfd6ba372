"""Reading a task's journal for people: where it went off course, and one line per event."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from handrail import narrative
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
    return narrative.excerpt(text, limit)


def describe(event: Event) -> str:
    """The gist of an event in one line, times in UTC."""
    return narrative.describe(event, when=when, limit=EXCERPT)
