"""TaskContext: one run of a task's workflow function, and how each step is recorded.

A durable step looks up the journal first, by step index:

- recorded as completed: return the recorded output, do not run;
- recorded as failed: raise :class:`ToolCallFailed` again, do not run;
- intent recorded but no result (*in doubt*, the process died mid-step): run again only if
  that is safe (idempotent tool, idempotency key, or ``reconcile`` says the effect did not
  happen); otherwise raise an intervention and wait for a human;
- not recorded: record the intent, run, record the result.

Write-ahead with one commit per step: the intent of step *k+1* and the result of step *k*
share one transaction. A result may wait for that transaction only when re-running the step
would be harmless (the tool is safe to re-run); any other tool's result is committed as soon
as the tool returns, so a crash cannot leave a finished side effect looking undone.
"""

from __future__ import annotations

import random as _random
import threading
import uuid
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, NoReturn

from handrail import serde
from handrail.controls import CircuitBreaker, Circuits, Gate, check_call
from handrail.errors import (
    CancelRequested,
    Halted,
    HumanInterventionRequired,
    NonDeterminismError,
    SerializationError,
    Suspended,
    TaskFailure,
)
from handrail.failures import (
    Classifier,
    FailureClass,
    RetryDecision,
    RetryPolicy,
    decide,
    http_status,
    may_have_taken_effect,
    retry_after,
)
from handrail.journal import (
    Event,
    EventKind,
    StepState,
    StepStatus,
    TaskState,
    TaskStatus,
    apply,
)
from handrail.store.base import UNSET, Lease, Store, _Unset
from handrail.tools import NOT_DONE, UNKNOWN, Reversibility, Tool, ToolCall, idempotency_key

if TYPE_CHECKING:
    from handrail.clock import Clock

_CURRENT: ContextVar[TaskContext | None] = ContextVar("handrail_task", default=None)

_STARTED = EventKind.STEP_STARTED
_COMPLETED = EventKind.STEP_COMPLETED
_S_COMPLETED = StepStatus.COMPLETED
_OPENS_STEP = frozenset({EventKind.STEP_STARTED, EventKind.STEP_RETRIED})
_NEEDED = {
    "permission": "grant the access the tool needs (or fix credentials), then retry; or "
    "supply the result, skip the step, or fail the task",
    "data_error": "investigate and fix the data, then retry; or supply the result, skip the "
    "step, or fail the task",
    "stale_data": "re-read the record and retry, or supply the result",
    "in_doubt": "check whether the call took effect in the target system: mark it done with "
    "its output if it did, retry if it did not, or fail the task",
}
_S_FAILED = StepStatus.FAILED


def current_task() -> TaskContext | None:
    """The task this code runs in, or ``None`` outside a workflow."""
    return _CURRENT.get()


def _builtin(name: str) -> Tool:
    return Tool(
        fn=lambda: None,
        name=name,
        reversibility=Reversibility.FULLY_REVERSIBLE,
        idempotent=True,
    )


_NOW = _builtin("handrail.now")
_RANDOM = _builtin("handrail.random")
_UUID = _builtin("handrail.uuid")
_SLEEP = Tool(
    fn=lambda: None,
    name="handrail.sleep",
    reversibility=Reversibility.FULLY_REVERSIBLE,
    idempotent=True,
)


class _Run:
    """A step attempt to execute now."""

    __slots__ = ("args", "attempt", "base", "first_at", "index", "kwargs")

    def __init__(
        self,
        index: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        attempt: int = 1,
        first_at: float | None = None,
        base: int = 0,
    ):
        self.index = index
        self.args = args
        self.kwargs = kwargs
        self.attempt = attempt  # counts every attempt the journal has seen
        self.first_at = first_at  # when the current retry budget started
        self.base = base  # attempts before the current retry budget (a human's retry)


class _Recorded:
    """A step whose output the journal already holds."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


class TaskContext:
    """The handle a workflow function receives first: records steps, replays the journal.

    Code between steps must be deterministic; anything else (the clock, randomness, an LLM
    call) goes through a step: :meth:`now`, :meth:`random`, :meth:`uuid`, :meth:`step`.
    """

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        lease: Lease,
        state: TaskState,
        stopping: Callable[[], bool] | None = None,
        classifier: Classifier | None = None,
        retry_policy: RetryPolicy | None = None,
        circuits: Circuits | None = None,
        circuit_breaker: CircuitBreaker | None = None,
    ):
        self.task_id = lease.task_id
        self._circuits = circuits
        self._breaker = circuit_breaker
        self.max_steps: int | None = None
        self._classifier = classifier or Classifier()
        self._retry_policy = retry_policy or RetryPolicy()
        self._store = store
        self._clock = clock
        self._lease = lease
        self._state = state
        self._unapplied: list[Event] = []
        self._next_seq = state.last_seq + 1
        self._index = 0
        self._pending: list[Event] = []
        self._reasoning: str | None = None
        self._poison: NonDeterminismError | None = None
        self._stopping = stopping
        self._lock = threading.Lock()

    # -- public API ----------------------------------------------------------------------

    @property
    def state(self) -> TaskState:
        """The task as folded from its journal, including this run's steps."""
        if self._unapplied:
            state = self._state
            for event in self._unapplied:
                apply(state, event)
            self._unapplied = []
        return self._state

    @property
    def workflow(self) -> str:
        return self.state.workflow

    @property
    def initiator(self) -> str | None:
        return self.state.initiator

    @property
    def step_index(self) -> int:
        """The index the next step will get."""
        return self._index

    def reason(self, text: str) -> None:
        """Attach the agent's reasoning to the next step (shown in the timeline and the
        context summary). NUL characters, which no database text column takes, become
        U+FFFD."""
        self._reasoning = text.replace("\x00", "\ufffd")

    def context_summary(self) -> str:
        """The completed steps, for an LLM prompt."""
        return self.state.context_summary()

    def now(self) -> float:
        """The time, recorded once: replay returns the same value."""
        return float(self.call_tool(_NOW, (), {}, run=self._clock.now))

    def random(self) -> float:
        """A random float in [0, 1), recorded once."""
        return float(self.call_tool(_RANDOM, (), {}, run=_random.random))

    def uuid(self) -> str:
        """A random UUID string, recorded once."""
        return str(self.call_tool(_UUID, (), {}, run=lambda: str(uuid.uuid4())))

    def step(self, name: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` as a recorded step named ``name`` (for an LLM call or
        any other non-deterministic operation without side effects: re-run if in doubt)."""
        tool = Tool(fn=fn, name=name, reversibility=Reversibility.FULLY_REVERSIBLE, idempotent=True)
        return self.call_tool(tool, args, kwargs)

    def sleep(self, seconds: float) -> None:
        """Wait durably: the due time is stored, the task holds no worker while it waits,
        and any worker continues it once the time has come, across restarts."""
        index = self._index
        recorded = self.state.steps.get(index)
        if recorded is None:
            due = self._clock.now() + float(seconds)
            self._index += 1
            self._reasoning, reasoning = None, self._reasoning
            intent = self._event(
                _STARTED,
                step_index=index,
                step_name=_SLEEP.name,
                inputs_json=serde.dumps({"seconds": seconds, "due": due}),
                agent_reasoning=reasoning,
            )
            timer = self._event(EventKind.TIMER_SET, step_index=index, data={"due": due})
            self._write([intent, timer], boundary=True, run_at=due, release=True)
            raise Suspended(f"sleeping until {due}")
        self._check_name(index, recorded.name, _SLEEP.name)
        if recorded.status is _S_COMPLETED:
            self._index += 1
            return
        due = float(serde.loads(recorded.inputs_json)["due"])
        if self._clock.now() < due:
            self._write([], run_at=due, release=True)
            raise Suspended(f"sleeping until {due}")
        self._index += 1
        self._pending.append(self._event(_COMPLETED, step_index=index, step_name=_SLEEP.name))

    # -- steps ---------------------------------------------------------------------------

    def call_tool(
        self,
        tool: Tool,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        run: Callable[..., Any] | None = None,
    ) -> Any:
        """Run ``tool`` as a recorded step (synchronous tools)."""
        plan = self._plan(tool, args, kwargs)
        fn = run or tool.fn
        while type(plan) is _Run:
            try:
                output = fn(*plan.args, **plan.kwargs)
            except (Exception, HumanInterventionRequired) as exc:
                plan = self._recover(tool, plan, exc)
                continue
            return self._record_success(tool, plan, output)
        assert isinstance(plan, _Recorded)
        return plan.value

    async def call_tool_async(
        self, tool: Tool, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Run ``tool`` as a recorded step (coroutine tools)."""
        plan = self._plan(tool, args, kwargs)
        while type(plan) is _Run:
            try:
                output = await tool.fn(*plan.args, **plan.kwargs)
            except (Exception, HumanInterventionRequired) as exc:
                plan = self._recover(tool, plan, exc)
                continue
            return self._record_success(tool, plan, output)
        assert isinstance(plan, _Recorded)
        return plan.value

    def _plan(self, tool: Tool, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Run | _Recorded:
        if self._poison is not None:
            raise self._poison
        index = self._index
        self._index = index + 1
        reasoning = self._reasoning
        self._reasoning = None
        recorded = self._state.steps.get(index)
        if recorded is not None:
            self._check_name(index, recorded.name, tool.name)
            if recorded.status is _S_COMPLETED:
                return _Recorded(serde.loads(recorded.outputs_json))
            return self._plan_recorded(tool, index, args, kwargs)
        if self._stopping is not None and self._stopping():
            self._write([], run_at=self._clock.now(), release=True)
            raise Suspended("worker stopping; another worker continues the task")
        try:
            inputs_json = serde.dumps(
                {"args": args, "kwargs": kwargs}, what="input", step=tool.name
            )
        except SerializationError:
            self._index = index
            raise
        gate = self._gate(tool, index)
        if gate is not None:
            self._index, self._reasoning = index, reasoning
            self._stop_at_gate(gate, tool, index)
        self._write(
            [
                self._event(
                    _STARTED,
                    step_index=index,
                    step_name=tool.name,
                    inputs_json=inputs_json,
                    agent_reasoning=reasoning,
                )
            ],
            boundary=True,
        )
        return _Run(index, args, self._with_key(tool, index, kwargs))

    def _plan_recorded(
        self, tool: Tool, index: int, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> _Run | _Recorded:
        """A step the journal knows but did not see finish (or saw fail)."""
        step = self.state.steps[index]
        if step.inputs_refreshed:
            inputs = serde.loads(step.inputs_json) or {}
            args, kwargs = tuple(inputs.get("args", ())), dict(inputs.get("kwargs", {}))
        for item in self.state.open_interventions():
            if item.step_index == index:
                self._write([], status=TaskStatus.AWAITING_INTERVENTION, run_at=None, release=True)
                raise Suspended(f"waiting for intervention {item.intervention_id}")
        if step.status is _S_FAILED and not step.rerun_authorized:
            if step.retry_at is not None:
                if self._clock.now() < step.retry_at:
                    self._write([], run_at=step.retry_at, release=True)
                    raise Suspended(f"retrying step {index} at {step.retry_at}")
                until = self._circuit_open_until(tool)
                if until is not None:
                    self._stop_at_gate(
                        Gate("wait", f"the circuit of {tool.name} is open", until), tool, index
                    )
                return self._retry(tool, step, args, kwargs, "back-off elapsed")
            raise self._failure_of(tool, index, step.error or {})
        if step.rerun_authorized:
            reason = "authorized by an operator"
        elif tool.safe_to_rerun:
            reason = "in doubt after a crash; safe to re-run (%s)" % (
                "idempotent" if tool.idempotent else "idempotency key"
            )
        else:
            verdict = self._reconcile(tool, index, args, kwargs)
            if verdict is NOT_DONE and tool.reversibility is not Reversibility.IRREVERSIBLE:
                reason = "in doubt after a crash; reconcile says the effect did not happen"
            elif verdict is not NOT_DONE and verdict is not UNKNOWN:
                return self._record_reconciled(tool, index, verdict)
            else:
                self._raise_in_doubt(tool, index, verdict)
        return self._retry(tool, step, args, kwargs, reason)

    def _reconcile(
        self, tool: Tool, index: int, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Ask the tool's reconcile whether an in-doubt call took effect (UNKNOWN if it
        has none)."""
        if tool.reconcile is None:
            return UNKNOWN
        call = ToolCall(
            task_id=self.task_id,
            step_index=index,
            tool=tool.name,
            args=args,
            kwargs={k: v for k, v in kwargs.items() if k != "idempotency_key"},
            idempotency_key=idempotency_key(self.task_id, index),
        )
        return tool.reconcile(call)

    def _record_reconciled(self, tool: Tool, index: int, verdict: Any) -> _Recorded:
        outputs_json = serde.dumps(verdict, what="reconciled output", step=tool.name)
        self._write(
            [
                self._event(
                    _COMPLETED,
                    step_index=index,
                    step_name=tool.name,
                    outputs_json=outputs_json,
                    data={"via": "reconcile"},
                )
            ]
        )
        return _Recorded(serde.loads(outputs_json))

    def _retry(
        self,
        tool: Tool,
        step: StepState,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        reason: str,
        inputs_json: str | None = None,
    ) -> _Run:
        """Journal a new attempt of a recorded step and return it to run."""
        attempt = step.attempts + 1
        if step.rerun_authorized:
            base, first_at = step.attempts, self._clock.now()
        else:
            base, first_at = step.retry_base, step.window_started_at or step.started_at
        self._write(
            [
                self._event(
                    EventKind.STEP_RETRIED,
                    step_index=step.index,
                    step_name=tool.name,
                    inputs_json=inputs_json,
                    data={"reason": reason, "attempt": attempt},
                )
            ],
            boundary=True,
        )
        return _Run(
            step.index, args, self._with_key(tool, step.index, kwargs), attempt, first_at, base
        )

    def _failure_of(self, tool: Tool, index: int, error: dict[str, Any]) -> TaskFailure:
        return TaskFailure(
            task_id=self.task_id,
            step_index=index,
            tool=tool.name,
            error_type=str(error.get("type", "Error")),
            message=str(error.get("message", "")),
            failure_class=error.get("failure_class"),
        )

    def _raise_in_doubt(self, tool: Tool, index: int, verdict: Any) -> NoReturn:
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
        self.raise_intervention(
            "in_doubt",
            reason,
            step_index=index,
            step_name=tool.name,
            details={
                "options": ["mark_done", "retry", "fail"],
                "reversibility": tool.reversibility.value,
            },
        )

    def raise_intervention(
        self,
        kind: str,
        reason: str,
        *,
        step_index: int | None = None,
        step_name: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> NoReturn:
        """Journal an intervention, park the task for a human, and stop here."""
        data = {
            "intervention_id": f"{self.task_id}/{uuid.uuid4().hex[:8]}",
            "kind": kind,
            "reason": reason,
        }
        data.update(details or {})
        event = self._event(
            EventKind.INTERVENTION_RAISED,
            step_index=step_index,
            step_name=step_name,
            data=data,
        )
        self._write([event], status=TaskStatus.AWAITING_INTERVENTION, run_at=None, release=True)
        raise HumanInterventionRequired(
            reason,
            task_id=self.task_id,
            step_index=step_index,
            tool=step_name,
            failure_class=(details or {}).get("failure_class"),
            needed=(details or {}).get("needed"),
        )

    def _record_success(self, tool: Tool, plan: _Run, output: Any) -> Any:
        try:
            outputs_json = serde.dumps(output, what="output", step=tool.name)
        except SerializationError as exc:
            self._write(
                [
                    self._event(
                        EventKind.STEP_FAILED,
                        step_index=plan.index,
                        step_name=tool.name,
                        error={
                            "type": "SerializationError",
                            "message": str(exc),
                            "step_index": plan.index,
                            "tool": tool.name,
                            "failure_class": FailureClass.FATAL.value,
                            "attempt": plan.attempt,
                        },
                    )
                ]
            )
            raise self._failure_of(
                tool,
                plan.index,
                {"type": "SerializationError", "message": str(exc), "failure_class": "fatal"},
            ) from exc
        event = self._event(
            _COMPLETED, step_index=plan.index, step_name=tool.name, outputs_json=outputs_json
        )
        self._pending.append(event)
        if self._circuits is not None:
            self._circuits.succeeded(tool.name)
        if not tool.safe_to_rerun:
            self._write([])
        return serde.loads(outputs_json)

    def _recover(self, tool: Tool, plan: _Run, exc: BaseException) -> _Run | _Recorded:
        """Journal a failed attempt and act on its class: return the next attempt to run
        now (stale data refreshed) or the output a reconcile found, or suspend (back-off,
        intervention), or raise ``TaskFailure``."""
        now = self._clock.now()
        policy = tool.retry or self._retry_policy
        elapsed = now - (plan.first_at if plan.first_at is not None else now)
        budget_attempt = plan.attempt - plan.base
        kind: str | None = None
        if isinstance(exc, HumanInterventionRequired):
            failure_class = FailureClass(exc.failure_class or FailureClass.PERMISSION)
            decision = RetryDecision("intervene", failure_class, reason=str(exc))
        else:
            failure_class = self._classifier.classify(exc, tool.rules)
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
        breaker = tool.circuit_breaker or self._breaker
        if failure_class is FailureClass.TRANSIENT and breaker and self._circuits is not None:
            circuit = self._circuits.failed(tool.name, breaker)
            if circuit.open(now):
                error["circuit_open_until"] = circuit.open_until
        refreshed: tuple[tuple[Any, ...], dict[str, Any], str] | None = None
        if decision.action == "refresh":
            try:
                refreshed = self._refresh(tool, plan, exc)
            except Exception as refresh_exc:
                # the re-read itself failed: decide by its class, keep the first error
                refresh_class = self._classifier.classify(refresh_exc)
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
            verdict = self._reconcile(tool, plan.index, plan.args, plan.kwargs)
            if verdict is not NOT_DONE and verdict is not UNKNOWN:
                error["reconciled"] = True
                self._write(
                    [
                        self._event(
                            EventKind.STEP_FAILED,
                            step_index=plan.index,
                            step_name=tool.name,
                            error=error,
                            data={"decision": "reconcile", "reason": "the effect happened"},
                        )
                    ]
                )
                return self._record_reconciled(tool, plan.index, verdict)
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
            data["retry_at"] = now + decision.delay
        failed = self._event(
            EventKind.STEP_FAILED,
            step_index=plan.index,
            step_name=tool.name,
            error=error,
            data=data,
        )
        if decision.action == "retry":
            due = now + decision.delay
            self._write([failed], run_at=due, release=True)
            raise Suspended(f"step {plan.index} ({tool.name}) retries at {due}: {exc}")
        if decision.action == "refresh" and refreshed is not None:
            self._write([failed])
            args, kwargs, inputs_json = refreshed
            step = self.state.steps[plan.index]
            return self._retry(
                tool, step, args, kwargs, "inputs refreshed after stale data", inputs_json
            )
        if decision.action == "intervene":
            self._write([failed])
            needed = _NEEDED.get(kind or failure_class.value, "decide how to continue")
            if isinstance(exc, HumanInterventionRequired) and exc.needed:
                needed = exc.needed
            self.raise_intervention(
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
        self._write([failed])
        raise self._failure_of(tool, plan.index, error) from exc

    def _refresh(
        self, tool: Tool, plan: _Run, exc: BaseException
    ) -> tuple[tuple[Any, ...], dict[str, Any], str]:
        """The tool's refresh hook's new inputs, bound and encoded."""
        assert tool.refresh is not None
        call = ToolCall(
            task_id=self.task_id,
            step_index=plan.index,
            tool=tool.name,
            args=plan.args,
            kwargs={k: v for k, v in plan.kwargs.items() if k != "idempotency_key"},
            idempotency_key=idempotency_key(self.task_id, plan.index),
        )
        args, kwargs = _rebind(tool, call, tool.refresh(call, exc))
        inputs_json = serde.dumps(
            {"args": args, "kwargs": kwargs}, what="refreshed input", step=tool.name
        )
        return args, kwargs, inputs_json

    def _with_key(self, tool: Tool, index: int, kwargs: dict[str, Any]) -> dict[str, Any]:
        if not tool.takes_idempotency_key:
            return kwargs
        return {**kwargs, "idempotency_key": idempotency_key(self.task_id, index)}

    def _check_name(self, index: int, recorded: str, requested: str) -> None:
        if recorded != requested:
            self._poison = NonDeterminismError(self.task_id, index, recorded, requested)
            raise self._poison

    # -- journal writes ------------------------------------------------------------------

    def _event(self, kind: EventKind, **fields: Any) -> Event:
        seq = self._next_seq
        self._next_seq = seq + 1
        return Event(self.task_id, seq, kind, self._clock.now(), **fields)

    def _write(
        self,
        events: Sequence[Event],
        *,
        status: TaskStatus | None = None,
        run_at: float | _Unset | None = UNSET,
        release: bool = False,
        boundary: bool = False,
    ) -> None:
        """Append the pending results and ``events`` in one fenced transaction."""
        batch = self._pending + list(events) if self._pending else list(events)
        if not batch and isinstance(run_at, _Unset) and not release and status is None:
            return
        try:
            self._store.append_events(
                self._lease,
                batch,
                now=self._clock.now(),
                status=status,
                run_at=run_at,
                release=release,
                boundary=boundary,
            )
        except CancelRequested:
            if events:
                self._next_seq = events[0].seq
            self._finish_cancelled()
            raise
        except Halted as halt:
            if events:
                self._next_seq = events[0].seq
            self._finish_halted(halt, events)
            raise Suspended(str(halt)) from None
        self._pending = []
        # Steps this run records are never looked up again by index, so folding them into
        # the state can wait until someone reads it.
        self._unapplied.extend(batch)

    def _finish_halted(self, halt: Halted, refused: Sequence[Event]) -> None:
        """Park the task at this boundary until the halt is released."""
        tools = [e.step_name for e in refused if e.kind in _OPENS_STEP]
        event = self._event(
            EventKind.TASK_HALTED,
            step_index=refused[0].step_index if refused else None,
            step_name=tools[0] if tools else None,
            actor=halt.halted_by,
            data={"halt_id": halt.halt_id, "scope": halt.scope, "target": halt.target},
        )
        self._write([event], status=TaskStatus.HALTED, run_at=None, release=True)

    def _gate(self, tool: Tool, index: int) -> Gate | None:
        """The control (circuit, budget, rate limit) that stops this new call, if any."""
        until = self._circuit_open_until(tool)
        if (
            until is None
            and self.max_steps is None
            and tool.max_calls_per_task is None
            and tool.task_rate_limit is None
            and tool.rate_limit is None
        ):
            return None
        now = self._clock.now()
        state = self.state

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
                return self._store.take_rate_token(
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
            max_steps=self.max_steps,
            granted=index in state.budget_grants,
            take_tool_token=take,
        )

    def _circuit_open_until(self, tool: Tool) -> float | None:
        if self._circuits is None or not (tool.circuit_breaker or self._breaker):
            return None
        return self._circuits.open_until(tool.name)

    def _stop_at_gate(self, gate: Gate, tool: Tool, index: int) -> NoReturn:
        if gate.kind == "wait":
            timer = self._event(
                EventKind.TIMER_SET,
                step_index=index,
                step_name=tool.name,
                data={"due": gate.due, "reason": gate.reason},
            )
            self._write([timer], run_at=gate.due, release=True)
            raise Suspended(f"step {index} ({tool.name}) waits until {gate.due}: {gate.reason}")
        self.raise_intervention(
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

    def _finish_cancelled(self) -> None:
        actor = self.state.cancel_requested_by or "operator"
        record = self._store.get_task(self.task_id)
        if record is not None and record.cancel_requested_by:
            actor = record.cancel_requested_by
        events = [
            self._event(EventKind.CANCEL_REQUESTED, actor=actor),
            self._event(EventKind.TASK_CANCELLED, actor=actor),
        ]
        self._write(events, status=TaskStatus.CANCELLED, run_at=None, release=True)

    # -- task outcomes (called by the runner) --------------------------------------------

    def finish_cancelled(self) -> None:
        """Finalize a cancel request seen before the workflow ran."""
        self._finish_cancelled()

    def complete(self, result: Any) -> None:
        outputs_json = serde.dumps(result, what="result", step=f"workflow {self.workflow}")
        event = self._event(EventKind.TASK_COMPLETED, outputs_json=outputs_json)
        self._write([event], status=TaskStatus.COMPLETED, run_at=None, release=True)

    def fail(self, error: dict[str, Any]) -> None:
        event = self._event(EventKind.TASK_FAILED, error=error)
        self._write([event], status=TaskStatus.FAILED, run_at=None, release=True)

    def park(self) -> None:
        """Give the task back (worker stopping) so any worker continues it now."""
        self._write([], run_at=self._clock.now(), release=True)

    @property
    def poisoned(self) -> NonDeterminismError | None:
        return self._poison


def _rebind(tool: Tool, call: ToolCall, updates: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call's arguments with a refresh hook's ``{param: value}`` updates applied."""
    import inspect

    if not isinstance(updates, dict):
        raise TypeError(
            f"the refresh hook of tool {tool.name!r} must return a dict of parameter values, "
            f"not {type(updates).__name__}"
        )
    bound = inspect.signature(tool.fn).bind_partial(*call.args, **call.kwargs)
    bound.arguments.update(updates)
    return tuple(bound.args), dict(bound.kwargs)
