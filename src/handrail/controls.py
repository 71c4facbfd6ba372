"""Controls on tool calls: circuit breakers, rate limits and budgets.

- A **circuit breaker** per tool counts consecutive transient failures across every task and
  worker (in the store); past ``threshold`` the circuit opens for ``cooldown`` seconds and
  calls of the tool *wait durably* until it closes: they do not fail.
- A **rate limit** (``calls`` per ``per`` seconds) paces a tool across all tasks
  (``rate_limit``) or within one task (``task_rate_limit``): a call over the limit waits
  durably for the next window.
- A **budget** caps calls of a tool in one task (``max_calls_per_task``) or the steps of a
  workflow (``max_steps``): exceeding it pauses the task with an intervention; resolving it
  with ``retry`` allows that one call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from handrail.clock import Clock
from handrail.errors import ConfigurationError
from handrail.store.base import CircuitState, Store


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """Open a tool's circuit after ``threshold`` consecutive transient failures, for
    ``cooldown`` seconds."""

    threshold: int = 5
    cooldown: float = 30.0

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ConfigurationError("CircuitBreaker.threshold must be at least 1")
        if self.cooldown <= 0:
            raise ConfigurationError("CircuitBreaker.cooldown must be > 0")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``calls`` calls per ``per`` seconds (fixed windows)."""

    calls: int
    per: float

    def __post_init__(self) -> None:
        if self.calls < 1:
            raise ConfigurationError("RateLimit.calls must be at least 1")
        if self.per <= 0:
            raise ConfigurationError("RateLimit.per must be > 0 seconds")


class Circuits:
    """This process's view of every tool's circuit, read from the store at most once per
    ``ttl`` seconds so that checking it costs no I/O on the step path. A circuit another
    worker opened is seen here within ``ttl``."""

    def __init__(self, store: Store, clock: Clock, ttl: float = 1.0):
        self._store = store
        self._clock = clock
        self._ttl = ttl
        self._states: dict[str, CircuitState] = {}
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def _fresh(self) -> dict[str, CircuitState]:
        now = time.monotonic()
        if now - self._read_at >= self._ttl:
            with self._lock:
                if now - self._read_at >= self._ttl:
                    self._states = {c.tool: c for c in self._store.circuits()}
                    self._read_at = now
        return self._states

    def open_until(self, tool: str) -> float | None:
        """When ``tool``'s circuit closes, if it is open now."""
        state = self._fresh().get(tool)
        if state is not None and state.open(self._clock.now()):
            return state.open_until
        return None

    def failed(self, tool: str, breaker: CircuitBreaker) -> CircuitState:
        state = self._store.record_tool_failure(
            tool, now=self._clock.now(), threshold=breaker.threshold, cooldown=breaker.cooldown
        )
        with self._lock:
            self._states = {**self._states, tool: state}
        return state

    def succeeded(self, tool: str) -> None:
        state = self._fresh().get(tool)
        if state is None or (state.failures == 0 and state.open_until is None):
            return
        now = self._clock.now()
        self._store.record_tool_success(tool, now=now)
        with self._lock:
            self._states = {
                **self._states,
                tool: CircuitState(tool, 0, state.opened_at, None, now),
            }

    def states(self) -> list[CircuitState]:
        """Every circuit as the store has it now (for monitoring)."""
        return self._store.circuits()


@dataclass(frozen=True, slots=True)
class Gate:
    """Why a call may not start now: ``wait`` until ``due`` (circuit open, rate limit), or
    ``budget`` (ask a human)."""

    kind: str
    reason: str
    due: float = 0.0
    details: dict[str, object] | None = None


def check_call(
    *,
    tool: str,
    index: int,
    calls_in_task: Callable[[float | None], int],
    now: float,
    circuit_open_until: float | None,
    max_calls_per_task: int | None,
    task_rate_limit: RateLimit | None,
    oldest_in_window: Callable[[float], float],
    max_steps: int | None,
    granted: bool,
    take_tool_token: Callable[[], float | None] | None,
) -> Gate | None:
    """The first control that stops a new call of ``tool`` at step ``index``, if any."""
    if circuit_open_until is not None:
        return Gate(
            "wait",
            f"the circuit of {tool} is open after repeated transient failures",
            circuit_open_until,
        )
    if not granted:
        if max_steps is not None and index >= max_steps:
            return Gate(
                "budget",
                f"the workflow's budget of {max_steps} steps is spent (step {index} would "
                "exceed it)",
                details={"budget": "max_steps", "limit": max_steps, "tool": tool},
            )
        if max_calls_per_task is not None and calls_in_task(None) >= max_calls_per_task:
            return Gate(
                "budget",
                f"the task's budget of {max_calls_per_task} calls of {tool} is spent",
                details={"budget": "max_calls_per_task", "limit": max_calls_per_task, "tool": tool},
            )
    if task_rate_limit is not None:
        since = now - task_rate_limit.per
        if calls_in_task(since) >= task_rate_limit.calls:
            return Gate(
                "wait",
                f"{tool} is limited to {task_rate_limit.calls} calls per "
                f"{task_rate_limit.per}s in a task",
                oldest_in_window(since) + task_rate_limit.per,
            )
    if take_tool_token is not None:
        due = take_tool_token()
        if due is not None:
            return Gate("wait", f"{tool} is at its rate limit across tasks", due)
    return None
