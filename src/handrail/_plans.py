"""What a step's journal lookup decides: run an attempt now, or return a recorded output."""

from __future__ import annotations

from typing import Any


class StepRun:
    """A step attempt to execute now."""

    __slots__ = ("args", "attempt", "base", "first_at", "index", "kwargs", "perf", "started_at")

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
        self.started_at = 0.0  # when the attempt's code began (wall clock), for the audit
        self.perf = 0.0  # perf_counter() then


class Recorded:
    """A step whose output the journal already holds."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value
