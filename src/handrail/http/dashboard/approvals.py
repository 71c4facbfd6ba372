"""The approvals inbox: every field of each pending request, and the approver's buttons.

The form posts the digest the approver was shown; the engine refuses the decision if the
action changed since (and applies its other rules: separation of duties, the approver set,
the quorum, the deadline).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from handrail import decisions
from handrail.errors import InvalidOperationError
from handrail.http.access import services
from handrail.http.dashboard import views
from handrail.http.dashboard.tasks import attempt
from handrail.http.dashboard.views import Viewer

router = APIRouter()


@router.get("/approvals")
def inbox(
    request: Request,
    who: Viewer,
    decided: Annotated[bool, Query()] = False,
) -> Response:
    svc = services(request)
    items = decisions.list_approvals(svc.store, include_decided=decided)
    if decided:
        items = list(reversed(items))[:100]
    return views.render(
        request,
        "approvals.html",
        {
            "items": items,
            "decided": decided,
            "can_decide": "approver" in who.roles,
            "now": svc.clock.now(),
        },
        who=who,
    )


@router.post("/approvals/decide")
def decide(
    request: Request,
    who: Viewer,
    request_id: Annotated[str, Form(max_length=600)],
    decision: Annotated[str, Form(max_length=20)],
    digest: Annotated[str, Form(max_length=200)] = "",
    comment: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    views.require(who, ("approver",), "decide approvals")
    svc = services(request)

    def run() -> str:
        if not digest:
            raise InvalidOperationError(
                "the form carried no digest: reload the inbox and decide on what it shows"
            )
        after = decisions.decide(
            svc.store,
            svc.clock,
            request_id,
            decision=decision,
            actor=who.name,
            comment=comment or None,
            digest_seen=digest,
        )
        if after.status == "pending":
            got = len(after.approvers_approving())
            return f"{request_id}: {got} of {after.request.quorum} approvals; waiting for more."
        return f"{request_id} {after.status}; task {after.task_id} continues."

    return attempt(request, run, "/approvals")
