"""TaskHandle: a started task, to wait on and inspect."""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from handrail import serde
from handrail.errors import NotFoundError, TaskCancelledError, TaskFailedError
from handrail.journal import Event, EventKind, TaskState, TaskStatus, fold

if TYPE_CHECKING:
    from handrail.app import App

_ENDS = (EventKind.TASK_COMPLETED, EventKind.TASK_FAILED)


class TaskHandle:
    """A task's id bound to its app. ``handle.result()`` waits; ``await handle`` too."""

    def __init__(self, app: App, task_id: str):
        self.app = app
        self.task_id = task_id

    def __repr__(self) -> str:
        return f"TaskHandle({self.task_id!r})"

    def status(self) -> TaskStatus:
        record = self.app.store.get_task(self.task_id)
        if record is None:
            raise NotFoundError("task", self.task_id)
        return record.status

    def events(self) -> list[Event]:
        """The task's journal (its timeline)."""
        return self.app.store.load_events(self.task_id)

    def state(self) -> TaskState:
        """The task as folded from its journal."""
        return fold(self.events(), self.task_id)

    def context_summary(self) -> str:
        """The completed steps, for an LLM prompt."""
        return self.state().context_summary()

    def _outcome(self) -> tuple[bool, Any]:
        status = self.status()
        if not status.terminal:
            return False, None
        if status is TaskStatus.CANCELLED:
            raise TaskCancelledError(self.task_id)
        # The journal's terminal event holds the result (or the error): no need to fold
        # the whole journal for it.
        end = next((e for e in reversed(self.events()) if e.kind in _ENDS), None)
        if end is None:  # a terminal status without its event: fold what there is
            state = self.state()
            result_json, error = state.result_json, state.error
        else:
            result_json, error = end.outputs_json, end.error
        if status is TaskStatus.COMPLETED:
            return True, serde.loads(result_json)
        raise TaskFailedError(self.task_id, error)

    def result(self, timeout: float | None = None) -> Any:
        """Block until the task finishes; return its result, or raise ``TaskFailedError`` /
        ``TaskCancelledError``; ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.005
        while True:
            done, value = self._outcome()
            if done:
                return value
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"task {self.task_id} is still {self.status().value} after {timeout}s"
                )
            wait = pause if deadline is None else min(pause, max(0.0, deadline - time.monotonic()))
            self.app.wait_finished(wait)
            pause = min(pause * 2, 0.25)

    def __await__(self) -> Generator[Any, None, Any]:
        return self._result_async().__await__()

    async def _result_async(self) -> Any:
        import asyncio

        pause = 0.005
        while True:
            done, value = self._outcome()
            if done:
                return value
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)
