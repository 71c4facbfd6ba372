"""The JSON the HTTP API reads and writes, as pydantic models (they make the OpenAPI schema).

Step inputs and outputs are given as the journal stores them (JSON, with handrail's tagged
types such as ``{"$hr": "datetime", ...}`` left as they are), as ``handrail ... --json``
prints them.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from handrail.approvals import Approval, Decision
from handrail.journal import Event, Intervention, StepState, TaskStatus
from handrail.notify.outbox import NoticeState
from handrail.ops import TaskView
from handrail.store.base import Halt, TaskRecord


def _comment() -> Any:
    return Field(default=None, max_length=4000, description="Why; recorded in the journal.")


def _parsed(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class Problem(BaseModel):
    """An error: ``detail`` says what went wrong and what to do."""

    detail: str
    errors: list[dict[str, Any]] | None = None


class Task(BaseModel):
    """A task's row: its status and scheduling facts."""

    task_id: str
    workflow: str
    queue: str
    status: TaskStatus
    created_at: float
    updated_at: float
    run_at: float | None
    lease_owner: str | None
    lease_expires_at: float | None
    epoch: int
    cancel_requested_by: str | None
    initiator: str | None
    max_execution_seconds: float | None

    @classmethod
    def of(cls, record: TaskRecord) -> Task:
        return cls.model_validate(dataclasses.asdict(record))


class EventOut(BaseModel):
    """One checkpoint of a task's journal."""

    seq: int
    kind: str
    timestamp: float
    status: str
    step_index: int | None
    step_name: str | None
    agent_reasoning: str | None
    actor: str | None
    inputs: Any = None
    outputs: Any = None
    error: dict[str, Any] | None
    requires_human_approval: bool
    data: dict[str, Any] | None

    @classmethod
    def of(cls, e: Event) -> EventOut:
        return cls(
            seq=e.seq,
            kind=e.kind.value,
            timestamp=e.timestamp,
            status=e.status,
            step_index=e.step_index,
            step_name=e.step_name,
            agent_reasoning=e.agent_reasoning,
            actor=e.actor,
            inputs=_parsed(e.inputs_json),
            outputs=_parsed(e.outputs_json),
            error=e.error,
            requires_human_approval=e.requires_human_approval,
            data=e.data,
        )


class Step(BaseModel):
    """What the journal says of one step (one tool call and its retries)."""

    index: int
    name: str
    status: str
    in_doubt: bool
    attempts: int
    agent_reasoning: str | None
    started_at: float
    finished_at: float | None
    inputs: Any = None
    outputs: Any = None
    error: dict[str, Any] | None
    failure_class: str | None
    completed_by: str | None

    @classmethod
    def of(cls, s: StepState) -> Step:
        return cls(
            index=s.index,
            name=s.name,
            status=s.status.value,
            in_doubt=s.in_doubt,
            attempts=s.attempts,
            agent_reasoning=s.agent_reasoning,
            started_at=s.started_at,
            finished_at=s.finished_at,
            inputs=_parsed(s.inputs_json),
            outputs=_parsed(s.outputs_json),
            error=s.error,
            failure_class=s.failure_class,
            completed_by=s.completed_by,
        )


class InterventionOut(BaseModel):
    """A human task the runtime raised because it could not go on alone."""

    intervention_id: str
    task_id: str
    kind: str
    reason: str
    raised_at: float
    step_index: int | None
    step_name: str | None
    details: dict[str, Any]
    resolved_at: float | None
    resolved_by: str | None
    resolution: str | None
    comment: str | None
    open: bool

    @classmethod
    def of(cls, item: Intervention) -> InterventionOut:
        return cls(**dataclasses.asdict(item), open=item.open)


class DecisionOut(BaseModel):
    """One approver's (or one timer's) answer to a request."""

    request_id: str
    decision: str
    by: str
    at: float
    digest: str
    comment: str | None = None
    reason: str | None = None
    edited_parameters: dict[str, Any] | None = None
    edited_digest: str | None = None

    @classmethod
    def of(cls, d: Decision) -> DecisionOut:
        return cls(**dataclasses.asdict(d))


class ApprovalOut(BaseModel):
    """An approval request (every field of it) and the decisions made on it so far."""

    request_id: str
    task_id: str
    status: Literal["pending", "approved", "denied", "superseded"]
    requesting_agent: str
    proposed_action: str
    action_parameters: dict[str, Any]
    agent_reasoning: str
    expected_outcome: str
    reversibility: str
    auto_approve_after: float | None
    auto_deny_after: float | None
    context_summary: str
    approvers: list[str]
    quorum: int
    group: str
    tool: str
    step_index: int
    digest: str
    created_at: float
    expires_at: float | None
    deadline_action: str | None
    initiator: str | None
    remind_at: float | None
    supersedes: str | None
    superseded_by: str | None
    reminded_at: float | None
    decisions: list[DecisionOut]

    @classmethod
    def of(cls, item: Approval) -> ApprovalOut:
        return cls(
            **item.request.to_dict(),
            status=item.status,
            deadline_action=item.request.deadline_action,
            superseded_by=item.superseded_by,
            reminded_at=item.reminded_at,
            decisions=[DecisionOut.of(d) for d in item.decisions],
        )


class OffCourse(BaseModel):
    """Where a task went off course: its first failed step, intervention or denial."""

    seq: int
    kind: str
    step_index: int | None
    step_name: str | None
    reason: str


class TaskDetail(BaseModel):
    """One task: its row, inputs, result or error, steps, interventions and approvals."""

    task: Task
    inputs: Any = None
    result: Any = None
    error: dict[str, Any] | None
    steps: list[Step]
    interventions: list[InterventionOut]
    approvals: list[ApprovalOut]
    context_summary: str

    @classmethod
    def of(cls, view: TaskView) -> TaskDetail:
        state = view.state
        return cls(
            task=Task.of(view.record),
            inputs=_parsed(state.inputs_json),
            result=_parsed(state.result_json),
            error=state.error,
            steps=[Step.of(s) for _, s in sorted(state.steps.items())],
            interventions=[InterventionOut.of(i) for i in state.interventions.values()],
            approvals=[ApprovalOut.of(a) for a in state.approvals.values()],
            context_summary=state.context_summary(),
        )


class Timeline(BaseModel):
    """Every event of a task's journal, in order, and where it went off course."""

    task_id: str
    status: TaskStatus
    off_course: OffCourse | None
    events: list[EventOut]


class HaltOut(BaseModel):
    """An operator's stop button: one task, one tool or everything."""

    halt_id: str
    scope: str
    target: str | None
    halted_by: str
    reason: str | None
    created_at: float
    released_by: str | None
    released_at: float | None
    active: bool

    @classmethod
    def of(cls, h: Halt) -> HaltOut:
        return cls(**dataclasses.asdict(h), active=h.active)


class Released(BaseModel):
    """The halts a release lifted, and the tasks that became runnable again."""

    released: list[HaltOut]
    resumed: list[str]


class StatusOut(BaseModel):
    """A task's status after an operation."""

    task_id: str
    status: TaskStatus


class Me(BaseModel):
    """The principal a token names, and its roles."""

    name: str
    roles: list[str]


# -- request bodies ------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CancelBody(_Body):
    reason: str | None = _comment()


class DecideBody(_Body):
    decision: Literal["approved", "denied"]
    comment: str | None = _comment()
    digest: str | None = Field(
        default=None,
        max_length=200,
        description="The digest you were shown; refused if the action changed since.",
    )
    edit: dict[str, Any] | None = Field(
        default=None,
        description="Approve with these parameters changed (both digests are recorded).",
    )


class ResolveBody(_Body):
    action: Literal["mark_done", "retry", "skip", "fail"]
    output: Any = Field(default=None, description="mark_done: the step's result.")
    comment: str | None = _comment()


class HaltBody(_Body):
    scope: Literal["task", "tool", "all"]
    target: str | None = Field(
        default=None, max_length=500, description="The task id or tool name (not for 'all')."
    )
    reason: str | None = _comment()


class ReleaseBody(_Body):
    scope: Literal["task", "tool", "all"]
    target: str | None = Field(default=None, max_length=500)


class NoticeOut(BaseModel):
    """A notification in the outbox: where it is (queued, sent, dropped), who holds it,
    its failed attempts and last error."""

    notice_id: int
    notifier: str
    key: str
    kind: str
    created_at: float
    state: Literal["queued", "sent", "dropped"]
    attempts: int
    last_error: str | None
    held_by: str | None
    held_until: float | None
    sent_at: float | None
    dropped_at: float | None

    @classmethod
    def of(cls, n: NoticeState) -> NoticeOut:
        return cls(**dataclasses.asdict(n))


class RetryBody(_Body):
    """Which given-up notifications to queue again: ``notice_ids``, or ``all`` of them
    (of ``notifier``, if given)."""

    notice_ids: list[Annotated[int, Field(ge=1, le=2**62)]] = Field(default=[], max_length=1000)
    all: bool = False
    notifier: str | None = Field(default=None, min_length=1, max_length=200)


class Requeued(BaseModel):
    """How many given-up notifications were queued again."""

    requeued: int
