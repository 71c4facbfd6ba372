"""``/api/interventions``: what the runtime asks of a human, and resolving it (operator)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from handrail import ops
from handrail.http.access import Anyone, Operator, Svc
from handrail.http.models import InterventionOut, ResolveBody, StatusOut
from handrail.http.routes.common import ERRORS

router = APIRouter(prefix="/api/interventions", tags=["interventions"], responses=ERRORS)


@router.get("", response_model=list[InterventionOut], summary="List interventions")
def list_interventions(
    svc: Svc,
    who: Anyone,
    task_id: Annotated[str | None, Query(max_length=500, description="Only this task's.")] = None,
    include_resolved: Annotated[bool, Query(description="Resolved ones too.")] = False,
) -> list[InterventionOut]:
    """Open interventions, oldest first (every one with ``include_resolved``)."""
    items = ops.list_interventions(
        svc.store, task_id=task_id or None, include_resolved=include_resolved
    )
    return [InterventionOut.of(i) for i in items]


@router.post(
    "/{intervention_id:path}/resolution",
    response_model=StatusOut,
    summary="Resolve an intervention",
)
def resolve(
    svc: Svc,
    who: Operator,
    intervention_id: Annotated[
        str, Path(min_length=1, max_length=600, description="TASK_ID/xxxxxxxx")
    ],
    body: ResolveBody,
) -> StatusOut:
    """``mark_done`` (``output`` is the step's result), ``retry`` the step, ``skip`` it, or
    ``fail`` the task. Returns the task's status afterwards."""
    item = ops.find_intervention(svc.store, intervention_id)
    status = ops.resolve_intervention(
        svc.store,
        svc.clock,
        intervention_id,
        action=body.action,
        actor=who.name,
        output=body.output,
        comment=body.comment or None,
    )
    return StatusOut(task_id=item.task_id, status=status)
