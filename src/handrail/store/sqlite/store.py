"""SQLiteStore: the embedded store on one file.

Safe for many threads (a write connection shared through group commit, a read connection
per thread) and many processes on the same file (SQLite's own locking; WAL lets readers run
beside the writer). Migrations are applied when the store opens. Wake-up signals reach the
other processes of this machine through unix sockets (see ``_wake``).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handrail.errors import (
    CancelRequested,
    Halted,
    LeaseLost,
    StaleWriteError,
    StoreError,
    TaskExistsError,
)
from handrail.journal import OPENS_STEP, Event, EventKind, TaskStatus
from handrail.store._locks import LocalLocks, file_lock, lock_directory
from handrail.store._rows import (
    as_json_list,
    event_to_row,
    row_to_event,
    row_to_task,
    task_update_params,
)
from handrail.store._sql import load_migrations, load_queries
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
from handrail.store.sqlite._group_commit import GroupCommitter
from handrail.store.sqlite._wake import SocketWakeups, wake_directory

if TYPE_CHECKING:
    from handrail.audit.record import AuditDraft
    from handrail.store.sqlite.audit import SQLiteAuditLog
    from handrail.store.sqlite.notices import SQLiteNoticeOutbox


def insert_audit_drafts(conn: sqlite3.Connection, drafts: Sequence[AuditDraft]) -> None:
    from handrail.store.sqlite import audit

    audit.insert_audit_drafts(conn, drafts)


_PACKAGE = "handrail.store.sqlite"
_Q = load_queries(_PACKAGE)
_CLAIMED = EventKind.TASK_CLAIMED


def _translate(exc: BaseException) -> Exception:
    if isinstance(exc, UnicodeError):
        return StoreError(f"SQLite cannot store this text ({exc}); pass valid Unicode")
    return StoreError(f"SQLite: {exc}")


class SQLiteStore:
    """Tasks and journals in one SQLite file."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL", timeout: float = 60.0):
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        self.path = str(path)
        self._audit_log: SQLiteAuditLog | None = None
        self._notice_outbox: SQLiteNoticeOutbox | None = None
        self._synchronous = synchronous
        self._timeout = timeout
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        try:
            self._writer = self._connect()
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store at {self.path}: {exc}") from exc
        self._commit = GroupCommitter(self._writer, _translate)
        directory = wake_directory(self.path)
        # Where this file's wake-up sockets live (None: signals stay in this store object).
        self.wake_dir: Path | None = directory
        self._wakeups: LocalWakeups | SocketWakeups = (
            LocalWakeups() if directory is None else SocketWakeups(directory)
        )
        self._named_locks = LocalLocks()
        self._lock_dir = lock_directory(self.path)

    @contextlib.contextmanager
    def named_lock(self, name: str) -> Iterator[None]:
        # this process's threads one at a time, then a file lock for the other processes
        with self._named_locks.hold(name), contextlib.ExitStack() as stack:
            if self._lock_dir is not None:
                try:
                    stack.enter_context(file_lock(self._lock_dir, name))
                except OSError as exc:
                    where = self._lock_dir
                    raise StoreError(f"cannot take the lock {name!r} in {where}: {exc}") from exc
            yield

    # -- connections -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        # Switching a new file to WAL needs it to itself, and SQLite does not wait for that
        # with its busy timeout: when several processes open a new store at once, retry.
        deadline = time.monotonic() + self._timeout
        pause = 0.005
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.1)
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StoreError("the store is closed")
            conn = self._connect()
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        try:
            return fn(self._reader())
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    def _migrate(self) -> None:
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS handrail_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM handrail_migrations")}
            for migration in load_migrations(_PACKAGE):
                if migration.version in done:
                    continue
                for statement in _split_statements(migration.sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO handrail_migrations VALUES (?, ?, ?)",
                    (migration.version, migration.name, time.time()),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def audit_log(self) -> SQLiteAuditLog:
        with self._readers_lock:
            if self._audit_log is None:
                from handrail.store.sqlite.audit import SQLiteAuditLog

                self._audit_log = SQLiteAuditLog(
                    self.path, timeout=self._timeout, commit=self._commit.run
                )
            return self._audit_log

    def notice_outbox(self) -> SQLiteNoticeOutbox:
        with self._readers_lock:
            if self._closed:
                raise StoreError("the store is closed")
            if self._notice_outbox is None:
                from handrail.store.sqlite.notices import SQLiteNoticeOutbox

                self._notice_outbox = SQLiteNoticeOutbox(self._commit.run, self._read)
            return self._notice_outbox

    def close(self) -> None:
        self._closed = True
        if self._notice_outbox is not None:
            self._notice_outbox.close()
            self._notice_outbox = None
        if self._audit_log is not None:
            self._audit_log.close()
            self._audit_log = None
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        self._writer.close()

    def subscribe(self) -> Subscription:
        return self._wakeups.subscribe()

    # -- writes ------------------------------------------------------------------------

    def create_task(self, task: NewTask) -> None:
        def op(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    _Q["insert_task"],
                    {
                        "task_id": task.task_id,
                        "workflow": task.workflow,
                        "queue": task.queue,
                        "created_at": task.created_at,
                        "run_at": task.run_at,
                        "initiator": task.initiator,
                        "max_execution_seconds": task.max_execution_seconds,
                    },
                )
            except sqlite3.IntegrityError:
                raise TaskExistsError(task.task_id) from None
            conn.execute(_Q["insert_event"], event_to_row(task.event))

        self._commit.run(op)
        self._wakeups.signal()

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
        params = {
            "worker": worker_id,
            "expires": now + lease_seconds,
            "now": now,
            "queues": as_json_list(queues),
            "workflows": as_json_list(workflows),
            "task_id": task_id,
        }

        def op(conn: sqlite3.Connection) -> Claim | None:
            row = conn.execute(_Q["claim_task"], params).fetchone()
            if row is None:
                return None
            task = row_to_task(row)
            rows = conn.execute(_Q["load_events"], (task.task_id,)).fetchall()
            events = [row_to_event(r) for r in rows]
            claimed = Event(
                task_id=task.task_id,
                seq=events[-1].seq + 1 if events else 0,
                kind=_CLAIMED,
                timestamp=now,
                data={"worker": worker_id, "epoch": task.epoch},
            )
            conn.execute(_Q["insert_event"], event_to_row(claimed))
            events.append(claimed)
            return Claim(task, Lease(task.task_id, worker_id, task.epoch), events)

        result: Claim | None = self._commit.run(op)
        return result

    def renew_lease(self, lease: Lease, *, now: float, lease_seconds: float) -> bool:
        params = {
            "expires": now + lease_seconds,
            "task_id": lease.task_id,
            "epoch": lease.epoch,
            "worker": lease.worker_id,
        }
        renewed: bool = self._commit.run(
            lambda conn: conn.execute(_Q["renew_lease"], params).rowcount == 1
        )
        return renewed

    def release_worker(self, worker_id: str) -> int:
        count: int = self._commit.run(
            lambda conn: conn.execute(_Q["release_worker"], {"worker": worker_id}).rowcount
        )
        return count

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
        task_id, epoch, owner = lease.task_id, lease.epoch, lease.worker_id
        rows = [
            event_to_row(e)
            + (
                (task_id, epoch, owner, 1, 1, task_id, e.step_name)
                if boundary and e.kind in OPENS_STEP
                else (task_id, epoch, owner, 0, 0, task_id, None)
            )
            for e in events
        ]
        tools = sorted({e.step_name for e in events if e.kind in OPENS_STEP and e.step_name})
        update = task_update_params(lease.task_id, now, status, run_at, release)

        def op(conn: sqlite3.Connection) -> None:
            if rows:
                try:
                    written = conn.executemany(_Q["insert_event_fenced"], rows).rowcount
                except sqlite3.IntegrityError:
                    raise StaleWriteError(
                        lease.task_id, "an event with that sequence number exists"
                    ) from None
                if written != len(rows):
                    _refuse(conn, lease, boundary, tools)
                    raise StoreError(f"task {lease.task_id}: the journal refused the write")
            else:
                _refuse(conn, lease, boundary, tools)
            if update is not None:
                conn.execute(_Q["update_task"], update)
            if audit:
                insert_audit_drafts(conn, audit)

        self._commit.run(op)
        if release and run_at is not None and run_at is not UNSET:
            self._wakeups.signal()  # handed back for any worker

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
        rows = [event_to_row(e) for e in events]
        update = task_update_params(task_id, now, status, run_at, False)

        def op(conn: sqlite3.Connection) -> None:
            row = conn.execute(_Q["get_task"], (task_id,)).fetchone()
            if row is None:
                raise StaleWriteError(task_id, "the task does not exist")
            if row_to_task(row).leased(now):
                raise StaleWriteError(task_id, "a worker holds the task now")
            last = conn.execute(_Q["next_seq"], (task_id,)).fetchone()[0] - 1
            if last != expect_seq:
                raise StaleWriteError(task_id, "its journal moved on")
            conn.execute(_Q["revoke_lease"], (task_id,))
            try:
                conn.executemany(_Q["insert_event"], rows)
            except sqlite3.IntegrityError:
                raise StaleWriteError(
                    task_id, "an event with that sequence number exists"
                ) from None
            if update is not None:
                conn.execute(_Q["update_task"], update)
            if audit:
                insert_audit_drafts(conn, audit)

        self._commit.run(op)
        if run_at is not None and run_at is not UNSET:
            self._wakeups.signal()

    def request_cancel(self, task_id: str, actor: str, *, now: float) -> TaskRecord:
        params = {"task_id": task_id, "actor": actor, "now": now}

        def op(conn: sqlite3.Connection) -> TaskRecord:
            row = conn.execute(_Q["request_cancel"], params).fetchone()
            if row is None:
                raise StaleWriteError(task_id, "the task does not exist")
            return row_to_task(row)

        record: TaskRecord = self._commit.run(op)
        self._wakeups.signal()
        return record

    # -- operator controls -------------------------------------------------------------

    def add_halt(self, halt: Halt) -> None:
        params = {
            "halt_id": halt.halt_id,
            "scope": halt.scope,
            "target": halt.target,
            "halted_by": halt.halted_by,
            "reason": halt.reason,
            "created_at": halt.created_at,
        }
        self._commit.run(lambda conn: conn.execute(_Q["insert_halt"], params))

    def release_halts(
        self, scope: str, target: str | None, *, actor: str, now: float
    ) -> list[Halt]:
        params = {"scope": scope, "target": target, "actor": actor, "now": now}
        rows = self._commit.run(lambda conn: conn.execute(_Q["release_halts"], params).fetchall())
        if rows:
            self._wakeups.signal()
        return [_row_to_halt(r) for r in rows]

    def list_halts(self, *, active_only: bool = True) -> list[Halt]:
        params = {"active_only": 1 if active_only else 0}
        rows = self._read(lambda c: c.execute(_Q["list_halts"], params).fetchall())
        return [_row_to_halt(r) for r in rows]

    def circuits(self) -> list[CircuitState]:
        rows = self._read(lambda c: c.execute(_Q["circuits"]).fetchall())
        return [CircuitState(*r) for r in rows]

    def record_tool_failure(
        self, tool: str, *, now: float, threshold: int, cooldown: float
    ) -> CircuitState:
        params = {"tool": tool, "now": now, "threshold": threshold, "cooldown": cooldown}
        row = self._commit.run(lambda c: c.execute(_Q["circuit_failure"], params).fetchone())
        return CircuitState(*row)

    def record_tool_success(self, tool: str, *, now: float) -> None:
        params = {"tool": tool, "now": now}
        self._commit.run(lambda c: c.execute(_Q["circuit_success"], params))

    def take_rate_token(self, key: str, *, now: float, limit: int, interval: float) -> float | None:
        window_start = now - (now % interval)

        def op(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(_Q["rate_window"], {"key": key}).fetchone()
            if row is not None and row[0] == window_start and row[1] >= limit:
                return float(window_start + interval)
            conn.execute(_Q["rate_take"], {"key": key, "window_start": window_start})
            return None

        result: float | None = self._commit.run(op)
        return result

    # -- reads -------------------------------------------------------------------------

    def load_events(self, task_id: str) -> list[Event]:
        rows = self._read(lambda c: c.execute(_Q["load_events"], (task_id,)).fetchall())
        return [row_to_event(r) for r in rows]

    def last_seqs(self, statuses: Sequence[TaskStatus]) -> dict[str, int]:
        wanted = json.dumps([s.value for s in statuses])
        rows = self._read(lambda c: c.execute(_Q["last_seqs"], (wanted,)).fetchall())
        return {task_id: seq for task_id, seq in rows if seq is not None}

    def get_task(self, task_id: str) -> TaskRecord | None:
        row = self._read(lambda c: c.execute(_Q["get_task"], (task_id,)).fetchone())
        return None if row is None else row_to_task(row)

    def read_task(self, task_id: str) -> tuple[TaskRecord, list[Event]] | None:
        def read(conn: sqlite3.Connection) -> tuple[TaskRecord, list[Event]] | None:
            conn.execute("BEGIN")  # one snapshot for both reads
            try:
                row = conn.execute(_Q["get_task"], (task_id,)).fetchone()
                if row is None:
                    return None
                rows = conn.execute(_Q["load_events"], (task_id,)).fetchall()
                return row_to_task(row), [row_to_event(r) for r in rows]
            finally:
                conn.execute("COMMIT")

        result: tuple[TaskRecord, list[Event]] | None = self._read(read)
        return result

    def list_tasks(
        self,
        *,
        statuses: Sequence[TaskStatus] | None = None,
        workflow: str | None = None,
        queue: str | None = None,
        limit: int = 100,
    ) -> list[TaskRecord]:
        params = {
            "statuses": as_json_list(None if statuses is None else [s.value for s in statuses]),
            "workflow": workflow,
            "queue": queue,
            "limit": limit,
        }
        rows = self._read(lambda c: c.execute(_Q["list_tasks"], params).fetchall())
        return [row_to_task(r) for r in rows]

    def next_due(
        self,
        *,
        now: float,
        queues: Sequence[str] | None = None,
        workflows: Sequence[str] | None = None,
    ) -> float | None:
        params = {"queues": as_json_list(queues), "workflows": as_json_list(workflows)}
        row = self._read(lambda c: c.execute(_Q["next_due"], params).fetchone())
        return None if row is None or row[0] is None else float(row[0])


def _refuse(
    conn: sqlite3.Connection, lease: Lease, boundary: bool, tools: Sequence[str] = ()
) -> None:
    """Raise why a fenced write may not go on, if it may not."""
    fence = conn.execute(_Q["fence"], (lease.task_id,)).fetchone()
    if fence is None or fence[0] != lease.epoch or fence[1] != lease.worker_id:
        raise LeaseLost(lease.task_id)
    if not boundary:
        return
    if fence[2] is not None:
        raise CancelRequested(lease.task_id)
    row = conn.execute(
        _Q["blocking_halt"], {"task_id": lease.task_id, "tools": json.dumps(list(tools))}
    ).fetchone()
    if row is not None:
        halt = _row_to_halt(row)
        raise Halted(lease.task_id, halt.halt_id, halt.scope, halt.target, halt.halted_by)


def _row_to_halt(r: Sequence[Any]) -> Halt:
    return Halt(*r)


def _split_statements(sql: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    statements: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        current.append(line)
        text = "\n".join(current).strip()
        if text.endswith(";") and sqlite3.complete_statement(text):
            statements.append(text)
            current = []
    rest = "\n".join(current).strip()
    if rest and not all(ln.strip().startswith("--") or not ln.strip() for ln in rest.splitlines()):
        statements.append(rest)
    return statements
