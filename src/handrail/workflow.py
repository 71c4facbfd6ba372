"""Workflows: the functions that drive tasks, and the runner that drives one claimed task.

A workflow is re-run from the top on every resume; recorded steps return their recorded
outputs instead of running again (see :mod:`handrail.context`). What re-runs on resume is
therefore exactly the workflow's own code between steps, which must be deterministic.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from handrail import serde
from handrail.context import _CURRENT, TaskContext
from handrail.errors import (
    CancelRequested,
    ConfigurationError,
    HandrailError,
    LeaseLost,
    NonDeterminismError,
    Suspended,
    ToolCallFailed,
)
from handrail.journal import TaskStatus, fold
from handrail.store.base import Claim

if TYPE_CHECKING:
    from handrail.app import App

RESERVED_PARAMETERS = frozenset({"task_id", "initiator", "queue"})


@dataclass(frozen=True)
class Workflow:
    """A registered workflow. Calling it calls the function (for tests with a context)."""

    fn: Callable[..., Any]
    name: str
    queue: str = "default"
    max_execution_seconds: float | None = None
    is_async: bool = False
    signature: inspect.Signature | None = None
    max_steps: int | None = None
    agent: str | None = None
    positional: int | None = None
    """How many arguments after the context the function takes when they are exactly
    that many positional parameters (no defaults, no ``*args``/``**kwargs``): such a
    call is checked by counting, without binding the signature."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def check_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Refuse, before a task exists, arguments the workflow function cannot take."""
        if self.signature is None:
            return
        if not kwargs and len(args) == self.positional:
            return
        try:
            self.signature.bind(None, *args, **kwargs)
        except TypeError as exc:
            params = ", ".join(list(self.signature.parameters)[1:]) or "none"
            raise ConfigurationError(
                f"workflow {self.name!r} cannot take these arguments: {exc} "
                f"(its parameters after the context: {params})"
            ) from None


def make_workflow(
    fn: Callable[..., Any],
    *,
    name: str | None,
    queue: str,
    max_execution_time: float | None,
    max_steps: int | None = None,
    agent: str | None = None,
) -> Workflow:
    from handrail.tools import default_name

    wf_name = name or default_name(fn)
    signature = inspect.signature(fn)
    params = list(signature.parameters)
    if not params:
        raise ConfigurationError(
            f"workflow {wf_name!r} takes no parameters; its first parameter receives the "
            "TaskContext (def {wf_name}(ctx, ...))"
        )
    clash = RESERVED_PARAMETERS.intersection(params[1:])
    if clash:
        raise ConfigurationError(
            f"workflow {wf_name!r}: parameter name(s) {sorted(clash)} are reserved by "
            "App.start(); rename them"
        )
    if max_execution_time is not None and max_execution_time <= 0:
        raise ConfigurationError(f"workflow {wf_name!r}: max_execution_time must be > 0")
    return Workflow(
        fn=fn,
        name=wf_name,
        queue=queue,
        max_execution_seconds=max_execution_time,
        is_async=inspect.iscoroutinefunction(fn),
        signature=signature,
        max_steps=max_steps,
        agent=agent,
        positional=_plain_arity(signature),
    )


def _plain_arity(signature: inspect.Signature) -> int | None:
    """The number of parameters after the first, if every one is a plain positional
    parameter without a default; else ``None``."""
    plain = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = list(signature.parameters.values())[1:]
    if all(p.kind in plain and p.default is inspect.Parameter.empty for p in params):
        return len(params)
    return None


def _error(exc: BaseException, **extra: Any) -> dict[str, Any]:
    return {"type": type(exc).__qualname__, "message": str(exc)[:4000], **extra}


def drive(app: App, claim: Claim, stopping: Callable[[], bool] | None = None) -> TaskStatus:
    """Run one claimed task until it finishes or suspends; return the status it reached."""
    tracing = app.tracing
    if tracing is None:
        return _drive(app, claim, stopping)
    workflow = app.workflows.get(claim.task.workflow)
    agent = (workflow.agent if workflow else None) or claim.task.workflow
    with tracing.task_span(
        task_id=claim.lease.task_id,
        workflow=claim.task.workflow,
        agent=agent,
        worker=claim.lease.worker_id,
        epoch=claim.lease.epoch,
    ) as span:
        status = _drive(app, claim, stopping)
        tracing.outcome(span, status.value)
        return status


def _drive(app: App, claim: Claim, stopping: Callable[[], bool] | None) -> TaskStatus:
    state = fold(claim.events)
    ctx = TaskContext(
        store=app.store,
        clock=app.clock,
        lease=claim.lease,
        state=state,
        stopping=stopping,
        classifier=app.classifier,
        retry_policy=app.retry_policy,
        circuits=app.circuits,
        circuit_breaker=app.circuit_breaker,
        gate_settings=app.gate_settings,
        auditor=app.auditor,
        tracing=app.tracing,
    )
    token = _CURRENT.set(ctx)
    try:
        if claim.task.cancel_requested_by is not None:
            state.cancel_requested_by = claim.task.cancel_requested_by
            ctx.finish_cancelled()
            return TaskStatus.CANCELLED
        workflow = app.workflows.get(state.workflow)
        if workflow is None:
            ctx.fail(
                {
                    "type": "UnknownWorkflow",
                    "message": f"this worker's app has no workflow {state.workflow!r}",
                }
            )
            return TaskStatus.FAILED
        ctx.max_steps = workflow.max_steps
        ctx.agent = workflow.agent or workflow.name
        inputs = serde.loads(state.inputs_json) or {}
        args, kwargs = inputs.get("args", []), inputs.get("kwargs", {})
        try:
            if workflow.is_async:
                import asyncio

                result = asyncio.run(workflow.fn(ctx, *args, **kwargs))
            else:
                result = workflow.fn(ctx, *args, **kwargs)
            if ctx.poisoned is not None:
                raise ctx.poisoned
            ctx.complete(result)
            return TaskStatus.COMPLETED
        except Suspended:
            return ctx.state.status
        except (LeaseLost, CancelRequested):
            return ctx.state.status
        except ToolCallFailed as exc:
            if ctx.poisoned is not None:
                ctx.fail(_error(ctx.poisoned, step_index=ctx.poisoned.step_index))
            else:
                error = {
                    "type": exc.error_type,
                    "message": exc.error_message,
                    "step_index": exc.step_index,
                    "tool": exc.tool,
                }
                if exc.failure_class:
                    error["failure_class"] = exc.failure_class
                ctx.fail(error)
            return TaskStatus.FAILED
        except NonDeterminismError as exc:
            ctx.fail(_error(exc, step_index=exc.step_index))
            return TaskStatus.FAILED
        except (HandrailError, Exception) as exc:
            poison = ctx.poisoned
            if poison is not None:
                ctx.fail(_error(poison, step_index=poison.step_index))
            else:
                ctx.fail(_error(exc))
            return TaskStatus.FAILED
    except (LeaseLost, CancelRequested):
        return ctx.state.status
    finally:
        _CURRENT.reset(token)
