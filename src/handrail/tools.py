"""Tools: steps with side effects, and the metadata that says how to treat them.

A tool's metadata decides what happens when a crash leaves one of its calls *in doubt*
(intent recorded, result not): an idempotent tool, or one that takes the stable
``idempotency_key`` handrail derives from task and step, is simply run again; a tool with a
``reconcile`` function is asked whether the effect happened; any other tool waits for a
human. Irreversible tools are never re-run without one.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from handrail.approvals import ApprovalPolicy, check_tool_policy, coerce_policy
from handrail.controls import CircuitBreaker, RateLimit
from handrail.errors import ConfigurationError
from handrail.failures import RetryPolicy, Rule


class Reversibility(StrEnum):
    """How far an action can be undone if it turns out wrong."""

    FULLY_REVERSIBLE = "fully_reversible"
    PARTIALLY_REVERSIBLE = "partially_reversible"
    IRREVERSIBLE = "irreversible"


class _Marker:
    __slots__ = ("_name",)

    def __init__(self, name: str):
        self._name = name

    def __repr__(self) -> str:
        return self._name


NOT_DONE: Final = _Marker("NOT_DONE")
"""What a ``reconcile`` function returns when the effect did not happen: run the tool."""

UNKNOWN: Final = _Marker("UNKNOWN")
"""What a ``reconcile`` function returns when it cannot tell: ask a human."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call of a tool inside a task, as a ``reconcile`` function sees it."""

    task_id: str
    step_index: int
    tool: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    idempotency_key: str


def default_name(fn: Callable[..., Any]) -> str:
    """A function's qualified name, or its plain name when defined inside a function."""
    qualname = str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn)))
    return str(getattr(fn, "__name__", qualname)) if "<locals>" in qualname else qualname


def idempotency_key(task_id: str, step_index: int) -> str:
    """The stable key of a step: the same on every attempt, unique across tasks and steps."""
    digest = hashlib.sha256(f"{task_id}\x00{step_index}".encode()).hexdigest()[:32]
    return f"hr-{digest}"


@dataclass(frozen=True)
class Tool:
    """A registered tool: the function and its metadata."""

    fn: Callable[..., Any]
    name: str
    reversibility: Reversibility = Reversibility.PARTIALLY_REVERSIBLE
    idempotent: bool = False
    takes_idempotency_key: bool = False
    reconcile: Callable[[ToolCall], Any] | None = None
    describe: str | None = None
    data_accessed: Sequence[str] = field(default_factory=tuple)
    data_modified: Sequence[str] = field(default_factory=tuple)
    is_async: bool = False
    retry: RetryPolicy | None = None
    refresh: Callable[[ToolCall, BaseException], Mapping[str, Any]] | None = None
    rules: tuple[Rule, ...] = ()
    circuit_breaker: CircuitBreaker | None = None
    rate_limit: RateLimit | None = None
    task_rate_limit: RateLimit | None = None
    max_calls_per_task: int | None = None
    approval: ApprovalPolicy | None = None
    expected_outcome: str | None = None
    data_subject: str | None = None
    audited: bool = True

    @property
    def safe_to_rerun(self) -> bool:
        """An in-doubt call may run again without a human: the tool is idempotent or
        deduplicates by key, and is not irreversible (those always wait for a human)."""
        if self.reversibility is Reversibility.IRREVERSIBLE:
            return False
        return self.idempotent or self.takes_idempotency_key

    def description(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The compliance sentence for one call, from the ``describe`` template."""
        if self.describe is None:
            return f"Called {self.name}"
        try:
            bound = inspect.signature(self.fn).bind_partial(*args, **kwargs)
            return self.describe.format(**bound.arguments)
        except (KeyError, IndexError, TypeError, ValueError):
            return self.describe


def make_tool(
    fn: Callable[..., Any],
    *,
    name: str | None,
    reversibility: Reversibility | str,
    idempotent: bool,
    idempotency_key: bool,
    reconcile: Callable[[ToolCall], Any] | None,
    describe: str | None,
    data_accessed: Sequence[str],
    data_modified: Sequence[str],
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
) -> Tool:
    """Check the metadata against the function and build the :class:`Tool`."""
    tool_name = name or default_name(fn)
    try:
        rev = Reversibility(reversibility)
    except ValueError:
        choices = ", ".join(r.value for r in Reversibility)
        raise ConfigurationError(
            f"tool {tool_name!r}: reversibility {reversibility!r} is not one of {choices}"
        ) from None
    if idempotency_key:
        params = inspect.signature(fn).parameters
        if "idempotency_key" not in params and not any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
        ):
            raise ConfigurationError(
                f"tool {tool_name!r} is declared with idempotency_key=True but its function "
                "has no `idempotency_key` parameter; add one (handrail passes the stable key "
                "for the task and step)"
            )
    if reconcile is not None and not callable(reconcile):
        raise ConfigurationError(f"tool {tool_name!r}: reconcile must be callable")
    if refresh is not None and not callable(refresh):
        raise ConfigurationError(f"tool {tool_name!r}: refresh must be callable")
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ConfigurationError(f"tool {tool_name!r}: retry must be a handrail.RetryPolicy")
    if max_calls_per_task is not None and max_calls_per_task < 1:
        raise ConfigurationError(f"tool {tool_name!r}: max_calls_per_task must be >= 1")
    if data_subject is not None and data_subject not in inspect.signature(fn).parameters:
        raise ConfigurationError(
            f"tool {tool_name!r}: data_subject={data_subject!r} names no parameter of it; "
            "name the parameter that identifies the person the call's data is about"
        )
    policy = coerce_policy(approval)
    check_tool_policy(tool_name, rev.value, policy)
    rules: tuple[Rule, ...] = (
        () if classify is None else (classify,) if callable(classify) else tuple(classify)
    )
    return Tool(
        fn=fn,
        name=tool_name,
        reversibility=rev,
        idempotent=idempotent,
        takes_idempotency_key=idempotency_key,
        reconcile=reconcile,
        describe=describe,
        data_accessed=tuple(data_accessed),
        data_modified=tuple(data_modified),
        is_async=inspect.iscoroutinefunction(fn),
        retry=retry,
        refresh=refresh,
        rules=rules,
        circuit_breaker=circuit_breaker,
        rate_limit=rate_limit,
        task_rate_limit=task_rate_limit,
        max_calls_per_task=max_calls_per_task,
        approval=policy,
        expected_outcome=expected_outcome,
        data_subject=data_subject,
    )
