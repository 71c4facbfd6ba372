"""``/api/notifications``: the notification outbox, and given-up notifications queued
again (operator), as `handrail notifications list|retry` does."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query

from handrail import notice_ops
from handrail.http.access import Anyone, Operator, Svc
from handrail.http.models import NoticeOut, Requeued, RetryBody
from handrail.http.routes.common import ERRORS

router = APIRouter(prefix="/api/notifications", tags=["notifications"], responses=ERRORS)


@router.get("", response_model=list[NoticeOut], summary="List notifications, newest first")
def list_notices(
    svc: Svc,
    who: Anyone,
    notifier: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    state: Annotated[Literal["queued", "sent", "dropped"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[NoticeOut]:
    items = notice_ops.list_notices(svc.store, notifier=notifier, state=state, limit=limit)
    return [NoticeOut.of(n) for n in items]


@router.post("/retry", response_model=Requeued, summary="Queue given-up notifications again")
def retry(svc: Svc, who: Operator, body: RetryBody) -> Requeued:
    """Once a notifier's endpoint is fixed: a running worker sends them within seconds."""
    if bool(body.notice_ids) == body.all:
        raise HTTPException(422, "name the notices to retry (notice_ids) or set all")
    ids = None if body.all else body.notice_ids
    count = notice_ops.retry_notices(
        svc.store, actor=who.name, notice_ids=ids, notifier=body.notifier
    )
    if count == 0:
        raise HTTPException(409, "no given-up notification matched (GET /api/notifications)")
    return Requeued(requeued=count)
