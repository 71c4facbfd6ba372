"""``/api/tasks``: list, show and follow tasks; cancel and resume them (operator)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from handrail import ops
from handrail.http.access import Anyone, Operator, Svc
from handrail.http.models import (
    CancelBody,
    EventOut,
    OffCourse,
    StatusOut,
    Task,
    TaskDetail,
    Timeline,
)
from handrail.http.routes.common import ERRORS, TaskId
from handrail.http.timeline import off_course
from handrail.journal import TaskStatus

router = APIRouter(prefix="/api/tasks", tags=["tasks"], responses=ERRORS)


@router.get("", response_model=list[Task], summary="List tasks, newest first")
def list_tasks(
    svc: Svc,
    who: Anyone,
    status: Annotated[list[TaskStatus] | None, Query(description="Repeatable.")] = None,
    workflow: Annotated[str | None, Query(max_length=500)] = None,
    queue: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> list[Task]:
    records = ops.list_tasks(
        svc.store, statuses=status or None, workflow=workflow, queue=queue, limit=limit
    )
    return [Task.of(r) for r in records]


@router.get("/{task_id}", response_model=TaskDetail, summary="Show one task")
def show_task(svc: Svc, who: Anyone, task_id: TaskId) -> TaskDetail:
    return TaskDetail.of(ops.show_task(svc.store, task_id))


@router.get(
    "/{task_id}/timeline",
    response_model=Timeline,
    summary="Every event of a task's journal, and where it went off course",
)
def timeline(svc: Svc, who: Anyone, task_id: TaskId) -> Timeline:
    view = ops.show_task(svc.store, task_id)
    found = off_course(view.events)
    marker = None
    if found is not None:
        event, reason = found
        marker = OffCourse(
            seq=event.seq,
            kind=event.kind.value,
            step_index=event.step_index,
            step_name=event.step_name,
            reason=reason,
        )
    return Timeline(
        task_id=task_id,
        status=view.record.status,
        off_course=marker,
        events=[EventOut.of(e) for e in view.events],
    )


@router.post("/{task_id}/cancel", response_model=StatusOut, summary="Cancel a task")
def cancel(svc: Svc, who: Operator, task_id: TaskId, body: CancelBody | None = None) -> StatusOut:
    """An idle task is cancelled now; a running one stops at its next step boundary."""
    reason = body.reason if body is not None else None
    status = ops.cancel_task(svc.store, svc.clock, task_id, actor=who.name, reason=reason or None)
    return StatusOut(task_id=task_id, status=status)


@router.post("/{task_id}/resume", response_model=StatusOut, summary="Resume a task")
def resume(svc: Svc, who: Operator, task_id: TaskId) -> StatusOut:
    """A failed task runs again from the failed step; a stalled one continues now."""
    status = ops.resume_task(svc.store, svc.clock, task_id, actor=who.name)
    return StatusOut(task_id=task_id, status=status)
