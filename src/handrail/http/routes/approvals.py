"""``/api/approvals``: the requests that wait for a human, and deciding them (approver).

A request id is ``TASK_ID/xxxxxxxx``; it is one path parameter, slash included. The
engine's own rules apply to every decision (separation of duties, the approver set, the
quorum, the deadline, the digest the approver saw); a decision they refuse is a 409.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from handrail import decisions
from handrail.http.access import Anyone, Approver, Svc
from handrail.http.models import ApprovalOut, DecideBody
from handrail.http.routes.common import ERRORS

router = APIRouter(prefix="/api/approvals", tags=["approvals"], responses=ERRORS)

RequestId = Annotated[
    str,
    Path(min_length=1, max_length=600, description="TASK_ID/xxxxxxxx", examples=["t1/ab12cd34"]),
]


@router.get("", response_model=list[ApprovalOut], summary="List approval requests")
def list_approvals(
    svc: Svc,
    who: Anyone,
    task_id: Annotated[str | None, Query(max_length=500, description="Only this task's.")] = None,
    include_decided: Annotated[bool, Query(description="Decided requests too.")] = False,
) -> list[ApprovalOut]:
    """Pending requests, oldest first (every request with ``include_decided``)."""
    items = decisions.list_approvals(
        svc.store, task_id=task_id or None, include_decided=include_decided
    )
    return [ApprovalOut.of(a) for a in items]


@router.get("/{request_id:path}", response_model=ApprovalOut, summary="Show one request")
def show_approval(svc: Svc, who: Anyone, request_id: RequestId) -> ApprovalOut:
    return ApprovalOut.of(decisions.find_approval(svc.store, request_id))


@router.post(
    "/{request_id:path}/decision",
    response_model=ApprovalOut,
    summary="Approve or deny a request",
)
def decide(svc: Svc, who: Approver, request_id: RequestId, body: DecideBody) -> ApprovalOut:
    """Approve or deny as the caller. Send the ``digest`` you were shown: the decision is
    refused if the action changed since. ``edit`` approves with changed parameters."""
    after = decisions.decide(
        svc.store,
        svc.clock,
        request_id,
        decision=body.decision,
        actor=who.name,
        comment=body.comment or None,
        digest_seen=body.digest or None,
        edit=body.edit,
    )
    return ApprovalOut.of(after)
