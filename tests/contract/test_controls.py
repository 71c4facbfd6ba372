"""The stop button, circuit breakers, rate limits and budgets, on every store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import handrail
from handrail import App, EventKind, TaskContext, TaskStatus
from handrail.controls import CircuitBreaker, RateLimit
from handrail.failures import RetryPolicy
from handrail.testing import ManualClock

MakeApp = Callable[..., App]


def test_halting_a_tool_stops_at_the_next_boundary_until_released(make_app: MakeApp) -> None:
    app = make_app(max_inline_wait=0)
    calls: list[str] = []

    @app.tool(idempotent=True)
    def read(i: int) -> int:
        calls.append(f"read{i}")
        if i == 1:
            app.halt("tool", "send", by="ops", reason="vendor outage")
        return i

    @app.tool
    def send(i: int) -> str:
        calls.append(f"send{i}")
        return f"sent{i}"

    @app.workflow
    def wf(ctx: TaskContext) -> list[Any]:
        return [read(0), send(0), read(1), send(1), read(2)]

    handle = app.run(wf)
    assert calls == ["read0", "send0", "read1"]
    assert handle.status() is TaskStatus.HALTED
    events = handle.events()
    assert events[-1].kind is EventKind.TASK_HALTED
    assert events[-1].actor == "ops"
    assert events[-1].step_name.endswith("send")
    state = handle.state()
    assert state.steps[2].status.value == "completed"  # the running step's result was kept
    assert 3 not in state.steps  # the halted call never got an intent
    with pytest.raises(handrail.InvalidOperationError):
        app.execute(handle.task_id)
    assert app.release("tool", "send", by="ops") == [handle.task_id]
    app.execute(handle.task_id)
    assert handle.result() == [0, "sent0", 1, "sent1", 2]
    assert calls == ["read0", "send0", "read1", "send1", "read2"]
    assert [e.kind for e in handle.events()].count(EventKind.TASK_RELEASED) == 1
    assert [h.released_by for h in app.store.list_halts(active_only=False)] == ["ops"]


def test_halting_everything_or_one_task(make_app: MakeApp) -> None:
    app = make_app()

    @app.tool(idempotent=True)
    def step(i: int) -> int:
        return i

    @app.workflow
    def wf(ctx: TaskContext) -> int:
        return step(1) + step(2)

    a = app.start(wf)
    b = app.start(wf)
    app.halt("all", by="boss")
    with pytest.raises(handrail.InvalidOperationError):  # nothing new runs
        app.execute(a.task_id)
    app.halt("task", a.task_id, by="ops")
    app.release("all", by="boss")
    app.execute(b.task_id)
    assert b.result() == 3
    with pytest.raises(handrail.InvalidOperationError):
        app.execute(a.task_id)
    with pytest.raises(handrail.InvalidOperationError, match="principal"):
        app.release("task", a.task_id, by="")
    app.release("task", a.task_id, by="ops")
    app.execute(a.task_id)
    assert a.result() == 3
    with pytest.raises(handrail.InvalidOperationError, match="no active halt"):
        app.release("all", by="boss")
    with pytest.raises(handrail.NotFoundError):
        app.halt("task", "no-such-task", by="ops")


def test_circuit_opens_across_tasks_and_calls_wait_for_it(
    make_app: MakeApp, clock: ManualClock
) -> None:
    app = make_app(
        max_inline_wait=0,
        circuit_breaker=CircuitBreaker(threshold=2, cooldown=60),
        retry_policy=RetryPolicy(max_attempts=5, initial_delay=1, jitter=False),
    )
    broken = {"on": True}

    @app.tool(idempotent=True)
    def vendor() -> str:
        if broken["on"]:
            raise ConnectionResetError("vendor reset the connection")
        return "ok"

    @app.workflow
    def wf(ctx: TaskContext) -> str:
        return str(vendor())

    a = app.run(wf)  # transient failure 1: back-off 1 s
    clock.advance(1)
    app.execute(a.task_id)  # failure 2: the circuit opens for 60 s
    (circuit,) = app.circuits.states()
    assert circuit.failures == 2
    assert circuit.open(clock.now())
    b = app.run(wf)  # another task: its call waits for the circuit, it does not fail
    timer = b.events()[-1]
    assert timer.kind is EventKind.TIMER_SET
    assert "circuit" in timer.data["reason"]
    record = app.store.get_task(b.task_id)
    assert record is not None
    assert record.run_at == circuit.open_until
    assert record.lease_owner is None
    assert b.status() is TaskStatus.IN_PROGRESS
    broken["on"] = False
    clock.advance(61)
    app.execute(b.task_id)
    assert b.result() == "ok"
    (closed,) = app.circuits.states()
    assert closed.failures == 0
    app.execute(a.task_id)
    assert a.result() == "ok"


def test_budget_per_task_pauses_with_an_intervention(make_app: MakeApp) -> None:
    app = make_app()
    sent: list[int] = []

    @app.tool(max_calls_per_task=2)
    def email(i: int) -> int:
        sent.append(i)
        return i

    @app.workflow(max_steps=10)
    def wf(ctx: TaskContext) -> int:
        return sum(email(i) for i in range(4))

    handle = app.run(wf)
    assert sent == [0, 1]
    assert handle.status() is TaskStatus.AWAITING_INTERVENTION
    (item,) = app.interventions()
    assert item.kind == "budget"
    assert item.details["budget"] == "max_calls_per_task"
    app.resolve_intervention(item.intervention_id, action="retry", by="ops")
    app.execute(handle.task_id)  # one more call allowed; the fourth asks again
    assert sent == [0, 1, 2]
    (again,) = app.interventions()
    app.resolve_intervention(again.intervention_id, action="retry", by="ops")
    app.execute(handle.task_id)
    assert handle.result() == 6
    assert sent == [0, 1, 2, 3]


def test_workflow_step_budget(make_app: MakeApp) -> None:
    app = make_app()

    @app.tool(idempotent=True)
    def tick(i: int) -> int:
        return i

    @app.workflow(max_steps=3)
    def runaway(ctx: TaskContext) -> None:
        for i in range(100):
            tick(i)

    handle = app.run(runaway)
    assert handle.status() is TaskStatus.AWAITING_INTERVENTION
    (item,) = app.interventions()
    assert item.step_index == 3
    app.resolve_intervention(item.intervention_id, action="fail", by="ops")
    assert handle.status() is TaskStatus.FAILED


def test_rate_limits_wait_durably(make_app: MakeApp, clock: ManualClock) -> None:
    app = make_app(max_inline_wait=0)
    clock.set(1_000_020.0)  # a window boundary

    @app.tool(idempotent=True, rate_limit=RateLimit(calls=2, per=10))
    def api(i: int) -> int:
        return i

    @app.tool(idempotent=True, task_rate_limit=RateLimit(calls=1, per=5))
    def slow(i: int) -> int:
        return i

    @app.workflow
    def many(ctx: TaskContext) -> int:
        return api(1) + api(2) + api(3)

    @app.workflow
    def paced(ctx: TaskContext) -> int:
        return slow(1) + slow(2)

    handle = app.run(many)
    timer = handle.events()[-1]
    assert timer.kind is EventKind.TIMER_SET
    assert timer.data["due"] == 1_000_030.0
    clock.advance(10)
    app.execute(handle.task_id)
    assert handle.result() == 6

    p = app.run(paced)
    assert p.events()[-1].kind is EventKind.TIMER_SET
    assert p.events()[-1].data["due"] == pytest.approx(clock.now() + 5)
    clock.advance(5)
    app.execute(p.task_id)
    assert p.result() == 3
