"""Operations on approval requests: list them, show one, approve or deny.

The CLI and the Python API call these. A decision is checked against the request's rules
(:func:`handrail.approvals.check_decider`) and appended to the task's journal as an
``approval_decided`` event naming the principal; the decision that completes the request
makes the task runnable at once. Nothing is rewritten.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from handrail import serde
from handrail.approvals import (
    APPROVED,
    DENIED,
    Approval,
    check_decider,
    digest,
)
from handrail.clock import Clock
from handrail.errors import InvalidOperationError, NotFoundError, StaleWriteError
from handrail.journal import Event, EventKind, TaskStatus, apply, fold
from handrail.ops import _require_actor, append_audited, show_task
from handrail.store.base import Store

_AWAITING = [TaskStatus.AWAITING_APPROVAL]


def list_approvals(
    store: Store,
    *,
    task_id: str | None = None,
    include_decided: bool = False,
    limit: int = 10_000,
) -> list[Approval]:
    """Pending approval requests, oldest first (every request with ``include_decided``)."""
    if task_id is not None:
        records = [show_task(store, task_id).record]
    else:
        statuses = None if include_decided else _AWAITING
        records = store.list_tasks(statuses=statuses, limit=limit)
    found: list[Approval] = []
    for record in records:
        state = fold(store.load_events(record.task_id), record.task_id)
        found.extend(a for a in state.approvals.values() if include_decided or a.open)
    found.sort(key=lambda a: a.request.created_at)
    return found


def find_approval(store: Store, request_id: str) -> Approval:
    """A request by id (``TASK_ID/xxxxxxxx``)."""
    task_id, sep, _ = request_id.rpartition("/")
    if sep and store.get_task(task_id) is not None:
        state = fold(store.load_events(task_id), task_id)
        found = state.approvals.get(request_id)
        if found is not None:
            return found
    raise NotFoundError("approval request", request_id)


def decide(
    store: Store,
    clock: Clock,
    request_id: str,
    *,
    decision: str,
    actor: str,
    comment: str | None = None,
    digest_seen: str | None = None,
    edit: Mapping[str, Any] | None = None,
) -> Approval:
    """Approve or deny a request as ``actor``. ``digest_seen`` (what the approver was
    shown) must match the request's; ``edit`` approves with changed parameters (both
    digests are recorded). Returns the request as it stands after the decision."""
    who = _require_actor(actor)
    if decision not in (APPROVED, DENIED):
        raise InvalidOperationError(f"decision {decision!r}: use 'approved' or 'denied'")
    if edit is not None and decision != APPROVED:
        raise InvalidOperationError("only an approval can edit the parameters")
    task_id, sep, _ = request_id.rpartition("/")
    if not sep:
        raise NotFoundError("approval request", request_id)
    for attempt in range(50):
        try:
            view = show_task(store, task_id)
        except NotFoundError:
            raise NotFoundError("approval request", request_id) from None
        found = view.state.approvals.get(request_id)
        if found is None:
            raise NotFoundError("approval request", request_id)
        approval = found
        now = clock.now()
        check_decider(approval, by=who, decision=decision, now=now, digest_seen=digest_seen)
        data: dict[str, Any] = {
            "request_id": request_id,
            "decision": decision,
            "digest": approval.request.digest,
        }
        if comment:
            data["comment"] = comment
        if edit is not None:
            data.update(_edited(approval, edit))
        if view.record.leased(now):  # a worker holds it briefly (a reminder, a re-check)
            time.sleep(0.02 * min(attempt + 1, 10))
            continue
        seq = view.state.last_seq
        event = Event(
            task_id=approval.task_id,
            seq=seq + 1,
            kind=EventKind.APPROVAL_DECIDED,
            timestamp=now,
            step_index=approval.request.step_index,
            step_name=approval.request.tool,
            actor=who,
            data=data,
        )
        state = apply(view.state, event)
        after = state.approvals[request_id]
        if after.open:
            status, run_at = TaskStatus.AWAITING_APPROVAL, view.record.run_at
        else:
            status, run_at = TaskStatus.PENDING, now
        try:
            append_audited(
                store,
                approval.task_id,
                [event],
                expect_seq=seq,
                now=now,
                status=status,
                run_at=run_at,
            )
        except StaleWriteError:
            continue
        return after
    raise InvalidOperationError(
        f"approval {request_id}: its task kept changing under this decision; try again",
        task_id=request_id.rpartition("/")[0],
    )


def _edited(approval: Approval, edit: Mapping[str, Any]) -> dict[str, Any]:
    request = approval.request
    if request.quorum > 1:
        raise InvalidOperationError(
            f"approval {request.request_id} needs {request.quorum} approvers; an edit would "
            "change what the others approved. Deny it with a comment instead."
        )
    unknown = sorted(set(edit) - set(request.action_parameters))
    if unknown:
        raise InvalidOperationError(
            f"cannot edit {', '.join(unknown)}: the action's parameters are "
            f"{', '.join(sorted(request.action_parameters)) or 'none'}"
        )
    edited = serde.loads(serde.dumps({**request.action_parameters, **edit}, what="edit"))
    return {"edited_parameters": edited, "edited_digest": digest(request.tool, edited)}
