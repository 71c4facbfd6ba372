"""The store protocol: everything handrail keeps, in domain words.

A store holds two things per task:

- the **journal** (``events``): append-only, the truth;
- the **task row**: a projection of the journal (status) plus scheduling facts that are not
  history (when it may run next, which worker holds its lease, the fencing epoch, a pending
  cancel request). It is rewritten in the same transaction as the events it follows.

Many workers share one store. A worker *claims* a runnable task and gets a :class:`Lease`
with a fencing ``epoch``; every write it makes names that lease, and the store refuses it
(``LeaseLost``) once another claim bumped the epoch. Operators (cancel, resume, resolve an
intervention) write only to tasks no live lease holds, conditioned on the journal's last
sequence number (``StaleWriteError`` if it moved).

Durable time: a task's ``run_at`` is its next due time (a timer, a deadline, a back-off). A
task with ``run_at`` NULL waits for a human; ``claim_task`` takes tasks whose ``run_at`` has
come and whose lease is free or expired.

Wake-ups: a write that makes a task runnable for any worker (a new task, an operator's
write with a due time, a released halt, a cancel request, a task handed back) signals the
store's :class:`Subscription` holders, in any process, once it is committed. A signal is a
hint to claim now, never the truth: a lost one costs an idle worker its poll interval.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from handrail.journal import Event, TaskStatus

if TYPE_CHECKING:
    from handrail.audit.log import AuditLog
    from handrail.audit.record import AuditDraft
    from handrail.notify.outbox import NoticeOutbox


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()
"""Marks an argument that leaves a column as it is."""


@dataclass(frozen=True, slots=True)
class Lease:
    """A worker's right to drive one task, until another claim bumps ``epoch``.

    ``token``: a random value a store may give each claim, and check with the epoch, where a
    claim can be lost while its holder lives on (PostgreSQL commits a claim without waiting
    for its flush: a server crash may forget it, and the next claim may then repeat its
    epoch, even to the same worker; the token still differs). ``None`` elsewhere."""

    task_id: str
    worker_id: str
    epoch: int
    token: str | None = None


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """The task row: status projection and scheduling facts."""

    task_id: str
    workflow: str
    queue: str
    status: TaskStatus
    created_at: float
    updated_at: float
    run_at: float | None
    lease_owner: str | None
    lease_expires_at: float | None
    epoch: int
    cancel_requested_by: str | None
    initiator: str | None
    max_execution_seconds: float | None

    def leased(self, now: float) -> bool:
        """A live lease holds the task."""
        return (
            self.lease_owner is not None
            and self.lease_expires_at is not None
            and self.lease_expires_at > now
        )


@dataclass(frozen=True, slots=True)
class NewTask:
    """What creating a task needs; its ``task_created`` event is written with it."""

    task_id: str
    workflow: str
    queue: str
    created_at: float
    run_at: float | None
    initiator: str | None
    max_execution_seconds: float | None
    event: Event


@dataclass(frozen=True, slots=True)
class Halt:
    """An operator's stop button: ``scope`` is ``task`` (target: a task id), ``tool``
    (target: a tool name) or ``all``. Active until released."""

    halt_id: str
    scope: str
    target: str | None
    halted_by: str
    reason: str | None
    created_at: float
    released_by: str | None = None
    released_at: float | None = None

    @property
    def active(self) -> bool:
        return self.released_at is None

    def covers(self, task_id: str, tool: str | None) -> bool:
        """Whether this halt stops ``task_id`` before a call of ``tool``."""
        return self.active and (
            self.scope == "all"
            or (self.scope == "task" and self.target == task_id)
            or (self.scope == "tool" and tool is not None and self.target == tool)
        )


@dataclass(frozen=True, slots=True)
class CircuitState:
    """A tool's circuit breaker, shared by every worker: consecutive transient failures,
    and until when the circuit is open (calls wait until then)."""

    tool: str
    failures: int
    opened_at: float | None
    open_until: float | None
    updated_at: float

    def open(self, now: float) -> bool:
        return self.open_until is not None and self.open_until > now


@dataclass(frozen=True, slots=True)
class Claim:
    """A claimed task: its row, the lease, and its whole journal (the claim event last).

    ``next_due``: when to claim again, as :meth:`Store.next_due` would say right after this
    claim (not after now: at once; ``None``: no task is scheduled). A store that does not
    tell says ``0.0``: at once. A worker that has just handed a claimed task to a thread
    waits until then (or a wake-up) instead of claiming again at once, which would compete
    with that task for the CPU while it replays and journals its next step."""

    task: TaskRecord
    lease: Lease
    events: list[Event]
    next_due: float | None = 0.0


class Subscription(Protocol):
    """A listener for a store's wake-up signals. One thread waits at a time; :meth:`close`
    may be called from any thread and ends a wait in progress."""

    def wait(self, timeout: float) -> bool:
        """Block until a signal arrives or ``timeout`` seconds pass. ``True`` if a signal
        arrived since the previous wait (signals in between are not lost, and many count as
        one), ``False`` on timeout or once closed."""

    def close(self) -> None:
        """Stop listening and release what the subscription holds. Idempotent."""


class LocalWakeups:
    """Wake-up signals within one process, for stores that live in one process (and as
    the fallback of those that cannot signal other processes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: set[_LocalSubscription] = set()

    def subscribe(self) -> Subscription:
        subscription = _LocalSubscription(self)
        with self._lock:
            self._subscribers.add(subscription)
        return subscription

    def signal(self) -> None:
        """Wake every subscriber."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription.ring()

    def _drop(self, subscription: _LocalSubscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)


class _LocalSubscription:
    def __init__(self, wakeups: LocalWakeups):
        self._wakeups = wakeups
        self._event = threading.Event()
        self._closed = False

    def ring(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        if self._closed:
            return False
        if not self._event.wait(max(0.0, timeout)):
            return False
        self._event.clear()  # a signal set after the wait returned counts as this one
        return not self._closed

    def close(self) -> None:
        self._closed = True
        self._wakeups._drop(self)
        self._event.set()  # ends a wait in progress


class Store(Protocol):
    """Where tasks and their journals live. Implementations: memory, SQLite, PostgreSQL."""

    def create_task(self, task: NewTask) -> None:
        """Insert the task row and its ``task_created`` event (seq 0). ``TaskExistsError``
        if the id is taken."""

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
        """Take the runnable task due first (or ``task_id`` if it is runnable): bump its
        epoch, lease it to ``worker_id``, append a ``task_claimed`` event and return it with
        its journal. ``None`` if nothing is runnable."""

    def renew_lease(self, lease: Lease, *, now: float, lease_seconds: float) -> bool:
        """Extend a lease still held; ``False`` if it was lost."""

    def release_worker(self, worker_id: str) -> int:
        """Expire every lease ``worker_id`` holds (a restarted worker with a fixed identity
        takes its tasks back at once). Returns how many."""

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
        """Append ``events`` atomically, fenced by ``lease``; optionally set the status, the
        next due time, and give up the lease. Raises ``LeaseLost`` if the epoch moved. With
        ``boundary`` (the write opens a step), raises ``CancelRequested`` if an operator
        asked to cancel and ``Halted`` if an active halt covers everything, the task or the
        tool of a ``step_started``/``step_retried`` event, writing nothing. ``audit`` drafts
        are written in the same transaction: sealed into the audit log right away (in
        memory), or kept as drafts that the log seals before anyone reads or sequences
        them (SQLite, PostgreSQL)."""

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
        """An operator's write to a task no live lease holds, whose journal ends at
        ``expect_seq``; ``StaleWriteError`` otherwise. It bumps the epoch, so a worker whose
        lease merely expired can write no more. ``audit`` drafts go in the same transaction,
        as in :meth:`append_events`."""

    def audit_log(self) -> AuditLog:
        """The audit log in this store's database (opened on first use, closed with the
        store): records, checkpoints, proofs, payload keys."""

    def notice_outbox(self) -> NoticeOutbox:
        """The notifications waiting for their notifiers in this store's database (see
        :mod:`handrail.notify.outbox`)."""

    def request_cancel(self, task_id: str, actor: str, *, now: float) -> TaskRecord:
        """Flag the task for cancellation (the lease holder finalizes it at its next step
        boundary); returns the row as it is after the flag was set."""

    def add_halt(self, halt: Halt) -> None:
        """Record an active halt."""

    def release_halts(
        self, scope: str, target: str | None, *, actor: str, now: float
    ) -> list[Halt]:
        """Release the active halts of ``scope``/``target``; returns them as released."""

    def list_halts(self, *, active_only: bool = True) -> list[Halt]:
        """Halts, oldest first."""

    def circuits(self) -> list[CircuitState]:
        """Every tool's circuit breaker state."""

    def record_tool_failure(
        self, tool: str, *, now: float, threshold: int, cooldown: float
    ) -> CircuitState:
        """Count a transient failure of ``tool``; open its circuit for ``cooldown`` seconds
        once ``threshold`` consecutive failures are reached."""

    def record_tool_success(self, tool: str, *, now: float) -> None:
        """A call of ``tool`` succeeded: close its circuit, reset the count."""

    def take_rate_token(self, key: str, *, now: float, limit: int, interval: float) -> float | None:
        """Count one call against ``key``'s fixed window of ``interval`` seconds; ``None`` if
        it is within ``limit``, else when the next window opens (nothing is counted)."""

    def load_events(self, task_id: str) -> list[Event]:
        """The task's journal in order; empty if the task does not exist."""

    def named_lock(self, name: str) -> AbstractContextManager[None]:
        """Hold ``name``'s lock (wait for it) for the ``with`` block: one holder at a time
        among every process and thread using this store's database. For work that reads
        and then writes across tasks (flood control's cap). Released if the holder dies."""

    def last_seqs(self, statuses: Sequence[TaskStatus]) -> dict[str, int]:
        """Every task in one of ``statuses``, with the sequence number of its journal's
        last event, in one read: what tells a cache of folded journals which ones are
        there and which moved on."""

    def get_task(self, task_id: str) -> TaskRecord | None:
        """The task row, or ``None``."""

    def read_task(self, task_id: str) -> tuple[TaskRecord, list[Event]] | None:
        """The task row and its journal, read together (one snapshot); ``None`` if the
        task does not exist."""

    def list_tasks(
        self,
        *,
        statuses: Sequence[TaskStatus] | None = None,
        workflow: str | None = None,
        queue: str | None = None,
        limit: int = 100,
    ) -> list[TaskRecord]:
        """Task rows, newest first."""

    def next_due(
        self,
        *,
        now: float,
        queues: Sequence[str] | None = None,
        workflows: Sequence[str] | None = None,
    ) -> float | None:
        """The earliest time a task in ``queues`` (of ``workflows``) becomes claimable
        (``now`` or earlier if one is claimable already); ``None`` if none is scheduled."""

    def subscribe(self) -> Subscription:
        """Listen for wake-up signals: after ``create_task``, after ``append_unleased`` or
        ``append_events`` (with ``release``) that set a due time, after ``release_halts``
        released something and after ``request_cancel``, from any store on the same
        backing. The caller closes the subscription."""

    def close(self) -> None:
        """Release connections. The store cannot be used afterwards."""
