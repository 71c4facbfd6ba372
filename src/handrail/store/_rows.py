"""Events and task rows to and from database rows, shared by the SQL backends."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from handrail.journal import Event, EventKind, TaskStatus
from handrail.store.base import TaskRecord, _Unset

EVENT_COLUMNS = (
    "task_id, seq, kind, ts, step_index, step_name, inputs, outputs, reasoning, approval, "
    "error, actor, data"
)
TASK_COLUMNS = (
    "task_id, workflow, queue, status, created_at, updated_at, run_at, lease_owner, "
    "lease_expires_at, epoch, cancel_requested_by, initiator, max_execution_seconds"
)

_KINDS = {k.value: k for k in EventKind}
_STATUSES = {s.value: s for s in TaskStatus}


def event_to_row(e: Event) -> tuple[Any, ...]:
    return (
        e.task_id,
        e.seq,
        e.kind.value,
        e.timestamp,
        e.step_index,
        e.step_name,
        e.inputs_json,
        e.outputs_json,
        e.agent_reasoning,
        1 if e.requires_human_approval else 0,
        None if e.error is None else json.dumps(e.error, separators=(",", ":")),
        e.actor,
        None if e.data is None else json.dumps(e.data, separators=(",", ":")),
    )


def row_to_event(r: Sequence[Any]) -> Event:
    error, data = r[10], r[12]
    return _new_event(
        Event,
        (
            r[0],
            r[1],
            _KINDS[r[2]],
            r[3],
            r[4],
            r[5],
            r[6],
            r[7],
            r[8],
            r[9] == 1,
            None if error is None else json.loads(error),
            r[11],
            None if data is None else json.loads(data),
        ),
    )


_new_event = tuple.__new__


def row_to_task(r: Sequence[Any]) -> TaskRecord:
    return TaskRecord(
        task_id=r[0],
        workflow=r[1],
        queue=r[2],
        status=_STATUSES[r[3]],
        created_at=r[4],
        updated_at=r[5],
        run_at=r[6],
        lease_owner=r[7],
        lease_expires_at=r[8],
        epoch=r[9],
        cancel_requested_by=r[10],
        initiator=r[11],
        max_execution_seconds=r[12],
    )


def as_json_list(values: Sequence[str] | None) -> str | None:
    return None if values is None else json.dumps(list(values))


def task_update_params(
    task_id: str,
    now: float,
    status: TaskStatus | None,
    run_at: float | _Unset | None,
    release: bool,
) -> dict[str, Any] | None:
    """The parameters of a backend's ``update_task`` query, or ``None`` when the write
    leaves the task row as it is (the common case: a step's events only)."""
    set_run_at = not isinstance(run_at, _Unset)
    if status is None and not set_run_at and not release:
        return None
    return {
        "task_id": task_id,
        "now": now,
        "status": None if status is None else status.value,
        "set_run_at": set_run_at,
        "run_at": run_at if set_run_at else None,
        "release": release,
    }
