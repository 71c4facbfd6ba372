"""``/api/halts``: the stop buttons: list them, halt a task, a tool or everything, release
(operator)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from handrail import ops
from handrail.errors import InvalidOperationError
from handrail.http.access import Anyone, Operator, Svc
from handrail.http.models import HaltBody, HaltOut, ReleaseBody, Released
from handrail.http.routes.common import ERRORS

router = APIRouter(prefix="/api/halts", tags=["halts"], responses=ERRORS)


@router.get("", response_model=list[HaltOut], summary="List halts")
def list_halts(
    svc: Svc,
    who: Anyone,
    include_released: Annotated[bool, Query(description="Released ones too.")] = False,
) -> list[HaltOut]:
    return [HaltOut.of(h) for h in ops.list_halts(svc.store, include_released=include_released)]


@router.post("", response_model=HaltOut, status_code=201, summary="Halt a task, a tool or all")
def halt(svc: Svc, who: Operator, body: HaltBody) -> HaltOut:
    """Running work stops at its next step boundary; nothing new starts until released."""
    item = ops.halt(
        svc.store,
        svc.clock,
        body.scope,
        body.target or None,
        actor=who.name,
        reason=body.reason or None,
    )
    return HaltOut.of(item)


@router.post("/release", response_model=Released, summary="Release halts")
def release(svc: Svc, who: Operator, body: ReleaseBody) -> Released:
    """Lift the halts of ``scope``/``target``; tasks they parked (and no other halt covers)
    become runnable again."""
    if body.scope != "all" and not body.target:
        raise HTTPException(422, f"releasing a {body.scope} halt needs its target")
    try:
        released, resumed = ops.release(
            svc.store, svc.clock, body.scope, body.target or None, actor=who.name
        )
    except InvalidOperationError as exc:
        raise HTTPException(409, str(exc)) from None
    return Released(released=[HaltOut.of(h) for h in released], resumed=resumed)
