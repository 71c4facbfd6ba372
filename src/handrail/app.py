"""App: a store, the workflows and tools registered on it, and how tasks are started."""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

from handrail import serde
from handrail.approval_gate import GateSettings
from handrail.approvals import Approval, ApprovalPolicy
from handrail.auditing import Auditor
from handrail.clock import Clock, SystemClock
from handrail.context import _CURRENT
from handrail.controls import CircuitBreaker, Circuits, RateLimit
from handrail.errors import ConfigurationError, NotFoundError
from handrail.failures import Classifier, RetryPolicy, Rule
from handrail.handle import TaskHandle
from handrail.journal import Event, EventKind, Intervention, TaskStatus
from handrail.lease import Heartbeat
from handrail.notifications import Notifications
from handrail.store.base import Halt, NewTask, Store
from handrail.store.url import open_store
from handrail.tools import Reversibility, Tool, ToolCall, make_tool
from handrail.workflow import Workflow, drive, make_workflow

if TYPE_CHECKING:
    from handrail.audit.retention import RetentionPolicy
    from handrail.audit.sinks import Sink
    from handrail.monitoring import Alerting, AlertRule
    from handrail.notify import Notifier
    from handrail.tracing import Tracing
    from handrail.worker import Worker

F = TypeVar("F", bound=Callable[..., Any])
_DEFAULT_BREAKER = CircuitBreaker()


class App:
    """The entry point: ``App(store)`` binds workflows and tools to a store.

    ``store`` is a :class:`~handrail.store.Store`, a SQLite path, a ``sqlite:///`` or
    ``postgresql://`` URL, or ``None`` for ``$HANDRAIL_DB`` / ``./handrail.db``.
    ``worker_id`` fixes this process's identity; an App opened with an explicit
    ``worker_id`` takes back the leases its earlier (dead) incarnation held, so its tasks
    resume at once rather than after the lease expires. ``retry_policy`` is the default for
    tools that set none; ``app.classifier.register(rule)`` adds failure classification
    rules. ``max_inline_wait``: :meth:`run` and :meth:`execute` wait in this thread for a
    retry back-off or timer due within this many seconds, instead of returning.
    ``circuit_breaker`` is the default for tools that set none (``None``: no breaker).
    ``approval_policy`` is the default :class:`ApprovalPolicy` for tools that set none
    (default: irreversible calls need approval); ``max_pending_approvals`` caps the pending
    requests per approver group (past it, gated calls queue); ``notifiers`` tell approvers
    (see :mod:`handrail.notify`). ``audit``: every tool-call attempt, approval,
    intervention and halt leaves a record in the store's tamper-evident audit log, written
    in the same transaction as its journal event (see docs/audit.md). A worker seals that
    log (signs a checkpoint every 256 records or every second) with the Ed25519 key in
    ``audit_key`` (a file, created on first use), else ``$HANDRAIL_AUDIT_KEY``, else
    ``<db>.audit-key`` next to a SQLite store; a PostgreSQL store needs one of the first
    two, or its log is not sealed. ``audit_sinks`` receive every sealed record through a
    durable outbox, each the view it asks for (a compliance sink the redacted record, a
    technical sink also the raw payloads; see :mod:`handrail.audit.sinks`); the App closes
    them. ``audit_retention``, a :class:`~handrail.audit.retention.RetentionPolicy`:
    workers erase the raw payloads of tasks finished longer ago than it allows, when they
    start and hourly, and each run is recorded in the log. ``tracing``:
    OpenTelemetry spans per task run and tool call (``True`` for the global tracer
    provider, or a :class:`~handrail.tracing.Tracing`; needs ``handrail[otel]``).
    ``alert_rules`` (see :mod:`handrail.monitoring`): workers evaluate them every
    ``alert_interval`` seconds and send an ``alert`` notification when an incident starts
    and when it resolves.
    """

    def __init__(
        self,
        store: Store | str | os.PathLike[str] | None = None,
        *,
        clock: Clock | None = None,
        worker_id: str | None = None,
        lease_seconds: float = 30.0,
        retry_policy: RetryPolicy | None = None,
        max_inline_wait: float = 5.0,
        circuit_breaker: CircuitBreaker | None = _DEFAULT_BREAKER,
        approval_policy: ApprovalPolicy | None = None,
        max_pending_approvals: int | None = 100,
        notifiers: Sequence[Notifier] = (),
        audit: bool = True,
        audit_key: str | os.PathLike[str] | None = None,
        audit_sinks: Sequence[Sink] = (),
        audit_retention: RetentionPolicy | None = None,
        tracing: Tracing | bool = False,
        alert_rules: Sequence[AlertRule] = (),
        alert_interval: float = 30.0,
    ):
        if lease_seconds <= 0:
            raise ConfigurationError("lease_seconds must be > 0")
        if max_inline_wait < 0:
            raise ConfigurationError("max_inline_wait must be >= 0")
        self.store: Store = (
            open_store(store) if store is None or isinstance(store, str | os.PathLike) else store
        )
        self.clock: Clock = clock or SystemClock()
        self.lease_seconds = lease_seconds
        self.retry_policy = retry_policy or RetryPolicy()
        self.classifier = Classifier()
        self.max_inline_wait = max_inline_wait
        self.circuit_breaker = circuit_breaker
        self.circuits = Circuits(self.store, self.clock)
        if max_pending_approvals is not None and max_pending_approvals < 1:
            raise ConfigurationError("max_pending_approvals must be at least 1 (or None)")
        self.notifications = Notifications(
            notifiers, store=self.store, clock=self.clock, holder=lambda: self.worker_id
        )
        self.tracing: Tracing | None = _tracing(tracing)
        self.auditor: Auditor | None = Auditor() if audit else None
        self.audit_key = None if audit_key is None else os.fspath(audit_key)
        self.audit_sinks: list[Sink] = list(audit_sinks)
        self.audit_retention = audit_retention
        self.alert_rules: tuple[AlertRule, ...] = tuple(alert_rules)
        self.alert_interval = alert_interval
        if alert_interval <= 0:
            raise ConfigurationError("alert_interval must be > 0 seconds")
        self.gate_settings = GateSettings(
            policy=approval_policy or ApprovalPolicy(),
            max_pending=max_pending_approvals,
            notify=self.notifications.notify,
        )
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.workflows: dict[str, Workflow] = {}
        self.tools: dict[str, Tool] = {}
        self.heartbeat = Heartbeat(self)
        self._finished = threading.Condition()
        self._wakers: list[threading.Event] = []
        if worker_id is not None:
            self.adopt_worker_id(worker_id)

    # -- lifecycle -----------------------------------------------------------------------

    def adopt_worker_id(self, worker_id: str) -> None:
        """Take ``worker_id`` as this process's identity and take back the leases an
        earlier (dead) process with that identity held."""
        self.worker_id = worker_id
        self.store.release_worker(worker_id)

    def close(self) -> None:
        """Stop the heartbeat, deliver pending notifications and close the store."""
        self.heartbeat.stop()
        if "alerting" in self.__dict__:  # created (and maybe started) by a worker
            self.alerting.close()
        self.notifications.close()
        for sink in self.audit_sinks:
            try:
                sink.close()
            except Exception:  # one sink failing to close must not keep the store open
                logging.getLogger("handrail.audit").exception("closing %s failed", sink.name)
        self.store.close()

    @functools.cached_property
    def alerting(self) -> Alerting:
        """The alert rules' evaluator and incident state (a worker starts its loop)."""
        from handrail.monitoring import Alerting

        return Alerting.for_app(self)

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- registration --------------------------------------------------------------------

    @overload
    def workflow(self, fn: F, /) -> Workflow: ...

    @overload
    def workflow(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        max_execution_time: float | None = None,
        max_steps: int | None = None,
        agent: str | None = None,
    ) -> Callable[[F], Workflow]: ...

    def workflow(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        max_execution_time: float | None = None,
        max_steps: int | None = None,
        agent: str | None = None,
    ) -> Workflow | Callable[[F], Workflow]:
        """Register a workflow: ``def wf(ctx: TaskContext, ...)``, plain or ``async``.

        ``queue`` picks the workers that run it; ``max_execution_time`` (seconds) is how long
        a task may be in progress before monitoring calls it stuck; ``max_steps`` is a
        budget: a step past it waits for a human; ``agent`` names the agent in approval
        requests (default: the workflow's name): it can never approve them."""

        def register(f: F) -> Workflow:
            wf = make_workflow(
                f,
                name=name,
                queue=queue,
                max_execution_time=max_execution_time,
                max_steps=max_steps,
                agent=agent,
            )
            if wf.name in self.workflows and self.workflows[wf.name].fn is not f:
                raise ConfigurationError(f"a workflow named {wf.name!r} is registered already")
            self.workflows[wf.name] = wf
            return wf

        return register(fn) if fn is not None else register

    @overload
    def tool(self, fn: F, /) -> F: ...

    @overload
    def tool(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        reversibility: Reversibility | str = Reversibility.PARTIALLY_REVERSIBLE,
        idempotent: bool = False,
        idempotency_key: bool = False,
        reconcile: Callable[[ToolCall], Any] | None = None,
        describe: str | None = None,
        data_accessed: Sequence[str] = (),
        data_modified: Sequence[str] = (),
        retry: RetryPolicy | None = None,
        refresh: Callable[[ToolCall, BaseException], Mapping[str, Any]] | None = None,
        classify: Rule | Sequence[Rule] | None = None,
        circuit_breaker: CircuitBreaker | None = None,
        rate_limit: RateLimit | None = None,
        task_rate_limit: RateLimit | None = None,
        max_calls_per_task: int | None = None,
        approval: ApprovalPolicy | str | Callable[..., bool] | None = None,
        expected_outcome: str | None = None,
        data_subject: str | None = None,
    ) -> Callable[[F], F]: ...

    def tool(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        reversibility: Reversibility | str = Reversibility.PARTIALLY_REVERSIBLE,
        idempotent: bool = False,
        idempotency_key: bool = False,
        reconcile: Callable[[ToolCall], Any] | None = None,
        describe: str | None = None,
        data_accessed: Sequence[str] = (),
        data_modified: Sequence[str] = (),
        retry: RetryPolicy | None = None,
        refresh: Callable[[ToolCall, BaseException], Mapping[str, Any]] | None = None,
        classify: Rule | Sequence[Rule] | None = None,
        circuit_breaker: CircuitBreaker | None = None,
        rate_limit: RateLimit | None = None,
        task_rate_limit: RateLimit | None = None,
        max_calls_per_task: int | None = None,
        approval: ApprovalPolicy | str | Callable[..., bool] | None = None,
        expected_outcome: str | None = None,
        data_subject: str | None = None,
    ) -> F | Callable[[F], F]:
        """Register a tool. Inside a workflow each call is a recorded step; outside one the
        function just runs.

        - ``reversibility``: fully_reversible, partially_reversible or irreversible;
        - ``idempotent``: running it twice has the effect of running it once;
        - ``idempotency_key``: the function takes an ``idempotency_key`` argument, which
          handrail fills with a key stable across attempts of the same step;
        - ``reconcile(call) -> output | NOT_DONE | UNKNOWN``: after a crash, says whether
          the effect of an in-doubt call happened;
        - ``describe``: the compliance sentence, a template over the call's arguments;
        - ``data_accessed`` / ``data_modified``: what the tool reads and changes;
        - ``retry``: the :class:`RetryPolicy` for its transient and stale-data failures
          (default: the app's);
        - ``refresh(call, error) -> {param: value}``: after a stale-data failure, re-read
          the inputs; the retry runs with them (both are journaled);
        - ``classify``: rules asked first when one of its calls fails;
        - ``circuit_breaker``: its :class:`CircuitBreaker` (default: the app's);
        - ``rate_limit`` / ``task_rate_limit``: a :class:`RateLimit` across all tasks / in
          one task; calls over it wait durably for the next window;
        - ``max_calls_per_task``: a budget; a call over it waits for a human;
        - ``approval``: its :class:`ApprovalPolicy` (or ``"always"``, ``"never"``, a
          predicate); default: the app's. Irreversible calls always need approval;
        - ``expected_outcome``: what an approver is told the call will do, a template over
          its parameters;
        - ``data_subject``: the parameter naming the person a call's data is about; its
          raw payloads in the audit log are sealed under that person's key (erasable per
          person), not the task's.
        """

        def register(f: F) -> F:
            tool = make_tool(
                f,
                name=name,
                reversibility=reversibility,
                idempotent=idempotent,
                idempotency_key=idempotency_key,
                reconcile=reconcile,
                describe=describe,
                data_accessed=data_accessed,
                data_modified=data_modified,
                retry=retry,
                refresh=refresh,
                classify=classify,
                circuit_breaker=circuit_breaker,
                rate_limit=rate_limit,
                task_rate_limit=task_rate_limit,
                max_calls_per_task=max_calls_per_task,
                approval=approval,
                expected_outcome=expected_outcome,
                data_subject=data_subject,
            )
            if tool.name in self.tools and self.tools[tool.name].fn is not f:
                raise ConfigurationError(f"a tool named {tool.name!r} is registered already")
            self.tools[tool.name] = tool
            wrapped: F = _wrap(tool)
            return wrapped

        return register(fn) if fn is not None else register

    # -- tasks ---------------------------------------------------------------------------

    def start(
        self,
        workflow: Workflow | str,
        /,
        *args: Any,
        task_id: str | None = None,
        initiator: str | None = None,
        queue: str | None = None,
        **kwargs: Any,
    ) -> TaskHandle:
        """Enqueue a task; a worker (or :meth:`execute`) runs it. Returns its handle."""
        wf = self._workflow(workflow)
        wf.check_arguments(args, kwargs)
        tid = task_id or uuid.uuid4().hex
        now = self.clock.now()
        inputs_json = serde.dumps({"args": args, "kwargs": kwargs}, what="input", step=wf.name)
        q = queue or wf.queue
        event = Event(
            task_id=tid,
            seq=0,
            kind=EventKind.TASK_CREATED,
            timestamp=now,
            inputs_json=inputs_json,
            actor=initiator,
            data={"workflow": wf.name, "queue": q},
        )
        self.store.create_task(
            NewTask(
                task_id=tid,
                workflow=wf.name,
                queue=q,
                created_at=now,
                run_at=now,
                initiator=initiator,
                max_execution_seconds=wf.max_execution_seconds,
                event=event,
            )
        )
        for waker in list(self._wakers):
            waker.set()
        return TaskHandle(self, tid)

    def run(self, workflow: Workflow | str, /, *args: Any, **kwargs: Any) -> TaskHandle:
        """Start a task and drive it in this thread until it finishes or suspends."""
        handle = self.start(workflow, *args, **kwargs)
        return self.execute(handle.task_id)

    def execute(self, task_id: str) -> TaskHandle:
        """Claim ``task_id`` (it must be runnable now) and drive it in this thread, until it
        finishes or waits for a human or for a time further away than ``max_inline_wait``."""
        self._execute_once(task_id)
        while True:
            record = self.store.get_task(task_id)
            if record is None or record.status.terminal or record.run_at is None:
                break
            wait = record.run_at - self.clock.now()
            if wait > self.max_inline_wait or record.leased(self.clock.now()):
                break
            if wait > 0:
                time.sleep(wait)
            if self.clock.now() < record.run_at:
                break  # a clock that does not move by itself (tests)
            self._execute_once(task_id)
        return TaskHandle(self, task_id)

    def _execute_once(self, task_id: str) -> None:
        claim = self.store.claim_task(
            self.worker_id,
            now=self.clock.now(),
            lease_seconds=self.lease_seconds,
            task_id=task_id,
        )
        if claim is None:
            record = self.store.get_task(task_id)
            if record is None:
                raise NotFoundError("task", task_id)
            from handrail.errors import InvalidOperationError

            raise InvalidOperationError(
                f"task {task_id} is not runnable now (status {record.status.value}"
                + (", held by a live lease" if record.leased(self.clock.now()) else "")
                + ")",
                task_id=task_id,
            )
        self.run_claim(claim)

    def run_claim(self, claim: Any, stopping: Callable[[], bool] | None = None) -> TaskStatus:
        """Drive a claimed task with its lease kept alive; wake anyone waiting on it."""
        self.heartbeat.add(claim.lease)
        try:
            status = drive(self, claim, stopping)
        finally:
            self.heartbeat.discard(claim.lease)
            with self._finished:
                self._finished.notify_all()
        return status

    def handle(self, task_id: str) -> TaskHandle:
        """The handle of an existing task."""
        if self.store.get_task(task_id) is None:
            raise NotFoundError("task", task_id)
        return TaskHandle(self, task_id)

    # -- operator actions (the same operations the CLI calls) ---------------------------

    def cancel(self, task_id: str, *, by: str, reason: str | None = None) -> TaskStatus:
        """Cancel a task; a running one stops at its next step boundary."""
        from handrail import ops

        return ops.cancel_task(self.store, self.clock, task_id, actor=by, reason=reason)

    def resume(self, task_id: str, *, by: str) -> TaskStatus:
        """Make a failed or stalled task runnable again now."""
        from handrail import ops

        return ops.resume_task(self.store, self.clock, task_id, actor=by)

    def interventions(
        self, *, task_id: str | None = None, include_resolved: bool = False
    ) -> list[Intervention]:
        """Open interventions (all of them with ``include_resolved``)."""
        from handrail import ops

        return ops.list_interventions(
            self.store, task_id=task_id, include_resolved=include_resolved
        )

    def resolve_intervention(
        self,
        intervention_id: str,
        *,
        action: str,
        by: str,
        output: Any = None,
        comment: str | None = None,
    ) -> TaskStatus:
        """Resolve an intervention: ``mark_done`` (with the step's ``output``), ``retry``
        or ``fail``. ``by`` names the principal; it is journaled."""
        from handrail import ops

        return ops.resolve_intervention(
            self.store,
            self.clock,
            intervention_id,
            action=action,
            actor=by,
            output=output,
            comment=comment,
        )

    def halt(
        self,
        scope: str,
        target: str | None = None,
        *,
        by: str,
        reason: str | None = None,
    ) -> Halt:
        """The stop button: halt one task (``"task", task_id``), one tool (``"tool",
        name``) or everything (``"all"``). Work stops at its next step boundary."""
        from handrail import ops

        return ops.halt(self.store, self.clock, scope, target, actor=by, reason=reason)

    def release(self, scope: str, target: str | None = None, *, by: str) -> list[str]:
        """Release a halt; returns the ids of the parked tasks that continue."""
        from handrail import ops

        return ops.release(self.store, self.clock, scope, target, actor=by)[1]

    def approvals(
        self, *, task_id: str | None = None, include_decided: bool = False
    ) -> list[Approval]:
        """Pending approval requests, oldest first (all of them with ``include_decided``)."""
        from handrail import decisions

        return decisions.list_approvals(
            self.store, task_id=task_id, include_decided=include_decided
        )

    def approval(self, request_id: str) -> Approval:
        """One approval request and its decisions so far."""
        from handrail import decisions

        return decisions.find_approval(self.store, request_id)

    def approve(
        self,
        request_id: str,
        *,
        by: str,
        comment: str | None = None,
        digest: str | None = None,
        edit: Mapping[str, Any] | None = None,
    ) -> Approval:
        """Approve a request as principal ``by``. Pass the ``digest`` you were shown to make
        sure you approve exactly that action; ``edit`` approves with changed parameters."""
        from handrail import decisions

        return decisions.decide(
            self.store,
            self.clock,
            request_id,
            decision="approved",
            actor=by,
            comment=comment,
            digest_seen=digest,
            edit=edit,
        )

    def deny(
        self, request_id: str, *, by: str, comment: str | None = None, digest: str | None = None
    ) -> Approval:
        """Deny a request as principal ``by``; the gated call raises ``ApprovalDenied``."""
        from handrail import decisions

        return decisions.decide(
            self.store,
            self.clock,
            request_id,
            decision="denied",
            actor=by,
            comment=comment,
            digest_seen=digest,
        )

    def worker(
        self,
        *,
        concurrency: int = 4,
        queues: Sequence[str] | None = None,
        poll_interval: float = 0.5,
    ) -> Worker:
        """An in-process worker (``with app.worker(): ...`` runs it in the background)."""
        from handrail.worker import Worker

        return Worker(self, concurrency=concurrency, queues=queues, poll_interval=poll_interval)

    def _workflow(self, workflow: Workflow | str) -> Workflow:
        name = workflow if isinstance(workflow, str) else workflow.name
        wf = self.workflows.get(name)
        if wf is None:
            known = ", ".join(sorted(self.workflows)) or "none"
            raise ConfigurationError(
                f"no workflow named {name!r} is registered on this app (registered: {known})"
            )
        return wf

    def wait_finished(self, timeout: float) -> None:
        """Block until a task driven in this process finishes or ``timeout`` passes."""
        with self._finished:
            self._finished.wait(timeout)

    def add_waker(self, event: threading.Event) -> None:
        self._wakers.append(event)

    def remove_waker(self, event: threading.Event) -> None:
        if event in self._wakers:
            self._wakers.remove(event)


def _tracing(value: Tracing | bool) -> Tracing | None:
    if value is False or value is None:
        return None
    if value is True:
        try:
            from handrail.tracing import Tracing
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "tracing needs OpenTelemetry: pip install 'handrail[otel]'"
            ) from exc
        return Tracing()
    return value


def _wrap(tool: Tool) -> Any:
    """The function users call: a recorded step inside a workflow, a plain call outside."""
    fn = tool.fn
    if tool.is_async:

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = _CURRENT.get()
            if ctx is None:
                return await fn(*args, **kwargs)
            return await ctx.call_tool_async(tool, args, kwargs)

        async_wrapper.tool = tool  # type: ignore[attr-defined]
        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = _CURRENT.get()
        if ctx is None:
            return fn(*args, **kwargs)
        return ctx.call_tool(tool, args, kwargs)

    wrapper.tool = tool  # type: ignore[attr-defined]
    return wrapper


__all__ = ["App", "TaskStatus"]
