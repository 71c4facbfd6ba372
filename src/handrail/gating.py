"""Gating a new step: halts, circuit breakers, budgets and rate limits.

These functions act on a :class:`~handrail.context.TaskContext`; the policies are in
:mod:`handrail.controls`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from handrail.controls import Gate, check_call
from handrail.errors import Halted, Suspended
from handrail.journal import OPENS_STEP, Event, EventKind, TaskStatus
from handrail.tools import Tool

if TYPE_CHECKING:
    from handrail.context import TaskContext


def park_halted(ctx: TaskContext, halt: Halted, refused: Sequence[Event]) -> None:
    """Park the task at this boundary until the halt is released."""
    tools = [e.step_name for e in refused if e.kind in OPENS_STEP]
    event = ctx._event(
        EventKind.TASK_HALTED,
        step_index=refused[0].step_index if refused else None,
        step_name=tools[0] if tools else None,
        actor=halt.halted_by,
        data={"halt_id": halt.halt_id, "scope": halt.scope, "target": halt.target},
    )
    ctx._write([event], status=TaskStatus.HALTED, run_at=None, release=True)


def gate(ctx: TaskContext, tool: Tool, index: int) -> Gate | None:
    """The control (circuit, budget, rate limit) that stops this new call, if any."""
    until = circuit_open_until(ctx, tool)
    if (
        until is None
        and ctx.max_steps is None
        and tool.max_calls_per_task is None
        and tool.task_rate_limit is None
        and tool.rate_limit is None
    ):
        return None
    now = ctx._clock.now()
    state = ctx.state

    def calls_in_task(since: float | None) -> int:
        return sum(
            1
            for s in state.steps.values()
            if s.name == tool.name and (since is None or s.started_at > since)
        )

    def oldest_in_window(since: float) -> float:
        return min(
            s.started_at
            for s in state.steps.values()
            if s.name == tool.name and s.started_at > since
        )

    limit = tool.rate_limit
    take = None
    if limit is not None:

        def take() -> float | None:
            return ctx._store.take_rate_token(
                f"tool:{tool.name}", now=now, limit=limit.calls, interval=limit.per
            )

    return check_call(
        tool=tool.name,
        index=index,
        calls_in_task=calls_in_task,
        now=now,
        circuit_open_until=until,
        max_calls_per_task=tool.max_calls_per_task,
        task_rate_limit=tool.task_rate_limit,
        oldest_in_window=oldest_in_window,
        max_steps=ctx.max_steps,
        granted=index in state.budget_grants,
        take_tool_token=take,
    )


def circuit_open_until(ctx: TaskContext, tool: Tool) -> float | None:
    if ctx._circuits is None or not (tool.circuit_breaker or ctx._breaker):
        return None
    return ctx._circuits.open_until(tool.name)


def stop_at_gate(ctx: TaskContext, gate: Gate, tool: Tool, index: int) -> NoReturn:
    if gate.kind == "wait":
        timer = ctx._event(
            EventKind.TIMER_SET,
            step_index=index,
            step_name=tool.name,
            data={"due": gate.due, "reason": gate.reason},
        )
        ctx._write([timer], run_at=gate.due, release=True)
        raise Suspended(f"step {index} ({tool.name}) waits until {gate.due}: {gate.reason}")
    ctx.raise_intervention(
        "budget",
        gate.reason,
        step_index=index,
        step_name=tool.name,
        details={
            **(gate.details or {}),
            "needed": "allow this call (retry) or fail the task",
            "options": ["retry", "fail"],
        },
    )
