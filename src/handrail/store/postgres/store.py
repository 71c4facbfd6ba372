"""PostgresStore: tasks and journals in PostgreSQL, for many workers on many machines.

Every store operation is one transaction on a connection borrowed from a pool. Most are a
single statement, sent in autocommit mode: the server runs it as a transaction of its own
and commits it (durably, as ``synchronous_commit`` says) before it answers, one round trip
instead of three (``BEGIN``, the statement, ``COMMIT``); a statement is atomic, so such a
write is too. Workers claim with ``FOR UPDATE SKIP LOCKED`` (claimers never queue behind
each other), and every leased write locks the task row before checking its fencing epoch,
so a write and a claim of the same task are serialized: either the claim skips the row, or
the write sees the new epoch and raises ``LeaseLost``. Migrations are applied when the store
opens, under an advisory lock, so many processes may open the same database at once. Writes
that make a task runnable NOTIFY the subscribers on commit (see ``_wake``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from handrail.errors import (
    CancelRequested,
    ConfigurationError,
    Halted,
    LeaseLost,
    StaleWriteError,
    StoreError,
    TaskExistsError,
)
from handrail.journal import OPENS_STEP, Event, EventKind, TaskStatus
from handrail.store._locks import LocalLocks
from handrail.store._rows import (
    EVENT_COLUMNS,
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
    NewTask,
    Subscription,
    TaskRecord,
    _Unset,
)

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg_pool import ConnectionPool, PoolClosed
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigurationError(
        "the PostgreSQL store needs psycopg 3 and psycopg-pool: pip install 'handrail[postgres]'"
    ) from exc

from handrail.store.postgres._wake import ListenSubscription

if TYPE_CHECKING:
    from handrail.audit.record import AuditDraft
    from handrail.store.postgres.audit import PostgresAuditLog
    from handrail.store.postgres.notices import PostgresNoticeOutbox


__all__ = ["PostgresStore"]

T = TypeVar("T")
_Conn = psycopg.Connection[tuple[Any, ...]]

_PACKAGE = "handrail.store.postgres"
_Q = load_queries(_PACKAGE)
# claim_task for one named task: its own candidate, then the rest of claim_task.
_Q["claim_task_id"] = (
    _Q["claim_candidate_id"] + "\n" + _Q["claim_task"][_Q["claim_task"].index("), claimed AS (") :]
)
_CLAIMED = EventKind.TASK_CLAIMED
_EVENT_COLUMNS = tuple(c.strip() for c in EVENT_COLUMNS.split(","))
_MIGRATION_LOCK = 0x68616E6472_0001  # "handr" + 1: the advisory lock migrations run under
_CLAIM_ATTEMPTS = 3  # a claim whose snapshot missed a concurrent append is made again


class PostgresStore:
    """Tasks and journals in one PostgreSQL database (tables ``handrail_*``).

    ``url`` is a libpq connection URL or string (``postgresql://user:pass@host/db``).
    The pool holds ``min_size`` to ``max_size`` connections; an operation waits up to
    ``timeout`` seconds for a free one. Opening waits up to ``connect_timeout`` seconds
    for the server.
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
    ):
        self.url = url
        self._audit_log: PostgresAuditLog | None = None
        self._notice_outbox: PostgresNoticeOutbox | None = None
        self._where = _redact(url)
        self._connect_timeout = connect_timeout
        self._pool: ConnectionPool[_Conn] | None = None
        self._named_locks = LocalLocks()
        try:
            # Migrate on a connection of our own first: a bad URL or a server that is not
            # there fails fast with the driver's own reason, not a pool timeout.
            with psycopg.connect(url, connect_timeout=max(1, round(connect_timeout))) as conn:
                _migrate(conn)
            pool: ConnectionPool[_Conn] = ConnectionPool(
                url,
                min_size=min_size,
                max_size=max_size,
                timeout=timeout,
                open=True,
                name="handrail",
                # One statement, one transaction: see _write. _run opens explicit ones.
                kwargs={"autocommit": True},
            )
            try:
                pool.wait(timeout=connect_timeout)
            except BaseException:
                pool.close()
                raise
            self._pool = pool
        except psycopg.Error as exc:
            raise StoreError(f"cannot open PostgreSQL store at {self._where}: {exc}") from exc

    # -- plumbing ----------------------------------------------------------------------

    def _run(self, fn: Callable[[_Conn], T]) -> T:
        """Run ``fn`` in one transaction (``BEGIN`` ... ``COMMIT``): committed if it returns,
        rolled back if it raises. For an operation of several statements."""
        pool = self._pool
        if pool is None:
            raise StoreError("the store is closed")
        try:
            with pool.connection() as conn, conn.transaction():
                return fn(conn)
        except PoolClosed:
            raise StoreError("the store is closed") from None
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc
        except UnicodeEncodeError as exc:  # a str the driver cannot send (a lone surrogate)
            raise StoreError(f"PostgreSQL: cannot encode a value: {exc}") from exc

    def _write(self, fn: Callable[[_Conn], T]) -> T:
        """Run ``fn``, which sends exactly one statement, as a transaction of its own
        (autocommit): the server commits the statement before it answers, so it is durable
        when ``fn`` gets its result, in one round trip. A statement is atomic: all of it is
        written or none. ``fn`` may raise after its statement only if that wrote nothing
        (the statement's own conditions refused the write)."""
        return self._read(fn)

    def _read(self, fn: Callable[[_Conn], T]) -> T:
        """Run ``fn``'s statements without an explicit transaction (autocommit): one round
        trip each instead of BEGIN, the statement and COMMIT."""
        pool = self._pool
        if pool is None:
            raise StoreError("the store is closed")
        try:
            with pool.connection() as conn:
                return fn(conn)
        except PoolClosed:
            raise StoreError("the store is closed") from None
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc
        except UnicodeEncodeError as exc:
            raise StoreError(f"PostgreSQL: cannot encode a value: {exc}") from exc

    def audit_log(self) -> PostgresAuditLog:
        if self._audit_log is None:
            from handrail.store.postgres.audit import PostgresAuditLog

            self._audit_log = PostgresAuditLog(self.url)
        return self._audit_log

    def notice_outbox(self) -> PostgresNoticeOutbox:
        if self._pool is None:
            raise StoreError("the store is closed")
        if self._notice_outbox is None:
            from handrail.store.postgres.notices import PostgresNoticeOutbox

            self._notice_outbox = PostgresNoticeOutbox(self._write)
        return self._notice_outbox

    def close(self) -> None:
        if self._notice_outbox is not None:
            self._notice_outbox.close()
            self._notice_outbox = None
        if self._audit_log is not None:
            self._audit_log.close()
            self._audit_log = None
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def subscribe(self) -> Subscription:
        if self._pool is None:
            raise StoreError("the store is closed")
        try:
            return ListenSubscription(
                self.url, where=self._where, connect_timeout=self._connect_timeout
            )
        except psycopg.Error as exc:
            raise StoreError(f"cannot listen for wake-ups on {self._where}: {exc}") from exc

    # -- writes ------------------------------------------------------------------------

    def create_task(self, task: NewTask) -> None:
        params = {
            "task_id": task.task_id,
            "workflow": task.workflow,
            "queue": task.queue,
            "created_at": task.created_at,
            "run_at": task.run_at,
            "initiator": task.initiator,
            "max_execution_seconds": task.max_execution_seconds,
            "events": _events_json([task.event]),
        }

        def op(conn: _Conn) -> None:
            if conn.execute(_Q["create_task"], params).rowcount == 0:
                raise TaskExistsError(task.task_id)

        self._write(op)

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
        token = secrets.token_hex(8)  # this claim's own: see Lease and queries.sql
        params = {
            "worker": worker_id,
            "token": token,
            "expires": now + lease_seconds,
            "now": now,
            "queues": None if queues is None else list(queues),
            "workflows": None if workflows is None else list(workflows),
            "task_id": task_id,
        }
        query = _Q["claim_task"] if task_id is None else _Q["claim_task_id"]

        def op(conn: _Conn) -> Claim | None:
            # claims, journals the claim and returns the row with its journal
            rows = conn.execute(query, params).fetchall()
            if not rows:
                return None
            task = row_to_task(rows[0][:13])
            events = [row_to_event(r[13:26]) for r in rows]
            lease = Lease(task.task_id, worker_id, task.epoch, token)
            if task_id is not None:  # a claim by id is not asked when to claim again
                return Claim(task, lease, events)
            return Claim(task, lease, events, rows[0][27])

        for _ in range(_CLAIM_ATTEMPTS - 1):
            try:
                return self._write(op)
            except StoreError as exc:
                # The journal moved on between the statement's snapshot and its lock on the
                # row (see queries.sql): nothing was written; claim again.
                if not isinstance(exc.__cause__, pg_errors.UniqueViolation):
                    raise
        return self._write(op)

    def renew_lease(self, lease: Lease, *, now: float, lease_seconds: float) -> bool:
        params = {
            "expires": now + lease_seconds,
            "task_id": lease.task_id,
            "epoch": lease.epoch,
            "worker": lease.worker_id,
            "token": lease.token,
        }
        return self._write(lambda conn: conn.execute(_Q["renew_lease"], params).rowcount == 1)

    def release_worker(self, worker_id: str) -> int:
        return self._write(
            lambda conn: conn.execute(_Q["release_worker"], {"worker": worker_id}).rowcount
        )

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
        update = task_update_params(lease.task_id, now, status, run_at, release)
        params = {
            "task_id": lease.task_id,
            "epoch": lease.epoch,
            "worker": lease.worker_id,
            "token": lease.token,
            "boundary": boundary,
            "intent_tools": sorted(
                {e.step_name for e in events if e.kind in OPENS_STEP and e.step_name}
            ),
            "update": update is not None,
            "wake": release and run_at is not None and run_at is not UNSET,
            **(update or _NO_UPDATE),
            "events": _events_json(events),
        }

        query = _Q["append_events"]
        if audit:
            query = _audited(query, "EXISTS (SELECT FROM allowed)")
            params.update(_audit_params(audit))

        def op(conn: _Conn) -> None:
            try:
                fence = conn.execute(query, params).fetchone()
            except pg_errors.UniqueViolation:
                raise _seq_taken(lease.task_id) from None
            if (
                fence is None
                or fence[0] != lease.epoch
                or fence[1] != lease.worker_id
                or fence[8] != lease.token
            ):
                raise LeaseLost(lease.task_id)
            if boundary and fence[2] is not None:
                raise CancelRequested(lease.task_id)
            if fence[3] is not None:
                raise Halted(lease.task_id, fence[3], fence[4], fence[5], fence[6])

        self._write(op)  # a refused write wrote nothing (the statement's own conditions)

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
        update = task_update_params(task_id, now, status, run_at, False)
        params = {
            **(update or _NO_UPDATE),
            "task_id": task_id,
            "expect_seq": expect_seq,
            "now": now,
            "update": update is not None,
            "wake": run_at is not None and run_at is not UNSET,
            "events": _events_json(events),
        }
        query = _Q["operator_write"]
        if audit:
            query = _audited(query, "EXISTS (SELECT FROM allowed)")
            params.update(_audit_params(audit))

        def op(conn: _Conn) -> None:
            # One statement: checks the lease and the journal's end under the row lock, and
            # writes only if both are as expected (see queries.sql).
            try:
                row = conn.execute(query, params).fetchone()
            except pg_errors.UniqueViolation:
                raise _seq_taken(task_id) from None
            if row is None:
                raise StaleWriteError(task_id, "the task does not exist")
            if row[14]:  # written
                return
            if row_to_task(row[:13]).leased(now):
                raise StaleWriteError(task_id, "a worker holds the task now")
            raise StaleWriteError(task_id, "its journal moved on")

        self._write(op)  # a refused write wrote nothing (the statement's own conditions)

    def request_cancel(self, task_id: str, actor: str, *, now: float) -> TaskRecord:
        params = {"task_id": task_id, "actor": actor, "now": now}

        def op(conn: _Conn) -> TaskRecord:
            row = conn.execute(_Q["request_cancel"], params).fetchone()
            if row is None:
                raise StaleWriteError(task_id, "the task does not exist")
            return row_to_task(row)

        return self._write(op)

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
        self._write(lambda conn: conn.execute(_Q["insert_halt"], params))

    def release_halts(
        self, scope: str, target: str | None, *, actor: str, now: float
    ) -> list[Halt]:
        params = {"scope": scope, "target": target, "actor": actor, "now": now}
        rows = self._write(lambda conn: conn.execute(_Q["release_halts"], params).fetchall())
        return [Halt(*r[:8]) for r in rows]  # r[8]: the wake-up's pg_notify

    def list_halts(self, *, active_only: bool = True) -> list[Halt]:
        params = {"active_only": active_only}
        rows = self._read(lambda conn: conn.execute(_Q["list_halts"], params).fetchall())
        return [Halt(*r) for r in rows]

    def circuits(self) -> list[CircuitState]:
        rows = self._read(lambda conn: conn.execute(_Q["circuits"]).fetchall())
        return [CircuitState(*r) for r in rows]

    def record_tool_failure(
        self, tool: str, *, now: float, threshold: int, cooldown: float
    ) -> CircuitState:
        params = {"tool": tool, "now": now, "threshold": threshold, "cooldown": cooldown}
        row = self._write(lambda conn: conn.execute(_Q["circuit_failure"], params).fetchone())
        assert row is not None
        return CircuitState(*row)

    def record_tool_success(self, tool: str, *, now: float) -> None:
        params = {"tool": tool, "now": now}
        self._write(lambda conn: conn.execute(_Q["circuit_success"], params))

    def take_rate_token(self, key: str, *, now: float, limit: int, interval: float) -> float | None:
        window_start = now - (now % interval)

        def op(conn: _Conn) -> float | None:
            conn.execute(_Q["rate_ensure"], {"key": key, "window_start": window_start})
            row = conn.execute(_Q["rate_window"], {"key": key}).fetchone()
            if row is not None and row[0] == window_start and row[1] >= limit:
                return float(window_start + interval)
            conn.execute(_Q["rate_take"], {"key": key, "window_start": window_start})
            return None

        return self._run(op)

    # -- reads -------------------------------------------------------------------------

    def load_events(self, task_id: str) -> list[Event]:
        rows = self._read(lambda c: c.execute(_Q["load_events"], {"task_id": task_id}).fetchall())
        return [row_to_event(r) for r in rows]

    @contextlib.contextmanager
    def named_lock(self, name: str) -> Iterator[None]:
        # This process's threads one at a time (so at most one of its connections waits),
        # then a session advisory lock, held on one pooled connection for the block; the
        # server drops it if the connection dies.
        pool = self._pool
        if pool is None:
            raise StoreError("the store is closed")
        with self._named_locks.hold(name):
            try:
                with pool.connection() as conn:
                    conn.execute(_Q["advisory_lock"], {"name": name})
                    try:
                        yield
                    finally:
                        conn.execute(_Q["advisory_unlock"], {"name": name})
            except PoolClosed:
                raise StoreError("the store is closed") from None
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL lock {name!r}: {exc}") from exc

    def last_seqs(self, statuses: Sequence[TaskStatus]) -> dict[str, int]:
        params = {"statuses": [s.value for s in statuses]}
        rows = self._read(lambda c: c.execute(_Q["last_seqs"], params).fetchall())
        return {task_id: seq for task_id, seq in rows if seq is not None}

    def read_task(self, task_id: str) -> tuple[TaskRecord, list[Event]] | None:
        rows = self._read(lambda c: c.execute(_Q["read_task"], {"task_id": task_id}).fetchall())
        if not rows:
            return None
        events = [row_to_event(r[13:]) for r in rows if r[13] is not None]
        return row_to_task(rows[0][:13]), events

    def get_task(self, task_id: str) -> TaskRecord | None:
        row = self._read(lambda c: c.execute(_Q["get_task"], {"task_id": task_id}).fetchone())
        return None if row is None else row_to_task(row)

    def list_tasks(
        self,
        *,
        statuses: Sequence[TaskStatus] | None = None,
        workflow: str | None = None,
        queue: str | None = None,
        limit: int = 100,
    ) -> list[TaskRecord]:
        params = {
            "statuses": None if statuses is None else [s.value for s in statuses],
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
        params = {
            "queues": None if queues is None else list(queues),
            "workflows": None if workflows is None else list(workflows),
        }
        row = self._read(lambda c: c.execute(_Q["next_due"], params).fetchone())
        return None if row is None or row[0] is None else float(row[0])


# -- helpers -------------------------------------------------------------------------------

_NO_UPDATE: dict[str, Any] = {
    "now": None,
    "status": None,
    "set_run_at": False,
    "run_at": None,
    "release": False,
}


@functools.cache
def _audited(query: str, where: str | None = None) -> str:
    """``query`` (a statement with CTEs) with the audit records' insert as one more."""
    from handrail.store.postgres.audit import audit_cte

    head, sep, tail = query.partition("\n)\nSELECT ")
    assert sep, "the query must end its CTEs with ')' and a SELECT"
    return f"{head}\n), {audit_cte('audited', where=where)}\nSELECT {tail}"


def _audit_params(drafts: Sequence[AuditDraft]) -> dict[str, str]:
    from handrail.store.postgres.audit import audit_params

    return audit_params(drafts)


def _events_json(events: Sequence[Event]) -> str:
    """Events as the JSON array of objects (a key per column) the inserts read with
    ``json_populate_recordset``. Text columns go as JSON strings, so an event's JSON text
    (inputs, outputs, data) is stored exactly as it came; numbers as ``repr`` writes them,
    which reads back as the same float."""
    return json.dumps(
        [dict(zip(_EVENT_COLUMNS, event_to_row(e), strict=True)) for e in events],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _seq_taken(task_id: str) -> StaleWriteError:
    return StaleWriteError(task_id, "an event with that sequence number exists")


def _migrate(conn: _Conn) -> None:
    """Apply the migrations not yet applied, one process at a time."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS handrail_migrations (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at double precision NOT NULL)"
        )
        done = {r[0] for r in conn.execute("SELECT version FROM handrail_migrations")}
        for migration in load_migrations(_PACKAGE):
            if migration.version in done:
                continue
            conn.execute(migration.sql.encode())  # no parameters: may hold many statements
            conn.execute(
                "INSERT INTO handrail_migrations VALUES (%s, %s, %s)",
                (migration.version, migration.name, time.time()),
            )


def _redact(url: str) -> str:
    """``url`` without its password, for messages."""
    if "://" not in url:
        return "<connection string>"  # key=value form: may hold password=...
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user, _, host = parts.netloc.rpartition("@")
        return urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}"))
    except ValueError:
        return "<unparsable URL>"
