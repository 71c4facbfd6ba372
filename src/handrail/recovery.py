"""Recovering a step: in-doubt calls after a crash and failed attempts, by failure class.

These functions act on a :class:`~handrail.context.TaskContext`; docs/durability.md and
docs/failures.md state the rules they implement.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, NoReturn

from handrail import serde
from handrail._plans import Recorded, StepRun
from handrail.errors import HumanInterventionRequired, Suspended, TaskFailure
from handrail.failures import (
    FailureClass,
    RetryDecision,
    decide,
    http_status,
    may_have_taken_effect,
    retry_after,
)
from handrail.journal import EventKind
from handrail.tools import NOT_DONE, UNKNOWN, Reversibility, Tool, ToolCall, idempotency_key

if TYPE_CHECKING:
    from handrail.context import TaskContext

_COMPLETED = EventKind.STEP_COMPLETED
_NEEDED = {
    "permission": "grant the access the tool needs (or fix credentials), then retry; or "
    "supply the result, skip the step, or fail the task",
    "data_error": "investigate and fix the data, then retry; or supply the result, skip the "
    "step, or fail the task",
    "stale_data": "re-read the record and retry, or supply the result",
    "in_doubt": "check whether the call took effect in the target system: mark it done with "
    "its output if it did, retry if it did not, or fail the task",
}


def reconcile(
    ctx: TaskContext, tool: Tool, index: int, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Ask the tool's reconcile whether an in-doubt call took effect (UNKNOWN if it
    has none)."""
    if tool.reconcile is None:
        return UNKNOWN
    call = ToolCall(
        task_id=ctx.task_id,
        step_index=index,
        tool=tool.name,
        args=args,
        kwargs={k: v for k, v in kwargs.items() if k != "idempotency_key"},
        idempotency_key=idempotency_key(ctx.task_id, index),
    )
    return tool.reconcile(call)


def record_reconciled(ctx: TaskContext, tool: Tool, index: int, verdict: Any) -> Recorded:
    outputs_json = serde.dumps(verdict, what="reconciled output", step=tool.name)
    ctx._write(
        [
            ctx._event(
                _COMPLETED,
                step_index=index,
                step_name=tool.name,
                outputs_json=outputs_json,
                data={"via": "reconcile"},
            )
        ]
    )
    return Recorded(serde.loads(outputs_json))


def failure_of(ctx: TaskContext, tool: Tool, index: int, error: dict[str, Any]) -> TaskFailure:
    return TaskFailure(
        task_id=ctx.task_id,
        step_index=index,
        tool=tool.name,
        error_type=str(error.get("type", "Error")),
        message=str(error.get("message", "")),
        failure_class=error.get("failure_class"),
    )


def raise_in_doubt(ctx: TaskContext, tool: Tool, index: int, verdict: Any) -> NoReturn:
    what = (
        "irreversible"
        if tool.reversibility is Reversibility.IRREVERSIBLE
        else ("not idempotent and takes no idempotency key")
    )
    hint = " (reconcile says it did not happen)" if verdict is NOT_DONE else ""
    reason = (
        f"step {index} ({tool.name}) was in progress when its worker stopped; it is {what}, "
        f"so whether its effect happened is in doubt{hint}. Check the target system, then "
        "mark it done with its output, run it again, or fail the task."
    )
    ctx.raise_intervention(
        "in_doubt",
        reason,
        step_index=index,
        step_name=tool.name,
        details={
            "options": ["mark_done", "retry", "fail"],
            "reversibility": tool.reversibility.value,
        },
    )


def recover(ctx: TaskContext, tool: Tool, plan: StepRun, exc: BaseException) -> StepRun | Recorded:
    """Journal a failed attempt and act on its class: return the next attempt to run
    now (stale data refreshed) or the output a reconcile found, or suspend (back-off,
    intervention), or raise ``TaskFailure``."""
    now = ctx._clock.now()
    policy = tool.retry or ctx._retry_policy
    elapsed = now - (plan.first_at if plan.first_at is not None else now)
    budget_attempt = plan.attempt - plan.base
    kind: str | None = None
    if isinstance(exc, HumanInterventionRequired):
        failure_class = FailureClass(exc.failure_class or FailureClass.PERMISSION)
        decision = RetryDecision("intervene", failure_class, reason=str(exc))
    else:
        failure_class = ctx._classifier.classify(exc, tool.rules)
        decision = decide(
            failure_class,
            attempt=budget_attempt,
            policy=policy,
            elapsed=elapsed,
            server_delay=retry_after(exc, now),
            can_refresh=tool.refresh is not None,
        )
    error: dict[str, Any] = {
        "type": type(exc).__qualname__,
        "message": str(exc)[:4000],
        "step_index": plan.index,
        "tool": tool.name,
        "failure_class": failure_class.value,
        "attempt": plan.attempt,
    }
    status = http_status(exc)
    if status is not None:
        error["http_status"] = status
    ctx.audit_attempt(tool, plan, error=error, failure_class=failure_class.value)
    breaker = tool.circuit_breaker or ctx._breaker
    if failure_class is FailureClass.TRANSIENT and breaker and ctx._circuits is not None:
        circuit = ctx._circuits.failed(tool.name, breaker)
        if circuit.open(now):
            error["circuit_open_until"] = circuit.open_until
    refreshed: tuple[tuple[Any, ...], dict[str, Any], str] | None = None
    if decision.action == "refresh":
        try:
            refreshed = refresh(ctx, tool, plan, exc)
        except Exception as refresh_exc:
            # the re-read itself failed: decide by its class, keep the first error
            refresh_class = ctx._classifier.classify(refresh_exc)
            error["refresh_error"] = {
                "type": type(refresh_exc).__qualname__,
                "message": str(refresh_exc)[:4000],
                "failure_class": refresh_class.value,
            }
            decision = decide(
                refresh_class,
                attempt=budget_attempt,
                policy=policy,
                elapsed=elapsed,
                server_delay=retry_after(refresh_exc, now),
            )
    elif decision.action == "retry" and not tool.safe_to_rerun and may_have_taken_effect(exc):
        verdict = reconcile(ctx, tool, plan.index, plan.args, plan.kwargs)
        if verdict is not NOT_DONE and verdict is not UNKNOWN:
            error["reconciled"] = True
            ctx._write(
                [
                    ctx._event(
                        EventKind.STEP_FAILED,
                        step_index=plan.index,
                        step_name=tool.name,
                        error=error,
                        data={"decision": "reconcile", "reason": "the effect happened"},
                    )
                ]
            )
            return record_reconciled(ctx, tool, plan.index, verdict)
        if verdict is UNKNOWN or tool.reversibility is Reversibility.IRREVERSIBLE:
            kind = "in_doubt"
            decision = RetryDecision(
                "intervene",
                failure_class,
                reason="the call may have taken effect before it failed, and the tool is "
                "not safe to re-run",
            )
    data: dict[str, Any] = {"decision": decision.action, "reason": decision.reason}
    if decision.action == "retry":
        # The back-off counts from the failure's record, whatever the handling above took.
        now = ctx._clock.now()
        data["retry_at"] = now + decision.delay
    failed = ctx._event(
        EventKind.STEP_FAILED,
        at=now if decision.action == "retry" else None,
        step_index=plan.index,
        step_name=tool.name,
        error=error,
        data=data,
    )
    if decision.action == "retry":
        due = now + decision.delay
        ctx._write([failed], run_at=due, release=True)
        raise Suspended(f"step {plan.index} ({tool.name}) retries at {due}: {exc}")
    if decision.action == "refresh" and refreshed is not None:
        ctx._write([failed])
        args, kwargs, inputs_json = refreshed
        step = ctx.state.steps[plan.index]
        return ctx._retry(
            tool, step, args, kwargs, "inputs refreshed after stale data", inputs_json
        )
    if decision.action == "intervene":
        ctx._write([failed])
        needed = _NEEDED.get(kind or failure_class.value, "decide how to continue")
        if isinstance(exc, HumanInterventionRequired) and exc.needed:
            needed = exc.needed
        ctx.raise_intervention(
            kind or failure_class.value,
            f"step {plan.index} ({tool.name}) failed ({failure_class.value}): "
            f"{error['type']}: {error['message']}",
            step_index=plan.index,
            step_name=tool.name,
            details={
                "failure_class": failure_class.value,
                "tool": tool.name,
                "error": error,
                "needed": needed,
                "options": ["retry", "mark_done", "skip", "fail"],
            },
        )
    ctx._write([failed])
    raise failure_of(ctx, tool, plan.index, error) from exc


def refresh(
    ctx: TaskContext, tool: Tool, plan: StepRun, exc: BaseException
) -> tuple[tuple[Any, ...], dict[str, Any], str]:
    """The tool's refresh hook's new inputs, bound and encoded."""
    assert tool.refresh is not None
    call = ToolCall(
        task_id=ctx.task_id,
        step_index=plan.index,
        tool=tool.name,
        args=plan.args,
        kwargs={k: v for k, v in plan.kwargs.items() if k != "idempotency_key"},
        idempotency_key=idempotency_key(ctx.task_id, plan.index),
    )
    args, kwargs = rebind(tool, call.args, call.kwargs, tool.refresh(call, exc))
    inputs_json = serde.dumps(
        {"args": args, "kwargs": kwargs}, what="refreshed input", step=tool.name
    )
    return args, kwargs, inputs_json


def rebind(
    tool: Tool,
    call_args: tuple[Any, ...],
    call_kwargs: dict[str, Any],
    updates: Any,
    *,
    source: str = "the refresh hook",
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call's arguments with ``{param: value}`` updates applied (a refresh hook's new
    inputs, an approver's edit), each passed the way the call passed it."""
    if not isinstance(updates, dict):
        raise TypeError(
            f"{source} of tool {tool.name!r} must return a dict of parameter values, "
            f"not {type(updates).__name__}"
        )
    params = inspect.signature(tool.fn).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    positional = [
        p.name
        for p in params.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ][: len(call_args)]
    args, kwargs = list(call_args), dict(call_kwargs)
    for name, value in updates.items():
        if name in positional:  # passed by position: stays positional
            args[positional.index(name)] = value
        elif name in params or takes_any:  # passed by keyword, or not passed: by keyword
            kwargs[name] = value
        else:
            raise TypeError(
                f"{source} of tool {tool.name!r} names {name!r}, which it does not take"
            )
    return tuple(args), kwargs
