"""Events and task rows to and from database rows, shared by the SQL backends."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from handrail.journal import Event, EventKind, TaskStatus
from handrail.store.base import TaskRecord

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
    return Event(
        task_id=r[0],
        seq=r[1],
        kind=_KINDS[r[2]],
        timestamp=r[3],
        step_index=r[4],
        step_name=r[5],
        inputs_json=r[6],
        outputs_json=r[7],
        agent_reasoning=r[8],
        requires_human_approval=bool(r[9]),
        error=None if r[10] is None else json.loads(r[10]),
        actor=r[11],
        data=None if r[12] is None else json.loads(r[12]),
    )


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
