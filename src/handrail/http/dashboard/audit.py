"""Audit views per role: the compliance view for auditors, the technical view (raw
payloads) for engineers. Both come from :mod:`handrail.audit_ops`, which checks the roles
again."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from handrail import audit_ops
from handrail.audit.record import RecordKind
from handrail.http.access import services
from handrail.http.dashboard import views
from handrail.http.dashboard.views import Viewer

router = APIRouter()

KINDS = [k.value for k in RecordKind]


def _summary(view: dict[str, Any]) -> str:
    if view.get("kind") == "tool_call":
        error = f" ({view['error_type']})" if view.get("error_type") else ""
        return (
            f"{view.get('tool_name')}: {view.get('outcome')}{error}, by {view.get('authorized_by')}"
        )
    details = view.get("details") or {}
    actor = view.get("actor") or "the runtime"
    what = details.get("event") or view.get("kind")
    return f"{what} by {actor}"


@router.get("/audit")
def audit_page(
    request: Request,
    who: Viewer,
    view: Annotated[str | None, Query(max_length=20)] = None,
    task_id: Annotated[str | None, Query(max_length=500)] = None,
    kind: Annotated[str | None, Query(max_length=40)] = None,
    after_id: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    views.require(who, ("auditor", "engineer"), "read the audit log")
    technical = (view or ("technical" if "engineer" in who.roles else "compliance")) == "technical"
    if technical:
        views.require(who, ("engineer",), "see raw payloads (the technical view)")
    store = services(request).store
    records = audit_ops.list_records(
        store,
        who,
        task_id=task_id or None,
        kind=kind if kind in KINDS else None,
        after_id=after_id,
        limit=limit,
    )
    rows = []
    for record in records:
        raw = None
        if technical:
            raw = audit_ops.show_record(store, who, record["call_id"], technical=True)["technical"]
        rows.append({"record": record, "summary": _summary(record), "raw": raw})
    return views.render(
        request,
        "audit.html",
        {
            "rows": rows,
            "technical": technical,
            "kinds": KINDS,
            "filters": {"task_id": task_id or "", "kind": kind or ""},
            "limit": limit,
            "next_after": records[-1]["record_id"] if len(records) >= limit else None,
        },
        who=who,
    )


@router.get("/audit/verify")
def verify_page(request: Request, who: Viewer) -> Response:
    views.require(who, ("auditor", "engineer"), "verify the audit log")
    found = audit_ops.verify_log(services(request).store, who)
    return views.render(request, "audit_verify.html", {"found": found}, who=who)
