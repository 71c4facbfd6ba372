"""The approval gate: what a new step does when its call needs a human's approval.

It runs before the step's intent is journaled, on every run of the workflow (first run and
replay alike), and decides from the journal:

- no request yet, and the policy requires one: journal the request (or queue it when the
  approver group is at its cap), tell the approvers, and suspend: the task holds no worker;
- a request pending: let its timer decide once its deadline has passed, remind the approvers
  once before an auto-deny, or suspend again until the next due time;
- denied: raise :class:`~handrail.errors.ApprovalDenied` (the same way on every replay);
- approved: re-check it against the policy in force now and the call's digest (fail closed:
  a new request, the call does not run), then run with the approver's edits, if any.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from handrail import serde
from handrail.approval_load import group_load, group_lock
from handrail.approvals import (
    APPROVED,
    AUTO_APPROVE_TIMER,
    AUTO_DENY_TIMER,
    DENIED,
    TIMEOUT_NO_RESPONSE,
    Approval,
    ApprovalPolicy,
    ApprovalRequest,
    Decision,
    ProposedAction,
    approval_holds,
    digest,
    named_params,
    render,
)
from handrail.errors import ApprovalDenied, Suspended
from handrail.journal import EventKind, TaskStatus
from handrail.tools import Reversibility, Tool

if TYPE_CHECKING:
    from handrail.context import TaskContext

Notify = Callable[[str, dict[str, Any]], None]
"""``notify(kind, facts)``: hand a notification to the app's notifiers (never raises)."""


@dataclass(frozen=True)
class GateSettings:
    """The app-wide approval settings a task context carries."""

    policy: ApprovalPolicy
    max_pending: int | None = 100
    queue_recheck: float = 5.0
    queue_recheck_max: float = 3600.0
    notify: Notify | None = None


def needs_check(tool: Tool, policy: ApprovalPolicy) -> bool:
    """Cheap pre-check: can this tool's calls need approval at all?"""
    if tool.reversibility is Reversibility.IRREVERSIBLE:
        return True
    return policy.require not in ("never", "irreversible")


def check(
    ctx: TaskContext,
    tool: Tool,
    index: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    reasoning: str | None,
    expected: str | None,
    policy: ApprovalPolicy,
    settings: GateSettings,
) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any] | None]:
    """The arguments to run the call with, and the facts to journal on its intent; or
    suspend / raise ``ApprovalDenied``."""
    state = ctx.state
    approval = state.approval_for_step(index)
    if approval is not None and approval.status == "denied":
        raise _denied(ctx, tool, index, approval)
    params = named_params(tool, args, kwargs)
    action = ProposedAction(
        tool.name, params, tool.reversibility.value, ctx.task_id, state.initiator
    )
    required = policy.requires(action)
    if approval is None:
        if not required:
            return args, kwargs, None
        _request(ctx, tool, index, args, kwargs, params, policy, settings, reasoning, expected)
    current = digest(tool.name, params)
    if approval.open:
        approval = _on_pending(ctx, tool, index, approval, policy, settings)
    if required:
        why = approval_holds(
            approval, policy=policy, current_digest=current, initiator=state.initiator
        )
        if why is not None:
            _request(
                ctx,
                tool,
                index,
                args,
                kwargs,
                params,
                policy,
                settings,
                reasoning,
                expected,
                supersedes=approval.request_id,
                why=why,
            )
    facts: dict[str, Any] = {"approval": approval.request_id}
    edit = approval.edited
    if edit is not None and edit.edited_parameters is not None:
        from handrail.recovery import rebind

        changes = {k: v for k, v in edit.edited_parameters.items() if params.get(k) != v}
        args, kwargs = rebind(tool, args, kwargs, changes, source="the approver's edit")
        facts["edited"] = True
    return args, kwargs, facts


def _denied(ctx: TaskContext, tool: Tool, index: int, approval: Approval) -> ApprovalDenied:
    denial = approval.denial
    assert denial is not None
    return ApprovalDenied(
        task_id=ctx.task_id,
        step_index=index,
        tool=tool.name,
        request_id=approval.request_id,
        denied_by=denial.by,
        reason=denial.reason,
        comment=denial.comment,
    )


def _on_pending(
    ctx: TaskContext,
    tool: Tool,
    index: int,
    approval: Approval,
    policy: ApprovalPolicy,
    settings: GateSettings,
) -> Approval:
    """A pending request: its deadline decides it, a reminder goes out, or the task waits."""
    request = approval.request
    now = ctx._clock.now()
    if request.expires_at is not None and now >= request.expires_at:
        action = request.deadline_action
        if action == APPROVED and policy.auto_approve_for(request.reversibility) is not None:
            decision = Decision(
                request.request_id, APPROVED, AUTO_APPROVE_TIMER, now, request.digest,
                reason="auto_approve_after",
            )  # fmt: skip
        else:
            decision = Decision(
                request.request_id, DENIED, AUTO_DENY_TIMER, now, request.digest,
                reason=TIMEOUT_NO_RESPONSE,
            )  # fmt: skip
        event = ctx._event(
            EventKind.APPROVAL_DECIDED,
            step_index=index,
            step_name=tool.name,
            actor=decision.by,
            data={k: v for k, v in decision.to_dict().items() if k not in ("by", "at")},
        )
        ctx._write([event])
        approval.decisions.append(decision)
        if decision.decision == DENIED:
            raise _denied(ctx, tool, index, approval)
        return approval
    if (
        request.remind_at is not None
        and approval.reminded_at is None
        and now >= request.remind_at
        and request.deadline_action == DENIED
    ):
        event = ctx._event(
            EventKind.APPROVAL_REMINDED,
            step_index=index,
            step_name=tool.name,
            data={"request_id": request.request_id},
        )
        _park(ctx, [event], request.expires_at, f"waiting for approval {request.request_id}")
        # unreachable: _park raises
    due = _next_due(approval, now)
    _park(ctx, [], due, f"waiting for approval {request.request_id}")


def _next_due(approval: Approval, now: float) -> float | None:
    request = approval.request
    dues = [t for t in (request.expires_at,) if t is not None]
    if request.remind_at is not None and approval.reminded_at is None:
        dues.append(request.remind_at)
    return min(dues) if dues else None


def _park(ctx: TaskContext, events: list[Any], due: float | None, why: str) -> NoReturn:
    ctx._write(events, status=TaskStatus.AWAITING_APPROVAL, run_at=due, release=True)
    for event in events:
        if event.kind is EventKind.APPROVAL_REMINDED:
            request = ctx.state.approvals[event.data["request_id"]].request
            _notify(ctx, "approval_reminder", {"request": request})
    raise Suspended(why)


def _notify(ctx: TaskContext, kind: str, facts: dict[str, Any]) -> None:
    settings = ctx._gate_settings
    if settings is not None and settings.notify is not None:
        settings.notify(kind, facts)


def _request(
    ctx: TaskContext,
    tool: Tool,
    index: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    params: dict[str, Any],
    policy: ApprovalPolicy,
    settings: GateSettings,
    reasoning: str | None,
    expected: str | None,
    *,
    supersedes: str | None = None,
    why: str | None = None,
) -> NoReturn:
    """Journal a new request (or queue it when its approver group is full) and suspend."""
    group = policy.group_name
    journal = functools.partial(
        _journal_request, ctx, tool, index, args, kwargs, params, policy, reasoning, expected,
        supersedes=supersedes, why=why,
    )  # fmt: skip
    if settings.max_pending is None:
        request = journal(ctx._clock.now())
    else:
        # The group's load is read and the request (or the queued call) written under the
        # group's lock, which every process on the store shares: none passes the cap.
        with group_lock(ctx._store, group):
            now = ctx._clock.now()
            _queue_if_full(ctx, tool, index, group, settings, now)
            request = journal(now)
    _notify(ctx, "approval_requested", {"request": request})
    raise Suspended(f"waiting for approval {request.request_id}")


def _journal_request(
    ctx: TaskContext,
    tool: Tool,
    index: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    params: dict[str, Any],
    policy: ApprovalPolicy,
    reasoning: str | None,
    expected: str | None,
    now: float,
    *,
    supersedes: str | None,
    why: str | None,
) -> ApprovalRequest:
    """Write the ``approval_requested`` event of a new request; return the request."""
    state = ctx.state
    group = policy.group_name
    rev = tool.reversibility.value
    auto_approve = policy.auto_approve_for(rev)
    auto_deny = policy.auto_deny_after
    if auto_approve is None and auto_deny is None and policy.auto_approve_after is not None:
        auto_deny = policy.auto_approve_after  # refused auto-approval: its deadline denies
    delays = [d for d in (auto_approve, auto_deny) if d is not None]
    expires_at = now + min(delays) if delays else None
    remind_at = None
    if policy.remind_before is not None and auto_deny is not None and expires_at is not None:
        remind_at = max(now, expires_at - policy.remind_before)
    request = ApprovalRequest(
        request_id=f"{ctx.task_id}/{uuid.uuid4().hex[:8]}",
        task_id=ctx.task_id,
        requesting_agent=ctx.agent,
        proposed_action=tool.description(args, kwargs),
        action_parameters=params,
        agent_reasoning=reasoning or "",
        expected_outcome=expected
        or render(policy.expected_outcome, params)
        or render(tool.expected_outcome, params)
        or f"{tool.name} runs once with the parameters shown",
        reversibility=rev,
        auto_approve_after=auto_approve,
        auto_deny_after=auto_deny,
        context_summary=state.context_summary(),
        approvers=policy.approvers,
        quorum=policy.quorum,
        group=group,
        tool=tool.name,
        step_index=index,
        digest=digest(tool.name, params),
        created_at=now,
        expires_at=expires_at,
        initiator=state.initiator,
        remind_at=remind_at,
        supersedes=supersedes,
    )
    data = request.to_dict()
    if why is not None:
        data["supersede_reason"] = why
    event = ctx._event(
        EventKind.APPROVAL_REQUESTED,
        step_index=index,
        step_name=tool.name,
        inputs_json=serde.dumps({"args": args, "kwargs": kwargs}, what="input", step=tool.name),
        agent_reasoning=reasoning,
        requires_human_approval=True,
        data=data,
    )
    ctx._write(
        [event], status=TaskStatus.AWAITING_APPROVAL, run_at=_first(remind_at, expires_at),
        release=True,
    )  # fmt: skip
    return request


def _first(*times: float | None) -> float | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None


def _queue_if_full(
    ctx: TaskContext, tool: Tool, index: int, group: str, settings: GateSettings, now: float
) -> None:
    """Flood control: past the group's cap, the call queues (nothing lost) and re-checks."""
    assert settings.max_pending is not None
    mine = ctx.state.queued_for_approval.get(index)
    my_turn = (mine["queued_at"] if mine else now, ctx.task_id)
    pending, queued = group_load(ctx._store, group, exclude_task=ctx.task_id)
    ahead = sum(1 for entry in queued if entry < my_turn)
    if pending + ahead < settings.max_pending:
        return
    # A call N places from a free slot cannot get one before N decisions; it re-checks as
    # if they came one every ``queue_recheck`` seconds (a fast approver), at least once an
    # hour. The head of the queue still looks every 5 s, and a queue of thousands re-checks
    # a few times a second in all (benchmarks/flood_bench.py).
    behind = pending + ahead - settings.max_pending + 1
    due = now + min(settings.queue_recheck * behind, settings.queue_recheck_max)
    if mine is not None:
        _park(ctx, [], due, f"approval queue of group {group} is full")
    event = ctx._event(
        EventKind.APPROVAL_QUEUED,
        step_index=index,
        step_name=tool.name,
        data={"group": group, "cap": settings.max_pending, "pending": pending, "ahead": ahead},
    )
    ctx._write([event], status=TaskStatus.AWAITING_APPROVAL, run_at=due, release=True)
    _notify(
        ctx,
        "approval_queue_full",
        {
            "group": group,
            "cap": settings.max_pending,
            "queued": len(queued) + 1,
            "task_id": ctx.task_id,
            "step_index": index,
        },
    )
    raise Suspended(f"approval queue of group {group} is full ({settings.max_pending} pending)")
