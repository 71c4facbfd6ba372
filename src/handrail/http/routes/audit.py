"""``/api/audit``: the tamper-evident audit log, per role (:mod:`handrail.audit_ops`).

Auditors and engineers read the compliance view (redacted fields, no raw payloads) and
verify the log; only engineers open the technical view (the raw payloads, or the
tombstone of an erased one). audit_ops checks the roles again itself.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from handrail import audit_ops
from handrail.audit.record import RecordKind
from handrail.auth import Principal
from handrail.http.access import Svc, role
from handrail.http.routes.common import ERRORS

router = APIRouter(prefix="/api/audit", tags=["audit"], responses=ERRORS)

Reader = Annotated[Principal, Depends(role("auditor", "engineer", action="read the audit log"))]
Engineer = Annotated[
    Principal, Depends(role("engineer", action="see raw payloads (the technical view)"))
]
CallId = Annotated[str, Path(min_length=1, max_length=600, description="A record's call id.")]
Epoch = Query(ge=0, le=1e11, description="Seconds since the epoch (UTC).")


class Verification(BaseModel):
    """The log in the store checked against its signed checkpoints."""

    ok: bool
    code: int
    verdict: str
    message: str
    pending: int
    checkpoint_size: int | None
    records: int
    checkpoints: int
    verified_size: int
    public_key: str | None
    seq: int | None


@router.get("/records", summary="Audit records, compliance view (auditor or engineer)")
def list_records(
    svc: Svc,
    who: Reader,
    task_id: Annotated[str | None, Query(max_length=500)] = None,
    kind: RecordKind | None = None,
    since: Annotated[float | None, Epoch] = None,
    until: Annotated[float | None, Epoch] = None,
    after_id: Annotated[int | None, Query(ge=0, le=2**62, description="Page on.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Records in the order they were logged: redacted fields and their place in the log,
    never raw payloads. Page with ``after_id`` (the last ``record_id`` seen)."""
    return audit_ops.list_records(
        svc.store,
        who,
        task_id=task_id or None,
        kind=kind.value if kind else None,
        since=since,
        until=until,
        after_id=after_id,
        limit=limit,
    )


@router.get("/verify", response_model=Verification, summary="Verify the log (auditor or engineer)")
def verify(svc: Svc, who: Reader) -> Verification:
    """Every sequenced record against every signed checkpoint, with the log's own public
    key (auditors should also verify an export with a key they got independently:
    ``handrail audit verify --bundle FILE --public-key KEY``)."""
    found = audit_ops.verify_log(svc.store, who)
    result = found.result
    return Verification(
        ok=found.ok,
        code=int(found.code),
        verdict=result.kind if result else "OK",
        message=result.message if result else "no checkpoint yet: nothing to verify",
        pending=found.pending,
        checkpoint_size=None if found.checkpoint is None else found.checkpoint.size,
        records=result.records if result else 0,
        checkpoints=result.checkpoints if result else 0,
        verified_size=result.verified_size if result else 0,
        public_key=None if found.public_key is None else found.public_key.to_vkey(),
        seq=result.seq if result else None,
    )


@router.get(
    "/records/{call_id:path}/technical",
    summary="One record with its raw payloads (engineer)",
)
def technical(svc: Svc, who: Engineer, call_id: CallId) -> dict[str, Any]:
    """The compliance view plus ``technical``: the raw input and output, checked against
    the log's commitments (an erased payload shows its tombstone)."""
    return audit_ops.show_record(svc.store, who, call_id, technical=True)


@router.get("/records/{call_id:path}", summary="One record, compliance view")
def show(svc: Svc, who: Reader, call_id: CallId) -> dict[str, Any]:
    return audit_ops.show_record(svc.store, who, call_id)
