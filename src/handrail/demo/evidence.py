"""Reading the demo's journal: one step's events, its attempts, its failures."""

from __future__ import annotations

import json
from typing import Any

from handrail.cli.render import clock_time
from handrail.journal import Event, EventKind

_STEP_KINDS = frozenset(
    {
        EventKind.STEP_STARTED,
        EventKind.STEP_RETRIED,
        EventKind.STEP_FAILED,
        EventKind.STEP_COMPLETED,
    }
)


def step_events(events: list[Event], tool: str) -> list[Event]:
    """The step events of ``tool`` (called once in the demo), in order."""
    return [e for e in events if e.step_name == tool and e.kind in _STEP_KINDS]


def first(events: list[Event], kind: EventKind, after: Event | None = None) -> Event | None:
    """The first event of ``kind``, after ``after`` if given."""
    floor = after.seq if after is not None else -1
    return next((e for e in events if e.kind is kind and e.seq > floor), None)


def _kwargs(inputs_json: str | None) -> dict[str, Any]:
    value = json.loads(inputs_json) if inputs_json else {}
    kwargs: dict[str, Any] = value.get("kwargs") or {}
    return kwargs


def refreshed_inputs(events: list[Event], retried: Event) -> dict[str, tuple[Any, Any]]:
    """The arguments a refresh changed: ``{name: (before, after)}``."""
    started = next(
        e for e in events if e.kind is EventKind.STEP_STARTED and e.step_index == retried.step_index
    )
    before, after = _kwargs(started.inputs_json), _kwargs(retried.inputs_json)
    return {
        k: (before.get(k), after.get(k))
        for k in sorted(set(before) | set(after))
        if before.get(k) != after.get(k)
    }


def describe_failure(event: Event) -> str:
    """A STEP_FAILED event as one line: the error, its class and what handrail decided."""
    error, data = event.error or {}, event.data or {}
    status = f" (HTTP {error['http_status']})" if "http_status" in error else ""
    decision = str(data.get("decision", "?"))
    then = decision
    if decision == "retry" and data.get("retry_at") is not None:
        due = float(data["retry_at"])
        then = (
            f"retry at {clock_time(due)} (+{due - event.timestamp:.2f}s, a due time in the journal)"
        )
    elif decision == "refresh":
        then = "refresh the inputs and retry at once"
    elif decision == "intervene":
        then = "raise an intervention for a human"
    return (
        f"step {event.step_index} {event.step_name} attempt {error.get('attempt', '?')} failed: "
        f"{error.get('type', 'Error')}{status}, class {error.get('failure_class', '?')} -> {then}"
    )


def attempts(steps: list[Event]) -> int:
    """How many attempts the journal shows for one step: its start and each retry."""
    return sum(1 for e in steps if e.kind in (EventKind.STEP_STARTED, EventKind.STEP_RETRIED))


def attempt_of(event: Event | None) -> int:
    """The attempt number a STEP_RETRIED event records (0 for none)."""
    return int((event.data or {}).get("attempt", 0)) if event is not None else 0
