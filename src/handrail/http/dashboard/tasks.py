"""Task pages: the filtered list, one task's timeline, and the operator's buttons."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response

from handrail import ops
from handrail.errors import HandrailError
from handrail.http.access import services
from handrail.http.dashboard import views
from handrail.http.dashboard.views import Viewer
from handrail.http.timeline import describe, off_course
from handrail.journal import TaskStatus

router = APIRouter()

STATUSES = [s.value for s in TaskStatus]
LIVE = frozenset({TaskStatus.PENDING, TaskStatus.IN_PROGRESS})


def attempt(request: Request, action: Callable[[], str], back: str) -> Response:
    """Run an operation for a form; its outcome (or its error) is the next page's message."""
    current = views.session(request)
    try:
        current.say(action())
    except HandrailError as exc:
        current.say(str(exc), "error")
    return views.redirect(request, back)


@router.get("/tasks")
def task_list(
    request: Request,
    who: Viewer,
    status: Annotated[str | None, Query(max_length=50)] = None,
    workflow: Annotated[str | None, Query(max_length=500)] = None,
    queue: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 100,
) -> Response:
    svc = services(request)
    statuses = [TaskStatus(status)] if status in STATUSES else None
    records = ops.list_tasks(
        svc.store,
        statuses=statuses,
        workflow=workflow or None,
        queue=queue or None,
        limit=limit,
    )
    return views.render(
        request,
        "tasks.html",
        {
            "tasks": records,
            "statuses": STATUSES,
            "filters": {"status": status or "", "workflow": workflow or "", "queue": queue or ""},
            "limit": limit,
            "now": svc.clock.now(),
        },
        who=who,
    )


@router.get("/tasks/{task_id:path}")
def task_page(
    request: Request, who: Viewer, task_id: Annotated[str, Path(max_length=500)]
) -> Response:
    svc = services(request)
    view = ops.show_task(svc.store, task_id)
    found = off_course(view.events)
    rows = [
        {
            "event": e,
            "detail": describe(e),
            "off_course": found is not None and e.seq == found[0].seq,
        }
        for e in view.events
    ]
    return views.render(
        request,
        "task.html",
        {
            "view": view,
            "rows": rows,
            "off_course": found,
            "off_course_step": found[0].step_index if found else None,
            "steps": [s for _, s in sorted(view.state.steps.items())],
            "now": svc.clock.now(),
            "refresh": view.record.status in LIVE,
        },
        who=who,
    )


@router.post("/tasks/{task_id:path}/cancel")
def cancel(
    request: Request,
    who: Viewer,
    task_id: Annotated[str, Path(max_length=500)],
    reason: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    views.require(who, ("operator",), "cancel tasks")
    svc = services(request)

    def run() -> str:
        status = ops.cancel_task(
            svc.store, svc.clock, task_id, actor=who.name, reason=reason or None
        )
        return f"Task {task_id}: {status.value}."

    return attempt(request, run, f"/tasks/{task_id}")


@router.post("/tasks/{task_id:path}/resume")
def resume(
    request: Request, who: Viewer, task_id: Annotated[str, Path(max_length=500)]
) -> Response:
    views.require(who, ("operator",), "resume tasks")
    svc = services(request)

    def run() -> str:
        status = ops.resume_task(svc.store, svc.clock, task_id, actor=who.name)
        return f"Task {task_id}: {status.value}; a worker continues it."

    return attempt(request, run, f"/tasks/{task_id}")


@router.post("/interventions/resolve")
def resolve(
    request: Request,
    who: Viewer,
    intervention_id: Annotated[str, Form(max_length=600)],
    action: Annotated[str, Form(max_length=20)],
    output: Annotated[str, Form(max_length=100_000)] = "",
    comment: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    views.require(who, ("operator",), "resolve interventions")
    svc = services(request)
    task_id = intervention_id.rpartition("/")[0]

    def run() -> str:
        status = ops.resolve_intervention(
            svc.store,
            svc.clock,
            intervention_id,
            action=action,
            actor=who.name,
            output=ops.parse_output(output) if output else None,
            comment=comment or None,
        )
        return f"Intervention {intervention_id}: {action}; the task is {status.value}."

    return attempt(request, run, f"/tasks/{task_id}" if task_id else "/tasks")


@router.get("/halts")
def halts_page(request: Request, who: Viewer) -> Response:
    svc = services(request)
    return views.render(
        request,
        "halts.html",
        {"halts": ops.list_halts(svc.store, include_released=True)[-50:]},
        who=who,
    )


@router.post("/halts")
def halt(
    request: Request,
    who: Viewer,
    scope: Annotated[str, Form(max_length=10)],
    target: Annotated[str, Form(max_length=500)] = "",
    reason: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    views.require(who, ("operator",), "halt work")
    svc = services(request)

    def run() -> str:
        item = ops.halt(
            svc.store, svc.clock, scope, target or None, actor=who.name, reason=reason or None
        )
        return f"Halt {item.halt_id} is active: {scope} {item.target or ''}".rstrip()

    return attempt(request, run, "/halts")


@router.post("/halts/release")
def release(
    request: Request,
    who: Viewer,
    scope: Annotated[str, Form(max_length=10)],
    target: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    views.require(who, ("operator",), "release halts")
    svc = services(request)

    def run() -> str:
        released, resumed = ops.release(svc.store, svc.clock, scope, target or None, actor=who.name)
        return f"Released {len(released)} halt(s); {len(resumed)} task(s) runnable again."

    return attempt(request, run, "/halts")
