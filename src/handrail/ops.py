"""Operations: what an operator can do to tasks. The CLI (and later the HTTP API) call these.

Every operation that changes a task appends events to its journal, naming the principal who
did it; none rewrites history. Operations write only to tasks no live lease holds (a running
task is cancelled through a flag its worker honours at the next step boundary).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from handrail import serde
from handrail.auditing import Auditor, event_rows
from handrail.clock import Clock
from handrail.errors import InvalidOperationError, NotFoundError, StaleWriteError
from handrail.journal import (
    Event,
    EventKind,
    Intervention,
    StepStatus,
    TaskState,
    TaskStatus,
    fold,
)
from handrail.store.base import UNSET, Halt, Store, TaskRecord, _Unset

Resolution = Literal["mark_done", "retry", "skip", "fail"]
RESOLUTIONS: tuple[str, ...] = ("mark_done", "retry", "skip", "fail")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TaskView:
    """A task's row, folded state and journal, read together."""

    record: TaskRecord
    state: TaskState
    events: list[Event]


def _require_actor(actor: str | None) -> str:
    if not actor or not actor.strip():
        raise InvalidOperationError(
            "this operation must name who does it: pass a principal (CLI: --as NAME or "
            "HANDRAIL_PRINCIPAL)"
        )
    return actor.strip()


def append_audited(
    store: Store,
    task_id: str,
    events: Sequence[Event],
    *,
    expect_seq: int,
    now: float,
    status: TaskStatus | None = None,
    run_at: float | _Unset | None = UNSET,
) -> None:
    """An operator's journal write, with the audit records of its actions in the same
    transaction."""
    store.append_unleased(
        task_id,
        events,
        expect_seq=expect_seq,
        now=now,
        status=status,
        run_at=run_at,
        audit=event_rows(Auditor(), events),
    )


def _retrying(fn: Callable[[], T], attempts: int = 5) -> T:
    """Re-read and retry an operator write that raced a worker."""
    for _ in range(attempts - 1):
        try:
            return fn()
        except StaleWriteError:
            continue
    return fn()


def list_tasks(
    store: Store,
    *,
    statuses: Sequence[TaskStatus] | None = None,
    workflow: str | None = None,
    queue: str | None = None,
    limit: int = 50,
) -> list[TaskRecord]:
    """Task rows, newest first."""
    if limit < 1:
        raise InvalidOperationError("limit must be at least 1")
    return store.list_tasks(statuses=statuses, workflow=workflow, queue=queue, limit=limit)


def show_task(store: Store, task_id: str) -> TaskView:
    """One task: row, state and timeline. ``NotFoundError`` for an unknown id."""
    found = store.read_task(task_id)
    if found is None:
        raise NotFoundError("task", task_id)
    record, events = found
    return TaskView(record, fold(events, task_id), events)


def _event(task_id: str, seq: int, kind: EventKind, now: float, **fields: Any) -> Event:
    return Event(task_id=task_id, seq=seq, kind=kind, timestamp=now, **fields)


def cancel_task(
    store: Store, clock: Clock, task_id: str, *, actor: str, reason: str | None = None
) -> TaskStatus:
    """Cancel a task. An idle task is cancelled now; a running one stops at its next step
    boundary (its worker journals the cancellation). Returns the status after the call."""
    who = _require_actor(actor)

    def attempt() -> TaskStatus:
        view = show_task(store, task_id)
        if view.record.status.terminal:
            raise InvalidOperationError(
                f"task {task_id} is {view.record.status.value} already; nothing to cancel",
                task_id=task_id,
            )
        now = clock.now()
        record = store.request_cancel(task_id, who, now=now)
        if record.leased(now):
            return record.status
        seq = view.state.last_seq
        data = {"reason": reason} if reason else None
        append_audited(
            store,
            task_id,
            [
                _event(task_id, seq + 1, EventKind.CANCEL_REQUESTED, now, actor=who, data=data),
                _event(task_id, seq + 2, EventKind.TASK_CANCELLED, now, actor=who, data=data),
            ],
            expect_seq=seq,
            now=now,
            status=TaskStatus.CANCELLED,
            run_at=None,
        )
        return TaskStatus.CANCELLED

    return _retrying(attempt)


def resume_task(store: Store, clock: Clock, task_id: str, *, actor: str) -> TaskStatus:
    """Make a task runnable now: a failed task runs again from the top (replay skips its
    completed steps and re-runs the step that failed); an in-progress task whose worker is
    gone is continued without waiting for its lease to expire."""
    who = _require_actor(actor)

    def attempt() -> TaskStatus:
        view = show_task(store, task_id)
        status = view.record.status
        now = clock.now()
        if view.record.leased(now):
            raise InvalidOperationError(
                f"task {task_id} is running on worker {view.record.lease_owner}; it needs no "
                "resume (cancel it to stop it)",
                task_id=task_id,
            )
        if status is TaskStatus.AWAITING_INTERVENTION:
            raise InvalidOperationError(
                f"task {task_id} waits for an intervention; resolve it with "
                "`handrail interventions resolve`",
                task_id=task_id,
            )
        if status is TaskStatus.AWAITING_APPROVAL:
            raise InvalidOperationError(
                f"task {task_id} waits for an approval; decide it with `handrail approvals "
                "approve|deny` (it continues by itself once decided)",
                task_id=task_id,
            )
        if status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED):
            raise InvalidOperationError(
                f"task {task_id} is {status.value}; only failed or stalled tasks can be resumed",
                task_id=task_id,
            )
        seq = view.state.last_seq
        append_audited(
            store,
            task_id,
            [_event(task_id, seq + 1, EventKind.TASK_RESUMED, now, actor=who)],
            expect_seq=seq,
            now=now,
            status=TaskStatus.PENDING,
            run_at=now,
        )
        return TaskStatus.PENDING

    return _retrying(attempt)


def list_interventions(
    store: Store, *, task_id: str | None = None, include_resolved: bool = False
) -> list[Intervention]:
    """Interventions, open ones only unless ``include_resolved``."""
    if task_id is not None:
        records = [show_task(store, task_id).record]
    else:
        statuses = None if include_resolved else [TaskStatus.AWAITING_INTERVENTION]
        records = store.list_tasks(statuses=statuses, limit=10_000)
    found: list[Intervention] = []
    for record in records:
        state = fold(store.load_events(record.task_id), record.task_id)
        for item in state.interventions.values():
            if include_resolved or item.open:
                found.append(item)
    found.sort(key=lambda i: i.raised_at)
    return found


def find_intervention(store: Store, intervention_id: str) -> Intervention:
    """An intervention by id (``TASK_ID/xxxxxxxx``: the task is read directly)."""
    task_id, sep, _ = intervention_id.rpartition("/")
    if sep and store.get_task(task_id) is not None:
        state = fold(store.load_events(task_id), task_id)
        item = state.interventions.get(intervention_id)
        if item is not None:
            return item
    raise NotFoundError("intervention", intervention_id)


def resolve_intervention(
    store: Store,
    clock: Clock,
    intervention_id: str,
    *,
    action: str,
    actor: str,
    output: Any = None,
    comment: str | None = None,
) -> TaskStatus:
    """Resolve an intervention:

    - ``mark_done``: the step's effect happened (or the operator supplies its result):
      ``output`` is recorded as its result;
    - ``retry``: run the step again (after a fix; the operator vouches that this is safe);
    - ``skip``: go on without the step; it is recorded as done with no output (``None``);
    - ``fail``: fail the task.
    """
    who = _require_actor(actor)
    if action not in RESOLUTIONS:
        raise InvalidOperationError(
            f"unknown resolution {action!r}; choose one of {', '.join(RESOLUTIONS)}"
        )
    item = find_intervention(store, intervention_id)
    task_id = item.task_id
    output_json = serde.dumps(output, what="output", step=item.step_name)

    def attempt() -> TaskStatus:
        view = show_task(store, task_id)
        current = view.state.interventions.get(intervention_id)
        if current is None or not current.open:
            raise InvalidOperationError(
                f"intervention {intervention_id} is resolved already "
                f"({current.resolution if current else 'unknown'})",
                task_id=task_id,
            )
        now = clock.now()
        seq = view.state.last_seq
        events: list[Event] = []
        data: dict[str, Any] = {"intervention_id": intervention_id, "action": action}
        if comment:
            data["comment"] = comment
        step = view.state.steps.get(current.step_index) if current.step_index is not None else None
        done = action in ("mark_done", "skip")
        if done and (step is None or step.status is StepStatus.COMPLETED):
            raise InvalidOperationError(
                f"intervention {intervention_id} names no unfinished step to {action}; "
                "use retry or fail",
                task_id=task_id,
            )
        if done and step is not None:
            seq += 1
            events.append(
                _event(
                    task_id,
                    seq,
                    EventKind.STEP_COMPLETED,
                    now,
                    step_index=step.index,
                    step_name=step.name,
                    outputs_json=output_json if action == "mark_done" else "null",
                    actor=who,
                    data={"via": action, "intervention_id": intervention_id},
                )
            )
        seq += 1
        events.append(
            _event(task_id, seq, EventKind.INTERVENTION_RESOLVED, now, actor=who, data=data)
        )
        others_open = [
            i for i in view.state.open_interventions() if i.intervention_id != intervention_id
        ]
        if action == "fail":
            seq += 1
            events.append(
                _event(
                    task_id,
                    seq,
                    EventKind.TASK_FAILED,
                    now,
                    actor=who,
                    error={
                        "type": "InterventionFailed",
                        "message": comment or f"failed by {who} resolving {intervention_id}",
                        "step_index": current.step_index,
                    },
                )
            )
            status, run_at = TaskStatus.FAILED, None
        elif others_open:
            status, run_at = TaskStatus.AWAITING_INTERVENTION, None
        else:
            status, run_at = TaskStatus.PENDING, now
        append_audited(
            store,
            task_id,
            events,
            expect_seq=view.state.last_seq,
            now=now,
            status=status,
            run_at=run_at,
        )
        return status

    return _retrying(attempt)


def parse_output(text: str | None) -> Any:
    """An output given on the command line: JSON, or a bare string."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


HALT_SCOPES: tuple[str, ...] = ("task", "tool", "all")


def _check_scope(scope: str, target: str | None) -> str | None:
    if scope not in HALT_SCOPES:
        raise InvalidOperationError(f"unknown halt scope {scope!r}; use task, tool or all")
    if scope == "all":
        return None
    if not target:
        raise InvalidOperationError(f"a {scope} halt needs the {scope} it stops")
    return target


def halt(
    store: Store,
    clock: Clock,
    scope: str,
    target: str | None = None,
    *,
    actor: str,
    reason: str | None = None,
) -> Halt:
    """Press the stop button for one task, one tool or everything. Running work stops at
    its next step boundary; nothing new starts until :func:`release`."""
    who = _require_actor(actor)
    target = _check_scope(scope, target)
    if scope == "task" and store.get_task(target or "") is None:
        raise NotFoundError("task", target or "")
    now = clock.now()
    item = Halt(
        halt_id=uuid.uuid4().hex[:12],
        scope=scope,
        target=target,
        halted_by=who,
        reason=reason,
        created_at=now,
    )
    store.add_halt(item)
    _audit_control(store, "halt", item, who, now)
    return item


def release(
    store: Store, clock: Clock, scope: str, target: str | None = None, *, actor: str
) -> tuple[list[Halt], list[str]]:
    """Release the halts of ``scope``/``target``; tasks parked by them and by no other
    active halt become runnable again. Returns the released halts and the resumed tasks."""
    who = _require_actor(actor)
    target = _check_scope(scope, target)
    now = clock.now()
    released = store.release_halts(scope, target, actor=who, now=now)
    if not released:
        what = "everything" if scope == "all" else f"{scope} {target}"
        raise InvalidOperationError(f"no active halt of {what}; see `handrail halts`")
    for item in released:
        _audit_control(store, "release", item, who, now)
    active = store.list_halts()
    resumed: list[str] = []
    for record in store.list_tasks(statuses=[TaskStatus.HALTED], limit=100_000):

        def attempt(task_id: str = record.task_id) -> bool:
            view = show_task(store, task_id)
            if view.record.status is not TaskStatus.HALTED:
                return False
            last = next((e for e in reversed(view.events) if e.kind is EventKind.TASK_HALTED), None)
            tool = last.step_name if last is not None else None
            if any(h.covers(task_id, tool) for h in active):
                return False
            seq = view.state.last_seq
            append_audited(
                store,
                task_id,
                [
                    _event(
                        task_id,
                        seq + 1,
                        EventKind.TASK_RELEASED,
                        clock.now(),
                        actor=who,
                        data={"halt_ids": [h.halt_id for h in released]},
                    )
                ],
                expect_seq=seq,
                now=clock.now(),
                status=TaskStatus.PENDING,
                run_at=clock.now(),
            )
            return True

        if _retrying(attempt):
            resumed.append(record.task_id)
    return released, resumed


def _audit_control(store: Store, kind: str, item: Halt, actor: str, now: float) -> None:
    """The audit record of pressing (or releasing) the stop button."""
    from handrail.audit.record import seal_draft

    row = Auditor().action(
        kind,
        call_id=f"halt:{item.halt_id}:{kind}",
        task_id=item.target if item.scope == "task" else None,
        actor=actor,
        timestamp=now,
        details={"halt_id": item.halt_id, "scope": item.scope, "target": item.target,
                 "reason": item.reason},
    )  # fmt: skip
    log = store.audit_log()
    log.append([seal_draft(row, log.vault)])


def list_halts(store: Store, *, include_released: bool = False) -> list[Halt]:
    return store.list_halts(active_only=not include_released)
