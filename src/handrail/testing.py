"""Fakes for testing code that uses handrail: an in-memory store and a clock you move.

``MemoryStore`` keeps the exact semantics of the real stores (it passes the same contract
suite) inside one process; ``ManualClock`` lets deadlines, leases and timers be tested
without sleeping::

    clock = ManualClock()
    app = App(MemoryStore(), clock=clock)
    handle = app.run(workflow)  # waits on a deadline
    clock.advance(3600)
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from handrail.audit.memory import MemoryAuditLog
    from handrail.audit.record import AuditDraft
    from handrail.notify.memory_outbox import MemoryNoticeOutbox

from handrail.errors import CancelRequested, Halted, LeaseLost, StaleWriteError, TaskExistsError
from handrail.journal import OPENS_STEP, Event, EventKind, TaskStatus
from handrail.store._locks import LocalLocks
from handrail.store.base import (
    UNSET,
    CircuitState,
    Claim,
    Halt,
    Lease,
    LocalWakeups,
    NewTask,
    Subscription,
    TaskRecord,
    _Unset,
)

__all__ = ["ManualClock", "MemoryStore"]


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float | None = None):
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward; returns the new now."""
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, now: float) -> None:
        self._now = now


class MemoryStore:
    """The store protocol in one process's memory. Nothing survives the process."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tasks: dict[str, TaskRecord] = {}
        self._events: dict[str, list[Event]] = {}
        self._order: list[str] = []
        self._halts: list[Halt] = []
        self._circuits: dict[str, CircuitState] = {}
        self._rates: dict[str, tuple[float, int]] = {}
        self._wakeups = LocalWakeups()
        self._audit_log: MemoryAuditLog | None = None
        self._notice_outbox: MemoryNoticeOutbox | None = None
        self._named_locks = LocalLocks()

    def named_lock(self, name: str) -> AbstractContextManager[None]:
        return self._named_locks.hold(name)

    def close(self) -> None:
        """Nothing to release."""

    def audit_log(self) -> MemoryAuditLog:
        with self._lock:
            if self._audit_log is None:
                from handrail.audit.memory import MemoryAuditLog

                self._audit_log = MemoryAuditLog()
            return self._audit_log

    def notice_outbox(self) -> MemoryNoticeOutbox:
        with self._lock:
            if self._notice_outbox is None:
                from handrail.notify.memory_outbox import MemoryNoticeOutbox

                self._notice_outbox = MemoryNoticeOutbox()
            return self._notice_outbox

    def _append_audit(self, drafts: Sequence[AuditDraft]) -> None:
        """Seal ``drafts`` and append them (under the store's lock: with the events)."""
        from handrail.audit.record import seal_drafts

        log = self.audit_log()
        log.append(seal_drafts(drafts, log.vault))

    def subscribe(self) -> Subscription:
        return self._wakeups.subscribe()

    def _replace(self, task_id: str, **changes: object) -> TaskRecord:
        record = dataclasses.replace(self._tasks[task_id], **changes)  # type: ignore[arg-type]
        self._tasks[task_id] = record
        return record

    def create_task(self, task: NewTask) -> None:
        with self._lock:
            if task.task_id in self._tasks:
                raise TaskExistsError(task.task_id)
            self._tasks[task.task_id] = TaskRecord(
                task_id=task.task_id,
                workflow=task.workflow,
                queue=task.queue,
                status=TaskStatus.PENDING,
                created_at=task.created_at,
                updated_at=task.created_at,
                run_at=task.run_at,
                lease_owner=None,
                lease_expires_at=None,
                epoch=0,
                cancel_requested_by=None,
                initiator=task.initiator,
                max_execution_seconds=task.max_execution_seconds,
            )
            self._events[task.task_id] = [task.event]
            self._order.append(task.task_id)
        self._wakeups.signal()

    def _claimable(
        self,
        r: TaskRecord,
        now: float,
        queues: Sequence[str] | None,
        workflows: Sequence[str] | None,
    ) -> bool:
        return (
            r.run_at is not None
            and not self._halted(r.task_id)
            and (queues is None or r.queue in queues)
            and (workflows is None or r.workflow in workflows)
            and (r.lease_owner is None or (r.lease_expires_at or 0) <= now)
        )

    def claim_task(
        self,
        worker_id: str,
        *,
        now: float,
        lease_seconds: float,
        queues: Sequence[str] | None = None,
        workflows: Sequence[str] | None = None,
        task_id: str | None = None,
    ) -> Claim | None:
        with self._lock:
            candidates = [
                r
                for r in self._tasks.values()
                if (task_id is None or r.task_id == task_id)
                and self._claimable(r, now, queues, workflows)
                and r.run_at is not None
                and r.run_at <= now
            ]
            if not candidates:
                return None
            chosen = min(candidates, key=lambda r: (r.run_at, self._order.index(r.task_id)))
            record = self._replace(
                chosen.task_id,
                lease_owner=worker_id,
                lease_expires_at=now + lease_seconds,
                epoch=chosen.epoch + 1,
                status=TaskStatus.IN_PROGRESS,
                updated_at=now,
            )
            events = self._events[record.task_id]
            events.append(
                Event(
                    task_id=record.task_id,
                    seq=events[-1].seq + 1,
                    kind=EventKind.TASK_CLAIMED,
                    timestamp=now,
                    data={"worker": worker_id, "epoch": record.epoch},
                )
            )
            return Claim(record, Lease(record.task_id, worker_id, record.epoch), list(events))

    def renew_lease(self, lease: Lease, *, now: float, lease_seconds: float) -> bool:
        with self._lock:
            r = self._tasks.get(lease.task_id)
            if r is None or r.epoch != lease.epoch or r.lease_owner != lease.worker_id:
                return False
            self._replace(lease.task_id, lease_expires_at=now + lease_seconds)
            return True

    def release_worker(self, worker_id: str) -> int:
        with self._lock:
            held = [r.task_id for r in self._tasks.values() if r.lease_owner == worker_id]
            for tid in held:
                self._replace(tid, lease_owner=None, lease_expires_at=None)
            return len(held)

    def _apply(
        self,
        task_id: str,
        events: Sequence[Event],
        now: float,
        status: TaskStatus | None,
        run_at: float | _Unset | None,
        release: bool,
    ) -> None:
        journal = self._events[task_id]
        seqs = {e.seq for e in journal}
        if any(e.seq in seqs for e in events) or len({e.seq for e in events}) != len(events):
            raise StaleWriteError(task_id, "an event with that sequence number exists")
        journal.extend(events)
        journal.sort(key=lambda e: e.seq)
        changes: dict[str, object] = {}
        if status is not None:
            changes["status"] = status
        if not isinstance(run_at, _Unset):
            changes["run_at"] = run_at
        if release:
            changes["lease_owner"] = None
            changes["lease_expires_at"] = None
        if changes:
            changes["updated_at"] = now
            self._replace(task_id, **changes)

    def append_events(
        self,
        lease: Lease,
        events: Sequence[Event],
        *,
        now: float,
        status: TaskStatus | None = None,
        run_at: float | _Unset | None = UNSET,
        release: bool = False,
        boundary: bool = False,
        audit: Sequence[AuditDraft] = (),
    ) -> None:
        with self._lock:
            r = self._tasks.get(lease.task_id)
            if r is None or r.epoch != lease.epoch or r.lease_owner != lease.worker_id:
                raise LeaseLost(lease.task_id)
            if boundary and r.cancel_requested_by is not None:
                raise CancelRequested(lease.task_id)
            if boundary:
                tools = [e.step_name for e in events if e.kind in OPENS_STEP]
                for halt in self._halts:
                    if any(halt.covers(lease.task_id, tool) for tool in tools) or (
                        tools and halt.covers(lease.task_id, None)
                    ):
                        raise Halted(
                            lease.task_id, halt.halt_id, halt.scope, halt.target, halt.halted_by
                        )
            self._apply(lease.task_id, events, now, status, run_at, release)
            if audit:
                self._append_audit(audit)
        if release and run_at is not None and run_at is not UNSET:
            self._wakeups.signal()

    def append_unleased(
        self,
        task_id: str,
        events: Sequence[Event],
        *,
        expect_seq: int,
        now: float,
        status: TaskStatus | None = None,
        run_at: float | _Unset | None = UNSET,
        audit: Sequence[AuditDraft] = (),
    ) -> None:
        with self._lock:
            r = self._tasks.get(task_id)
            if r is None:
                raise StaleWriteError(task_id, "the task does not exist")
            if r.leased(now):
                raise StaleWriteError(task_id, "a worker holds the task now")
            if self._events[task_id][-1].seq != expect_seq:
                raise StaleWriteError(task_id, "its journal moved on")
            self._replace(task_id, epoch=r.epoch + 1, lease_owner=None, lease_expires_at=None)
            self._apply(task_id, events, now, status, run_at, False)
            if audit:
                self._append_audit(audit)
        if run_at is not None and run_at is not UNSET:
            self._wakeups.signal()

    def request_cancel(self, task_id: str, actor: str, *, now: float) -> TaskRecord:
        with self._lock:
            r = self._tasks.get(task_id)
            if r is None:
                raise StaleWriteError(task_id, "the task does not exist")
            record = self._replace(
                task_id, cancel_requested_by=r.cancel_requested_by or actor, updated_at=now
            )
        self._wakeups.signal()
        return record

    def load_events(self, task_id: str) -> list[Event]:
        with self._lock:
            return list(self._events.get(task_id, ()))

    def last_seqs(self, statuses: Sequence[TaskStatus]) -> dict[str, int]:
        wanted = set(statuses)
        with self._lock:
            return {
                task_id: self._events[task_id][-1].seq
                for task_id, task in self._tasks.items()
                if task.status in wanted and self._events.get(task_id)
            }

    def get_task(self, task_id: str) -> TaskRecord | None:
        with self._lock:
            return self._tasks.get(task_id)

    def read_task(self, task_id: str) -> tuple[TaskRecord, list[Event]] | None:
        with self._lock:
            record = self._tasks.get(task_id)
            return None if record is None else (record, list(self._events[task_id]))

    def list_tasks(
        self,
        *,
        statuses: Sequence[TaskStatus] | None = None,
        workflow: str | None = None,
        queue: str | None = None,
        limit: int = 100,
    ) -> list[TaskRecord]:
        with self._lock:
            rows = [
                r
                for r in self._tasks.values()
                if (statuses is None or r.status in statuses)
                and (workflow is None or r.workflow == workflow)
                and (queue is None or r.queue == queue)
            ]
        rows.sort(key=lambda r: (r.created_at, r.task_id), reverse=True)
        return rows[:limit]

    def next_due(
        self,
        *,
        now: float,
        queues: Sequence[str] | None = None,
        workflows: Sequence[str] | None = None,
    ) -> float | None:
        with self._lock:
            times = [
                max(r.run_at, r.lease_expires_at or r.run_at)
                for r in self._tasks.values()
                if r.run_at is not None
                and not self._halted(r.task_id)
                and (queues is None or r.queue in queues)
                and (workflows is None or r.workflow in workflows)
            ]
        return min(times) if times else None

    # -- operator controls -------------------------------------------------------------

    def _halted(self, task_id: str) -> bool:
        """An active halt of everything or of this task keeps it from being claimed."""
        return any(
            h.active and (h.scope == "all" or (h.scope == "task" and h.target == task_id))
            for h in self._halts
        )

    def add_halt(self, halt: Halt) -> None:
        with self._lock:
            if any(h.halt_id == halt.halt_id for h in self._halts):
                raise StaleWriteError(halt.halt_id, "a halt with this id exists")
            self._halts.append(halt)

    def release_halts(
        self, scope: str, target: str | None, *, actor: str, now: float
    ) -> list[Halt]:
        released: list[Halt] = []
        with self._lock:
            for i, h in enumerate(self._halts):
                if h.active and h.scope == scope and h.target == target:
                    self._halts[i] = dataclasses.replace(h, released_by=actor, released_at=now)
                    released.append(self._halts[i])
        if released:
            self._wakeups.signal()
        return released

    def list_halts(self, *, active_only: bool = True) -> list[Halt]:
        with self._lock:
            return [h for h in self._halts if h.active or not active_only]

    def circuits(self) -> list[CircuitState]:
        with self._lock:
            return sorted(self._circuits.values(), key=lambda c: c.tool)

    def record_tool_failure(
        self, tool: str, *, now: float, threshold: int, cooldown: float
    ) -> CircuitState:
        with self._lock:
            old = self._circuits.get(tool)
            failures = (old.failures if old else 0) + 1
            opens = failures >= threshold
            state = CircuitState(
                tool=tool,
                failures=failures,
                opened_at=now if opens else (old.opened_at if old else None),
                open_until=now + cooldown if opens else (old.open_until if old else None),
                updated_at=now,
            )
            self._circuits[tool] = state
            return state

    def record_tool_success(self, tool: str, *, now: float) -> None:
        with self._lock:
            old = self._circuits.get(tool)
            if old is not None and (old.failures or old.open_until is not None):
                self._circuits[tool] = dataclasses.replace(
                    old, failures=0, open_until=None, updated_at=now
                )

    def take_rate_token(self, key: str, *, now: float, limit: int, interval: float) -> float | None:
        window_start = now - (now % interval)
        with self._lock:
            start, calls = self._rates.get(key, (window_start, 0))
            if start != window_start:
                calls = 0
            if calls >= limit:
                return window_start + interval
            self._rates[key] = (window_start, calls + 1)
            return None
