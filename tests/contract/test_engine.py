"""Workflow semantics on every store: write-ahead, replay, in-doubt steps, interventions.

A crash is simulated here by a BaseException escaping the tool (the process 'dies' with the
lease held); tests/integration/crash does the same with real SIGKILLed processes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import handrail
from handrail import (
    NOT_DONE,
    UNKNOWN,
    App,
    EventKind,
    NonDeterminismError,
    SerializationError,
    TaskContext,
    TaskFailedError,
    TaskStatus,
    ToolCallFailed,
    ops,
)
from handrail.testing import ManualClock

MakeApp = Callable[..., App]


class Crash(BaseException):
    """The process dies here."""


def kinds(app: App, task_id: str) -> list[EventKind]:
    return [e.kind for e in app.store.load_events(task_id)]


def restart(make_app: MakeApp, setup: Callable[[App], Any]) -> tuple[App, Any]:
    app = make_app(worker_id="w")
    return app, setup(app)


def test_runs_steps_and_records_each_once(make_app: MakeApp) -> None:
    app = make_app()
    calls: list[int] = []

    @app.tool(idempotent=True)
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    @app.workflow
    def wf(ctx: TaskContext, n: int) -> list[int]:
        ctx.reason("doubling each number")
        return [double(i) for i in range(n)]

    handle = app.run(wf, 3)
    assert handle.result() == [0, 2, 4]
    assert calls == [0, 1, 2]
    events = handle.events()
    assert [e.seq for e in events] == list(range(len(events)))
    assert kinds(app, handle.task_id) == [
        EventKind.TASK_CREATED,
        EventKind.TASK_CLAIMED,
        *[EventKind.STEP_STARTED, EventKind.STEP_COMPLETED] * 3,
        EventKind.TASK_COMPLETED,
    ]
    started = [e for e in events if e.kind is EventKind.STEP_STARTED]
    assert [e.step_index for e in started] == [0, 1, 2]
    assert started[0].agent_reasoning == "doubling each number"
    assert started[0].inputs == {"args": [0], "kwargs": {}}
    assert started[0].status == "in_progress"
    assert handle.status() is TaskStatus.COMPLETED
    assert "Step 0 (" in handle.context_summary()
    assert "doubling each number" in handle.context_summary()


def test_intent_is_durable_before_the_step_and_result_before_the_next(make_app: MakeApp) -> None:
    app = make_app()
    seen: list[tuple[int, list[EventKind]]] = []

    def journal_now(task_id: str) -> list[EventKind]:
        return kinds(app, task_id)

    @app.tool(idempotent=True)
    def probe(i: int) -> int:
        ctx = handrail.current_task()
        assert ctx is not None
        seen.append((i, journal_now(ctx.task_id)))
        return i

    @app.tool
    def plain(i: int) -> int:
        ctx = handrail.current_task()
        assert ctx is not None
        seen.append((i, journal_now(ctx.task_id)))
        return i

    @app.workflow
    def wf(ctx: TaskContext) -> None:
        probe(0)
        probe(1)
        plain(2)
        plain(3)

    app.run(wf).result()
    for i, journal in seen:
        assert journal[-1] is EventKind.STEP_STARTED, f"step {i}: intent not durable first"
        assert journal.count(EventKind.STEP_STARTED) == i + 1
        assert journal.count(EventKind.STEP_COMPLETED) == i, f"step {i}: result of {i - 1} missing"


def test_replay_returns_recorded_outputs_without_running(make_app: MakeApp) -> None:
    calls: list[str] = []

    def setup(app: App) -> Any:
        @app.tool(idempotent=True)
        def fetch(x: int) -> dict[str, Any]:
            calls.append(f"fetch{x}")
            return {"x": x, "t": (1, 2)}

        @app.tool
        def act(x: int) -> str:
            calls.append(f"act{x}")
            if x == 2 and len([c for c in calls if c == "act2"]) == 1:
                raise Crash
            return f"done{x}"

        @app.workflow
        def wf(ctx: TaskContext) -> list[Any]:
            out = []
            for i in range(3):
                got = fetch(i)
                assert got["t"] == [1, 2]  # journaled value, first run and replay alike
                out.append(act(i))
            return out

        return wf

    app, wf = restart(make_app, setup)
    handle = app.start(wf)
    with pytest.raises(Crash):
        app.execute(handle.task_id)
    assert calls == ["fetch0", "act0", "fetch1", "act1", "fetch2", "act2"]
    app2, _ = restart(make_app, setup)
    app2.execute(handle.task_id)
    # act2 is plain and in doubt: not re-run, a human is asked
    assert calls == ["fetch0", "act0", "fetch1", "act1", "fetch2", "act2"]
    assert app2.handle(handle.task_id).status() is TaskStatus.AWAITING_INTERVENTION
    (item,) = ops.list_interventions(app2.store)
    assert item.kind == "in_doubt"
    assert item.step_index == 5
    assert "act" in (item.step_name or "")
    ops.resolve_intervention(
        app2.store,
        app2.clock,
        item.intervention_id,
        action="mark_done",
        actor="ops",
        output="done2-by-hand",
    )
    app2.execute(handle.task_id)
    assert app2.handle(handle.task_id).result() == ["done0", "done1", "done2-by-hand"]
    assert calls == ["fetch0", "act0", "fetch1", "act1", "fetch2", "act2"]


def _in_doubt_app(
    make_app: MakeApp, crash_once: list[bool], calls: list[Any], **tool_kwargs: Any
) -> tuple[App, Any]:
    def setup(app: App) -> Any:
        @app.tool(**tool_kwargs)
        def effect(x: int, **kw: Any) -> str:
            calls.append(kw.get("idempotency_key", x))
            if crash_once and crash_once.pop():
                raise Crash
            return f"ok{x}"

        @app.workflow
        def wf(ctx: TaskContext) -> str:
            return str(effect(7))

        return wf

    return restart(make_app, setup)


def _execute_approving(app: App, task_id: str) -> None:
    """Execute; an irreversible call's approval request is approved by a named approver."""
    app.execute(task_id)
    for request in app.approvals(task_id=task_id):
        app.approve(request.request_id, by="approver")
        app.execute(task_id)


def _crash_then_resume(make_app: MakeApp, **tool_kwargs: Any) -> tuple[App, str, list[Any]]:
    calls: list[Any] = []
    app, wf = _in_doubt_app(make_app, [True], calls, **tool_kwargs)
    handle = app.start(wf)
    with pytest.raises(Crash):
        _execute_approving(app, handle.task_id)
    app2, _ = _in_doubt_app(make_app, [], calls, **tool_kwargs)
    app2.execute(handle.task_id)
    return app2, handle.task_id, calls


def test_in_doubt_idempotent_step_is_rerun(make_app: MakeApp) -> None:
    app, task_id, calls = _crash_then_resume(make_app, idempotent=True)
    assert calls == [7, 7]
    assert app.handle(task_id).result() == "ok7"
    assert EventKind.STEP_RETRIED in kinds(app, task_id)


def test_in_doubt_keyed_step_is_rerun_with_the_same_key(make_app: MakeApp) -> None:
    app, task_id, calls = _crash_then_resume(make_app, idempotency_key=True)
    assert len(calls) == 2
    assert calls[0] == calls[1]
    assert calls[0] == handrail.tools.idempotency_key(task_id, 0)
    assert app.handle(task_id).result() == "ok7"


def test_in_doubt_reconcile_not_done_reruns(make_app: MakeApp) -> None:
    seen: list[handrail.ToolCall] = []

    def reconcile(call: handrail.ToolCall) -> Any:
        seen.append(call)
        return NOT_DONE

    app, task_id, calls = _crash_then_resume(make_app, reconcile=reconcile)
    assert calls == [7, 7]
    assert seen[0].args == (7,)
    assert seen[0].step_index == 0
    assert app.handle(task_id).result() == "ok7"


def test_in_doubt_reconcile_done_records_its_output_without_running(make_app: MakeApp) -> None:
    app, task_id, calls = _crash_then_resume(make_app, reconcile=lambda call: "found-ok7")
    assert calls == [7]
    assert app.handle(task_id).result() == "found-ok7"
    completed = [e for e in app.store.load_events(task_id) if e.kind is EventKind.STEP_COMPLETED]
    assert completed[0].data == {"via": "reconcile"}


@pytest.mark.parametrize(
    "tool_kwargs",
    [
        {},
        {"reconcile": lambda call: UNKNOWN},
        {"reversibility": "irreversible", "idempotency_key": True},
        {"reversibility": "irreversible", "idempotent": True},
        {"reversibility": "irreversible", "reconcile": lambda call: NOT_DONE},
    ],
    ids=["plain", "reconcile-unknown", "irreversible-keyed", "irreversible-idem", "irrev-recon"],
)
def test_in_doubt_unsafe_step_waits_for_a_human(make_app: MakeApp, tool_kwargs: Any) -> None:
    app, task_id, calls = _crash_then_resume(make_app, **tool_kwargs)
    assert len(calls) == 1, "an unsafe in-doubt step must not run again by itself"
    assert app.handle(task_id).status() is TaskStatus.AWAITING_INTERVENTION
    (item,) = app.interventions()
    assert item.step_index == 0
    assert item.details["options"] == ["mark_done", "retry", "fail"]
    # a second resume attempt does not raise a second intervention or run it
    with pytest.raises(handrail.InvalidOperationError):
        app.execute(task_id)
    ops.resolve_intervention(
        app.store, app.clock, item.intervention_id, action="retry", actor="ops", comment="checked"
    )
    app.execute(task_id)
    assert len(calls) == 2
    assert app.handle(task_id).result() == "ok7"
    state = app.handle(task_id).state()
    resolved = state.interventions[item.intervention_id]
    assert (resolved.resolved_by, resolved.resolution, resolved.comment) == (
        "ops",
        "retry",
        "checked",
    )


def test_intervention_fail_fails_the_task(make_app: MakeApp) -> None:
    app, task_id, _calls = _crash_then_resume(make_app)
    (item,) = ops.list_interventions(app.store)
    ops.resolve_intervention(app.store, app.clock, item.intervention_id, action="fail", actor="op")
    with pytest.raises(TaskFailedError, match="InterventionFailed"):
        app.handle(task_id).result()
    with pytest.raises(handrail.InvalidOperationError, match="resolved already"):
        ops.resolve_intervention(
            app.store, app.clock, item.intervention_id, action="retry", actor="op"
        )
    with pytest.raises(handrail.InvalidOperationError, match="principal"):
        ops.resolve_intervention(
            app.store, app.clock, item.intervention_id, action="retry", actor=""
        )


def test_non_determinism_names_the_index_and_both_steps(make_app: MakeApp) -> None:
    version = {"v": 1}

    def setup(app: App) -> Any:
        @app.tool(idempotent=True)
        def alpha() -> int:
            return 1

        @app.tool(idempotent=True)
        def beta() -> int:
            return 2

        @app.tool(idempotent=True)
        def boom() -> int:
            raise Crash

        @app.workflow
        def wf(ctx: TaskContext) -> None:
            alpha() if version["v"] == 1 else beta()
            boom()

        return wf

    app, wf = restart(make_app, setup)
    handle = app.start(wf)
    with pytest.raises(Crash):
        app.execute(handle.task_id)
    version["v"] = 2
    app2, _ = restart(make_app, setup)
    app2.execute(handle.task_id)
    with pytest.raises(TaskFailedError) as info:
        app2.handle(handle.task_id).result()
    message = str(info.value)
    assert "step 0" in message
    assert "alpha" in message
    assert "beta" in message
    assert isinstance(NonDeterminismError(handle.task_id, 0, "a", "b"), handrail.HandrailError)


def test_unserializable_input_fails_at_the_call_naming_step_and_type(make_app: MakeApp) -> None:
    app = make_app()

    class Contract:
        pass

    @app.tool
    def save(obj: Any) -> None:
        raise AssertionError("must not run")

    @app.workflow
    def wf(ctx: TaskContext) -> str:
        try:
            save(Contract())
        except SerializationError as exc:
            return str(exc)
        return "no error"

    message = app.run(wf).result()
    assert "save" in message
    assert "Contract" in message


def test_tool_failure_is_recorded_and_replayed_as_tool_call_failed(make_app: MakeApp) -> None:
    app = make_app()
    runs: list[int] = []

    @app.tool
    def flaky() -> None:
        runs.append(1)
        raise ValueError("vendor record is locked")

    @app.workflow
    def wf(ctx: TaskContext) -> str:
        try:
            flaky()
        except ToolCallFailed as exc:
            return f"{exc.error_type}: {exc.error_message}"
        return "no"

    handle = app.run(wf)
    assert handle.result() == "ValueError: vendor record is locked"
    assert EventKind.STEP_FAILED in kinds(app, handle.task_id)


def test_unhandled_failure_fails_task_and_resume_reruns_the_failed_step(make_app: MakeApp) -> None:
    app = make_app()
    attempts: list[int] = []
    ran: list[str] = []

    @app.tool(idempotent=True)
    def first() -> str:
        ran.append("first")
        return "a"

    @app.tool
    def second() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("downstream is down")
        return "b"

    @app.workflow
    def wf(ctx: TaskContext) -> str:
        return first() + second()

    handle = app.run(wf)
    with pytest.raises(TaskFailedError, match="downstream is down") as info:
        handle.result()
    assert info.value.error["step_index"] == 1
    assert info.value.error["tool"].endswith("second")
    assert app.resume(handle.task_id, by="ops") is TaskStatus.PENDING
    app.execute(handle.task_id)
    assert handle.result() == "ab"
    assert ran == ["first"]
    assert len(attempts) == 2


def test_cancel_idle_and_running_tasks(make_app: MakeApp) -> None:
    app = make_app()
    ran: list[int] = []

    @app.tool(idempotent=True)
    def step(i: int) -> int:
        ran.append(i)
        if i == 1:
            ctx = handrail.current_task()
            assert ctx is not None
            status = ops.cancel_task(app.store, app.clock, ctx.task_id, actor="bob")
            assert status is TaskStatus.IN_PROGRESS  # running: stops at the next boundary
        return i

    @app.workflow
    def wf(ctx: TaskContext) -> None:
        for i in range(4):
            step(i)

    idle = app.start(wf)
    assert app.cancel(idle.task_id, by="bob") is TaskStatus.CANCELLED
    with pytest.raises(handrail.TaskCancelledError):
        idle.result()
    with pytest.raises(handrail.InvalidOperationError, match="nothing to cancel"):
        ops.cancel_task(app.store, app.clock, idle.task_id, actor="bob")

    running = app.run(wf)
    assert ran == [0, 1]
    assert running.status() is TaskStatus.CANCELLED
    events = running.events()
    assert [e.kind for e in events][-2:] == [EventKind.CANCEL_REQUESTED, EventKind.TASK_CANCELLED]
    assert events[-1].actor == "bob"
    # the result of step 1 was kept; step 2 never got an intent
    state = running.state()
    assert state.steps[1].status.value == "completed"
    assert 2 not in state.steps


def test_durable_sleep_waits_for_its_due_time(make_app: MakeApp, clock: ManualClock) -> None:
    app = make_app()

    @app.workflow
    def wf(ctx: TaskContext) -> float:
        start = ctx.now()
        ctx.sleep(3600)
        return ctx.now() - start

    handle = app.run(wf)
    record = app.store.get_task(handle.task_id)
    assert record is not None
    assert record.lease_owner is None  # holds no worker while it waits
    assert record.run_at == clock.now() + 3600
    with pytest.raises(handrail.InvalidOperationError):
        app.execute(handle.task_id)
    clock.advance(3600)
    other = make_app()  # any worker continues it
    other.workflows.update(app.workflows)
    other.execute(handle.task_id)
    assert handle.result() == 3600


def test_lost_lease_stops_the_old_worker(make_app: MakeApp, clock: ManualClock) -> None:
    a = make_app(lease_seconds=10)
    b = make_app(lease_seconds=10)
    ran: list[str] = []

    @a.tool(idempotent=True)
    def slow(who: str) -> str:
        ran.append(who)
        if who == "a":
            clock.advance(60)  # a stalls past its lease; b takes over meanwhile
            b.execute(ctx_task_id[0])
        return who

    ctx_task_id: list[str] = []

    @a.workflow
    def wf(ctx: TaskContext) -> str:
        ctx_task_id.append(ctx.task_id)
        who = "a" if len(ctx_task_id) == 1 else "b"
        slow(who)
        slow(who + "2")
        return who

    b.workflows.update(a.workflows)
    b.tools.update(a.tools)
    handle = a.start(wf)
    a.execute(handle.task_id)
    assert handle.result() == "b"
    assert "a2" not in ran  # a could not go on past its lost lease
    claims = [e for e in handle.events() if e.kind is EventKind.TASK_CLAIMED]
    assert [c.data["epoch"] for c in claims if c.data] == [1, 2]


def test_async_workflows_and_tools(make_app: MakeApp) -> None:
    app = make_app()

    @app.tool(idempotent=True)
    async def fetch(x: int) -> int:
        return x + 1

    @app.tool(idempotent=True)
    def sync_tool(x: int) -> int:
        return x * 10

    @app.workflow(queue="async", max_execution_time=30)
    async def wf(ctx: TaskContext, x: int) -> int:
        return sync_tool(await fetch(x))

    handle = app.run(wf, 4)
    assert handle.result() == 50
    record = app.store.get_task(handle.task_id)
    assert record is not None
    assert (record.queue, record.max_execution_seconds) == ("async", 30)


def test_worker_threads_run_many_tasks(make_app: MakeApp) -> None:
    app = make_app()
    app.clock = handrail.SystemClock()

    @app.tool(idempotent=True)
    def inc(x: int) -> int:
        return x + 1

    @app.workflow
    def wf(ctx: TaskContext, x: int) -> int:
        return inc(inc(x))

    handles = [app.start(wf, i) for i in range(20)]
    with app.worker(concurrency=4, poll_interval=0.05):
        assert [h.result(timeout=60) for h in handles] == [i + 2 for i in range(20)]


def test_refresh_keeps_keyword_arguments_by_keyword(make_app: MakeApp) -> None:
    app = make_app()
    seen: list[handrail.ToolCall] = []

    class Conflict(Exception):
        failure_class = "stale_data"

    def reread(call: handrail.ToolCall, error: BaseException) -> dict[str, Any]:
        seen.append(call)
        return {"version": call.kwargs["version"] + 1}

    @app.tool(idempotent=True, refresh=reread)
    def update(record: str, *, version: int) -> int:
        if version < 3:
            raise Conflict(f"{record} is past version {version}")
        return version

    @app.workflow
    def wf(ctx: TaskContext) -> int:
        return int(update("r", version=1))

    handle = app.run(wf)
    assert handle.result() == 3
    assert [c.kwargs for c in seen] == [{"version": 1}, {"version": 2}]
    retried = [e for e in handle.events() if e.kind is EventKind.STEP_RETRIED]
    assert [e.inputs for e in retried] == [
        {"args": ["r"], "kwargs": {"version": 2}},
        {"args": ["r"], "kwargs": {"version": 3}},
    ]


def test_a_handle_can_be_awaited(make_app: MakeApp) -> None:
    import asyncio

    app = make_app()
    app.clock = handrail.SystemClock()

    @app.tool(idempotent=True)
    def add(a: int, b: int) -> int:
        return a + b

    @app.workflow
    def wf(ctx: TaskContext) -> int:
        return int(add(2, 3))

    async def main() -> int:
        handle = app.start(wf)
        with app.worker(concurrency=1, poll_interval=0.05):
            result: int = await handle
        return result

    assert asyncio.run(main()) == 5
