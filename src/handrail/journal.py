"""The journal: immutable checkpoint events, and the fold that turns them into task state.

A task's journal is an append-only list of :class:`Event`. Nothing is updated in place: a
task's state is ``fold(events)``. Step inputs and outputs are kept as the JSON text the
store holds (decoded on access), so what a workflow sees on replay is byte-for-byte what
was recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from handrail import serde
from handrail.approvals import Approval, ApprovalRequest, Decision


class TaskStatus(StrEnum):
    """Where a task stands."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    AWAITING_APPROVAL = "awaiting_approval"
    AWAITING_INTERVENTION = "awaiting_intervention"
    HALTED = "halted"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class StepStatus(StrEnum):
    """Where one step stands. ``in_progress`` after a crash means *in doubt*."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


class EventKind(StrEnum):
    """Every kind of state transition the journal records."""

    TASK_CREATED = "task_created"
    TASK_CLAIMED = "task_claimed"
    STEP_STARTED = "step_started"
    STEP_COMPLETED = "step_completed"
    STEP_FAILED = "step_failed"
    STEP_RETRIED = "step_retried"
    TIMER_SET = "timer_set"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_QUEUED = "approval_queued"
    APPROVAL_REMINDED = "approval_reminded"
    APPROVAL_DECIDED = "approval_decided"
    INTERVENTION_RAISED = "intervention_raised"
    INTERVENTION_RESOLVED = "intervention_resolved"
    CANCEL_REQUESTED = "cancel_requested"
    TASK_HALTED = "task_halted"
    TASK_RELEASED = "task_released"
    TASK_RESUMED = "task_resumed"
    TASK_COMPLETED = "task_completed"
    TASK_FAILED = "task_failed"
    TASK_CANCELLED = "task_cancelled"


OPENS_STEP = frozenset({EventKind.STEP_STARTED, EventKind.STEP_RETRIED})
"""The kinds of event that open a step attempt: halts and cancels are checked on them."""

_STATUS_OF_KIND: dict[EventKind, str] = {
    EventKind.TASK_CREATED: TaskStatus.PENDING,
    EventKind.TASK_CLAIMED: TaskStatus.IN_PROGRESS,
    EventKind.STEP_STARTED: StepStatus.IN_PROGRESS,
    EventKind.STEP_COMPLETED: StepStatus.COMPLETED,
    EventKind.STEP_FAILED: StepStatus.FAILED,
    EventKind.STEP_RETRIED: StepStatus.IN_PROGRESS,
    EventKind.TIMER_SET: TaskStatus.IN_PROGRESS,
    EventKind.APPROVAL_REQUESTED: TaskStatus.AWAITING_APPROVAL,
    EventKind.APPROVAL_QUEUED: TaskStatus.AWAITING_APPROVAL,
    EventKind.APPROVAL_REMINDED: TaskStatus.AWAITING_APPROVAL,
    EventKind.APPROVAL_DECIDED: TaskStatus.AWAITING_APPROVAL,
    EventKind.INTERVENTION_RAISED: TaskStatus.AWAITING_INTERVENTION,
    EventKind.INTERVENTION_RESOLVED: TaskStatus.PENDING,
    EventKind.CANCEL_REQUESTED: TaskStatus.IN_PROGRESS,
    EventKind.TASK_HALTED: TaskStatus.HALTED,
    EventKind.TASK_RELEASED: TaskStatus.PENDING,
    EventKind.TASK_RESUMED: TaskStatus.PENDING,
    EventKind.TASK_COMPLETED: TaskStatus.COMPLETED,
    EventKind.TASK_FAILED: TaskStatus.FAILED,
    EventKind.TASK_CANCELLED: TaskStatus.CANCELLED,
}


class Event(NamedTuple):
    """One checkpoint: an immutable record of one state transition of a task.

    ``inputs_json`` and ``outputs_json`` hold the JSON text as stored; ``inputs`` and
    ``outputs`` decode it. ``error`` and ``data`` are small JSON objects (kind-specific
    facts: the worker and epoch of a claim, an intervention's details, a timer's due time).
    A named tuple: immutable, and cheap to build when a long journal is loaded.
    """

    task_id: str
    seq: int
    kind: EventKind
    timestamp: float
    step_index: int | None = None
    step_name: str | None = None
    inputs_json: str | None = None
    outputs_json: str | None = None
    agent_reasoning: str | None = None
    requires_human_approval: bool = False
    error: dict[str, Any] | None = None
    actor: str | None = None
    data: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        """The step's status for step events, the task's status for task events."""
        return _STATUS_OF_KIND[self.kind]

    @property
    def inputs(self) -> Any:
        return serde.loads(self.inputs_json)

    @property
    def outputs(self) -> Any:
        return serde.loads(self.outputs_json)


@dataclass(slots=True)
class StepState:
    """What the journal says of one step."""

    index: int
    name: str
    status: StepStatus
    inputs_json: str | None
    agent_reasoning: str | None
    started_at: float
    outputs_json: str | None = None
    error: dict[str, Any] | None = None
    finished_at: float | None = None
    attempts: int = 1
    rerun_authorized: bool = False
    completed_by: str | None = None
    failure_class: str | None = None
    retry_at: float | None = None
    inputs_refreshed: bool = False
    retry_base: int = 0
    window_started_at: float | None = None

    @property
    def in_doubt(self) -> bool:
        return self.status is StepStatus.IN_PROGRESS


@dataclass(slots=True)
class Intervention:
    """A human task the runtime raised because it could not go on alone."""

    intervention_id: str
    task_id: str
    kind: str
    reason: str
    raised_at: float
    step_index: int | None = None
    step_name: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    resolved_at: float | None = None
    resolved_by: str | None = None
    resolution: str | None = None
    comment: str | None = None

    @property
    def open(self) -> bool:
        return self.resolved_at is None


@dataclass(slots=True)
class TaskState:
    """A task as folded from its journal."""

    task_id: str
    workflow: str = ""
    queue: str = "default"
    status: TaskStatus = TaskStatus.PENDING
    inputs_json: str | None = None
    initiator: str | None = None
    created_at: float | None = None
    updated_at: float | None = None
    steps: dict[int, StepState] = field(default_factory=dict)
    interventions: dict[str, Intervention] = field(default_factory=dict)
    result_json: str | None = None
    error: dict[str, Any] | None = None
    cancel_requested_by: str | None = None
    epoch: int = 0
    wake_at: float | None = None
    last_seq: int = -1
    budget_grants: set[int] = field(default_factory=set)
    approvals: dict[str, Approval] = field(default_factory=dict)
    approval_of_step: dict[int, str] = field(default_factory=dict)
    queued_for_approval: dict[int, dict[str, Any]] = field(default_factory=dict)

    def approval_for_step(self, index: int) -> Approval | None:
        """The current (latest, not superseded) approval request of step ``index``."""
        rid = self.approval_of_step.get(index)
        return None if rid is None else self.approvals[rid]

    def open_approvals(self) -> list[Approval]:
        return [a for a in self.approvals.values() if a.open]

    @property
    def result(self) -> Any:
        return serde.loads(self.result_json)

    def open_interventions(self) -> list[Intervention]:
        return [i for i in self.interventions.values() if i.open]

    def context_summary(self) -> str:
        """The completed steps in a form an LLM prompt can carry (the article's
        ``get_current_context``)."""
        done = [s for s in sorted(self.steps.values(), key=_index) if s.status is _COMPLETED]
        if not done:
            return "No previous steps. Starting fresh."
        lines = [
            f"Step {s.index} ({s.name}): {s.status.value} - {s.agent_reasoning or ''}".rstrip(" -")
            for s in done
        ]
        return "Previously completed steps:\n" + "\n".join(lines)


_COMPLETED = StepStatus.COMPLETED


def _index(step: StepState) -> int:
    return step.index


def apply(state: TaskState, event: Event) -> TaskState:
    """Fold one event into ``state`` (in place) and return it."""
    kind = event.kind
    state.last_seq = event.seq
    state.updated_at = event.timestamp
    steps = state.steps
    if kind is EventKind.STEP_STARTED:
        assert event.step_index is not None
        assert event.step_name is not None
        steps[event.step_index] = StepState(
            index=event.step_index,
            name=event.step_name,
            status=StepStatus.IN_PROGRESS,
            inputs_json=event.inputs_json,
            agent_reasoning=event.agent_reasoning,
            started_at=event.timestamp,
            inputs_refreshed=bool(event.data and event.data.get("edited")),
        )
    elif kind is EventKind.STEP_COMPLETED:
        step = steps[event.step_index]  # type: ignore[index]
        step.status = StepStatus.COMPLETED
        step.outputs_json = event.outputs_json
        step.error = None
        step.finished_at = event.timestamp
        step.completed_by = event.actor
        step.rerun_authorized = False
        step.retry_at = None
    elif kind is EventKind.STEP_FAILED:
        step = steps[event.step_index]  # type: ignore[index]
        step.status = StepStatus.FAILED
        step.error = event.error
        step.finished_at = event.timestamp
        step.rerun_authorized = False
        step.failure_class = (event.error or {}).get("failure_class")
        step.retry_at = (event.data or {}).get("retry_at")
    elif kind is EventKind.STEP_RETRIED:
        step = steps[event.step_index]  # type: ignore[index]
        if step.rerun_authorized:  # a human's retry starts a fresh retry budget
            step.retry_base = step.attempts
            step.window_started_at = event.timestamp
        step.status = StepStatus.IN_PROGRESS
        step.attempts += 1
        step.error = None
        step.finished_at = None
        step.rerun_authorized = False
        step.retry_at = None
        if event.inputs_json is not None:
            step.inputs_json = event.inputs_json
            step.inputs_refreshed = True
    elif kind is EventKind.TASK_CLAIMED:
        state.epoch = int((event.data or {}).get("epoch", state.epoch + 1))
        if not state.status.terminal:
            state.status = TaskStatus.IN_PROGRESS
    elif kind is EventKind.TIMER_SET:
        state.wake_at = float((event.data or {})["due"])
    elif kind is EventKind.APPROVAL_REQUESTED:
        request = ApprovalRequest.from_dict(event.data or {})
        previous = state.approval_of_step.get(request.step_index)
        if previous is not None and previous in state.approvals:
            state.approvals[previous].superseded_by = request.request_id
        state.approvals[request.request_id] = Approval(request)
        state.approval_of_step[request.step_index] = request.request_id
        state.queued_for_approval.pop(request.step_index, None)
        state.status = TaskStatus.AWAITING_APPROVAL
    elif kind is EventKind.APPROVAL_QUEUED:
        assert event.step_index is not None
        first = state.queued_for_approval.get(event.step_index)
        data = dict(event.data or {})
        data["queued_at"] = first["queued_at"] if first else event.timestamp
        state.queued_for_approval[event.step_index] = data
        state.status = TaskStatus.AWAITING_APPROVAL
    elif kind is EventKind.APPROVAL_REMINDED:
        rid = str((event.data or {})["request_id"])
        state.approvals[rid].reminded_at = event.timestamp
    elif kind is EventKind.APPROVAL_DECIDED:
        decision = Decision.from_dict(
            {**(event.data or {}), "by": event.actor, "at": event.timestamp}
        )
        approval = state.approvals[decision.request_id]
        approval.decisions.append(decision)
        state.status = TaskStatus.AWAITING_APPROVAL if approval.open else TaskStatus.PENDING
    elif kind is EventKind.INTERVENTION_RAISED:
        data = dict(event.data or {})
        iid = str(data.pop("intervention_id"))
        state.interventions[iid] = Intervention(
            intervention_id=iid,
            task_id=event.task_id,
            kind=str(data.pop("kind", "unknown")),
            reason=str(data.pop("reason", "")),
            raised_at=event.timestamp,
            step_index=event.step_index,
            step_name=event.step_name,
            details=data,
        )
        state.status = TaskStatus.AWAITING_INTERVENTION
    elif kind is EventKind.INTERVENTION_RESOLVED:
        data = event.data or {}
        item = state.interventions[str(data["intervention_id"])]
        item.resolved_at = event.timestamp
        item.resolved_by = event.actor
        item.resolution = str(data.get("action"))
        item.comment = data.get("comment")
        if item.resolution == "retry" and item.step_index in steps:
            steps[item.step_index].rerun_authorized = True
        if item.resolution == "retry" and item.kind == "budget" and item.step_index is not None:
            state.budget_grants.add(item.step_index)
        if not state.open_interventions():
            state.status = TaskStatus.PENDING
    elif kind is EventKind.CANCEL_REQUESTED:
        state.cancel_requested_by = event.actor or "unknown"
    elif kind is EventKind.TASK_HALTED:
        state.status = TaskStatus.HALTED
    elif kind is EventKind.TASK_RELEASED:
        state.status = TaskStatus.PENDING
    elif kind is EventKind.TASK_RESUMED:
        for step in steps.values():
            if step.status is StepStatus.FAILED:
                step.rerun_authorized = True
        state.error = None
        state.status = TaskStatus.PENDING
    elif kind is EventKind.TASK_CREATED:
        data = event.data or {}
        state.workflow = str(data.get("workflow", ""))
        state.queue = str(data.get("queue", "default"))
        state.initiator = event.actor
        state.inputs_json = event.inputs_json
        state.created_at = event.timestamp
        state.status = TaskStatus.PENDING
    elif kind is EventKind.TASK_COMPLETED:
        state.result_json = event.outputs_json
        state.status = TaskStatus.COMPLETED
    elif kind is EventKind.TASK_FAILED:
        state.error = event.error
        state.status = TaskStatus.FAILED
    elif kind is EventKind.TASK_CANCELLED:
        state.status = TaskStatus.CANCELLED
    return state


def fold(events: Iterable[Event], task_id: str | None = None) -> TaskState:
    """The state of a task: every event applied in order."""
    state: TaskState | None = None if task_id is None else TaskState(task_id=task_id)
    for event in events:
        if state is None:
            state = TaskState(task_id=event.task_id)
        apply(state, event)
    if state is None:
        raise ValueError("fold() needs at least one event or a task_id")
    return state
