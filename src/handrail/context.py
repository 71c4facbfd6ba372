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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from time import perf_counter
from typing import TYPE_CHECKING, Any, NoReturn

from handrail import approval_gate, gating, recovery, serde
from handrail._plans import Recorded, StepRun
from handrail.approvals import named_params
from handrail.auditing import Auditor, event_rows
from handrail.controls import CircuitBreaker, Circuits, Gate
from handrail.errors import (
    CancelRequested,
    Halted,
    HumanInterventionRequired,
    NonDeterminismError,
    SerializationError,
    Suspended,
)
from handrail.failures import (
    Classifier,
    FailureClass,
    RetryPolicy,
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
from handrail.tools import NOT_DONE, UNKNOWN, Reversibility, Tool, idempotency_key

if TYPE_CHECKING:
    from handrail.audit.record import AuditDraft
    from handrail.clock import Clock
    from handrail.tracing import Tracing

_CURRENT: ContextVar[TaskContext | None] = ContextVar("handrail_task", default=None)

_STARTED = EventKind.STEP_STARTED
_COMPLETED = EventKind.STEP_COMPLETED
_APPROVAL_EVENTS = frozenset(kind for kind in EventKind if kind.value.startswith("approval_"))
_S_COMPLETED = StepStatus.COMPLETED
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
        audited=False,
    )


_NOW = _builtin("handrail.now")
_RANDOM = _builtin("handrail.random")
_UUID = _builtin("handrail.uuid")
_SLEEP = Tool(
    fn=lambda: None,
    name="handrail.sleep",
    reversibility=Reversibility.FULLY_REVERSIBLE,
    idempotent=True,
    audited=False,
)


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
        gate_settings: approval_gate.GateSettings | None = None,
        agent: str | None = None,
        auditor: Auditor | None = None,
        tracing: Tracing | None = None,
    ):
        self._auditor = auditor
        self._tracing = tracing
        self._audit_rows: list[AuditDraft] = []
        self.task_id = lease.task_id
        self._gate_settings = gate_settings
        self.agent = agent or state.workflow
        self._expected: str | None = None
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
        self._approvals_unapplied = False  # an approval event waits in _unapplied
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
            self._approvals_unapplied = False
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

    def expect(self, outcome: str) -> None:
        """The outcome the agent expects from the next step; an approval request for it
        shows this as its expected outcome."""
        self._expected = outcome

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
        tool = Tool(
            fn=fn,
            name=name,
            reversibility=Reversibility.FULLY_REVERSIBLE,
            idempotent=True,
            audited=False,
        )
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
        audited = self._auditor is not None and tool.audited
        while type(plan) is StepRun:
            if audited:
                plan.started_at, plan.perf = self._clock.now(), perf_counter()
            try:
                if self._tracing is None:
                    output = fn(*plan.args, **plan.kwargs)
                else:
                    with self._tool_span(tool, plan) as span:
                        output = fn(*plan.args, **plan.kwargs)
                        self._tracing.succeeded(span, output)
            except (Exception, HumanInterventionRequired) as exc:
                plan = recovery.recover(self, tool, plan, exc)
                continue
            return self._record_success(tool, plan, output)
        assert isinstance(plan, Recorded)
        return plan.value

    async def call_tool_async(
        self, tool: Tool, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Run ``tool`` as a recorded step (coroutine tools)."""
        plan = self._plan(tool, args, kwargs)
        audited = self._auditor is not None and tool.audited
        while type(plan) is StepRun:
            if audited:
                plan.started_at, plan.perf = self._clock.now(), perf_counter()
            try:
                if self._tracing is None:
                    output = await tool.fn(*plan.args, **plan.kwargs)
                else:
                    with self._tool_span(tool, plan) as span:
                        output = await tool.fn(*plan.args, **plan.kwargs)
                        self._tracing.succeeded(span, output)
            except (Exception, HumanInterventionRequired) as exc:
                plan = recovery.recover(self, tool, plan, exc)
                continue
            return self._record_success(tool, plan, output)
        assert isinstance(plan, Recorded)
        return plan.value

    def _plan(
        self, tool: Tool, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> StepRun | Recorded:
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
                return Recorded(serde.loads(recorded.outputs_json))
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
        expected, self._expected = self._expected, None
        gate = gating.gate(self, tool, index)
        if gate is not None:
            self._index, self._reasoning, self._expected = index, reasoning, expected
            gating.stop_at_gate(self, gate, tool, index)
        facts = None
        settings = self._gate_settings
        if settings is not None:
            policy = tool.approval or settings.policy
            if index in self._state.approval_of_step or approval_gate.needs_check(tool, policy):
                try:
                    args, kwargs, facts = approval_gate.check(
                        self, tool, index, args, kwargs, reasoning, expected, policy, settings
                    )
                except Suspended:
                    self._index, self._reasoning, self._expected = index, reasoning, expected
                    raise
                if facts is not None and facts.get("edited"):
                    inputs_json = serde.dumps(
                        {"args": args, "kwargs": kwargs}, what="input", step=tool.name
                    )
        self._write(
            [
                self._event(
                    _STARTED,
                    step_index=index,
                    step_name=tool.name,
                    inputs_json=inputs_json,
                    agent_reasoning=reasoning,
                    requires_human_approval=facts is not None,
                    data=facts,
                )
            ],
            boundary=True,
        )
        return StepRun(index, args, self._with_key(tool, index, kwargs))

    def _plan_recorded(
        self, tool: Tool, index: int, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> StepRun | Recorded:
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
                until = gating.circuit_open_until(self, tool)
                if until is not None:
                    gating.stop_at_gate(
                        self,
                        Gate("wait", f"the circuit of {tool.name} is open", until),
                        tool,
                        index,
                    )
                return self._retry(tool, step, args, kwargs, "back-off elapsed")
            raise recovery.failure_of(self, tool, index, step.error or {})
        if step.rerun_authorized:
            reason = "authorized by an operator"
        elif tool.safe_to_rerun:
            reason = "in doubt after a crash; safe to re-run (%s)" % (
                "idempotent" if tool.idempotent else "idempotency key"
            )
        else:
            verdict = recovery.reconcile(self, tool, index, args, kwargs)
            if verdict is NOT_DONE and tool.reversibility is not Reversibility.IRREVERSIBLE:
                reason = "in doubt after a crash; reconcile says the effect did not happen"
            elif verdict is not NOT_DONE and verdict is not UNKNOWN:
                return recovery.record_reconciled(self, tool, index, verdict)
            else:
                recovery.raise_in_doubt(self, tool, index, verdict)
        return self._retry(tool, step, args, kwargs, reason)

    def _retry(
        self,
        tool: Tool,
        step: StepState,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        reason: str,
        inputs_json: str | None = None,
    ) -> StepRun:
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
        return StepRun(
            step.index, args, self._with_key(tool, step.index, kwargs), attempt, first_at, base
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

    def _record_success(self, tool: Tool, plan: StepRun, output: Any) -> Any:
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
            raise recovery.failure_of(
                self,
                tool,
                plan.index,
                {"type": "SerializationError", "message": str(exc), "failure_class": "fatal"},
            ) from exc
        event = self._event(
            _COMPLETED, step_index=plan.index, step_name=tool.name, outputs_json=outputs_json
        )
        self._pending.append(event)
        if self._auditor is not None and tool.audited:
            self.audit_attempt(tool, plan, output_json=outputs_json)
        if self._circuits is not None:
            self._circuits.succeeded(tool.name)
        if not tool.safe_to_rerun:
            self._write([])
        return serde.loads(outputs_json)

    @contextmanager
    def _tool_span(self, tool: Tool, plan: StepRun) -> Iterator[Any]:
        """The attempt's span; a failure is marked on it with its class."""
        tracing = self._tracing
        assert tracing is not None
        if not tool.audited:  # built-in steps (the clock, randomness, LLM calls) make none
            yield None
            return
        approval = self.state.approval_of_step.get(plan.index)
        with tracing.tool_span(
            task_id=self.task_id,
            tool=tool.name,
            index=plan.index,
            attempt=plan.attempt,
            approval=approval,
            args=plan.args,
            kwargs=plan.kwargs,
        ) as span:
            try:
                yield span
            except (Exception, HumanInterventionRequired) as exc:
                if isinstance(exc, HumanInterventionRequired):
                    failure = exc.failure_class or FailureClass.PERMISSION.value
                else:
                    failure = self._classifier.classify(exc, tool.rules).value
                tracing.failed(span, exc, failure)
                raise

    def audit_attempt(
        self,
        tool: Tool,
        plan: StepRun,
        *,
        output_json: str | None = None,
        error: dict[str, Any] | None = None,
        failure_class: str | None = None,
    ) -> None:
        """Draft the audit record of one attempt; it is written with the next journal write
        (the one that records the attempt's outcome)."""
        auditor = self._auditor
        if auditor is None or not tool.audited or not plan.started_at:
            return
        # Who authorized the step depends only on the task's approvals and initiator: fold
        # this run's step events (which change neither) only when an approval event waits.
        state = self.state if self._approvals_unapplied else self._state
        self._audit_rows.append(
            auditor.tool_call(
                state=state,
                agent=self.agent,
                tool=tool,
                index=plan.index,
                attempt=plan.attempt,
                params=named_params(tool, plan.args, plan.kwargs, as_json=False),
                started_at=plan.started_at,
                duration_ms=(perf_counter() - plan.perf) * 1000.0,
                logged_at=self._clock.now(),
                output_json=output_json,
                error=error,
                failure_class=failure_class,
            )
        )

    def _with_key(self, tool: Tool, index: int, kwargs: dict[str, Any]) -> dict[str, Any]:
        if not tool.takes_idempotency_key:
            return kwargs
        return {**kwargs, "idempotency_key": idempotency_key(self.task_id, index)}

    def _check_name(self, index: int, recorded: str, requested: str) -> None:
        if recorded != requested:
            self._poison = NonDeterminismError(self.task_id, index, recorded, requested)
            raise self._poison

    # -- journal writes ------------------------------------------------------------------

    def _event(self, kind: EventKind, at: float | None = None, **fields: Any) -> Event:
        seq = self._next_seq
        self._next_seq = seq + 1
        return Event(self.task_id, seq, kind, self._clock.now() if at is None else at, **fields)

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
        audit = self._audit_rows
        if self._auditor is not None:
            audit = audit + event_rows(self._auditor, events)
        try:
            self._store.append_events(
                self._lease,
                batch,
                now=self._clock.now(),
                status=status,
                run_at=run_at,
                release=release,
                boundary=boundary,
                audit=audit,
            )
        except CancelRequested:
            if events:
                self._next_seq = events[0].seq
            self._finish_cancelled()
            raise
        except Halted as halt:
            if events:
                self._next_seq = events[0].seq
            gating.park_halted(self, halt, events)
            raise Suspended(str(halt)) from None
        self._pending = []
        self._audit_rows = []
        # Steps this run records are never looked up again by index, so folding them into
        # the state can wait until someone reads it.
        self._unapplied.extend(batch)
        if any(event.kind in _APPROVAL_EVENTS for event in events):
            self._approvals_unapplied = True

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
