"""The audit log in the SQLite store's file (tables ``handrail_audit_*``, migrations 0003
and 0004).

:func:`insert_audit_drafts` writes a step's records, as drafts, inside the step's
transaction (the store's group commit): one row in ``handrail_audit_drafts``, no index,
no crypto, so the audit adds little to the one transaction a step waits for.
:class:`SQLiteAuditLog` opens connections of its own to the same file (WAL: readers never
block the writer). Before it reads records, counts what waits or sequences, it seals the
drafts (:meth:`SQLiteAuditLog.seal_drafts`: payloads encrypted under their data keys,
commitments, leaf bodies) into ``handrail_audit_records`` and deletes them, in one
transaction; the sequencer, a background job of every worker, does so every round. The
sequencer takes SQLite's write lock with ``BEGIN IMMEDIATE``, so one sequences at a time
across every process on the file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from handrail.audit.checkpoint import SigningKey, VerifyingKey, parse_checkpoint
from handrail.audit.log import (
    AuditLog,
    AuditLogError,
    Backlog,
    OutboxItem,
    SealFirstKeys,
    SignedCheckpoint,
    export_bundle,
    plan_batch,
    seal_in_batches,
    signed_from_row,
)
from handrail.audit.nodes import (
    NodeKey,
    decode_frontier,
    encode_frontier,
)
from handrail.audit.payloads import KeyStore, PayloadVault, SQLiteKeyStore
from handrail.audit.record import AuditDraft, AuditRow, StoredRecord, draft_values, leaf_bytes
from handrail.audit.stored_proofs import StoredTreeProofs
from handrail.clock import Clock, SystemClock
from handrail.errors import StoreError
from handrail.store._sql import load_queries

__all__ = ["Committer", "SQLiteAuditLog", "insert_audit_drafts", "insert_audit_records"]

T = TypeVar("T")
Committer = Callable[[Callable[[sqlite3.Connection], Any]], Any]
"""Runs a function in a write transaction and returns its result (the store's
``GroupCommitter.run``)."""
_Q = load_queries("handrail.store.sqlite", "audit.sql")
KEY_TABLE_PREFIX = "handrail_audit_"


def _params(row: AuditRow) -> tuple[Any, ...]:
    return (
        row.call_id,
        row.task_id,
        row.kind,
        row.created_at,
        row.compliance_json,
        row.technical_json,
        row.leaf_body,
    )


def insert_audit_records(conn: sqlite3.Connection, rows: Sequence[AuditRow]) -> int:
    """Insert ``rows`` in the transaction ``conn`` holds (nothing is committed here);
    returns how many were new (a ``call_id`` already logged is skipped). Build the rows
    before the transaction: sealing a payload may write a data key."""
    if not rows:
        return 0
    written: int = conn.executemany(_Q["insert_record"], [_params(r) for r in rows]).rowcount
    return written


def insert_audit_drafts(conn: sqlite3.Connection, drafts: Sequence[AuditDraft]) -> None:
    """Insert ``drafts`` in the transaction ``conn`` holds (nothing is committed here)."""
    conn.executemany(_Q["insert_draft"], [draft_values(d) for d in drafts])


def _record(r: Sequence[Any]) -> StoredRecord:
    return StoredRecord(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], None if r[9] is None else bytes(r[9])
    )


class SQLiteAuditLog(StoredTreeProofs):
    """An :class:`~handrail.audit.log.AuditLog` over the SQLite store at ``path``.

    The schema comes from the store's migrations: if they were not applied yet, opening
    the log applies them (by opening the store once). ``keys`` defaults to a key store in
    the same file (tables ``handrail_audit_data_keys`` / ``_key_tombstones``).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock | None = None,
        timeout: float = 60.0,
        keys: KeyStore | None = None,
        commit: Committer | None = None,
    ) -> None:
        self.path = str(path)
        self._commit = commit
        self._clock = clock or SystemClock()
        self._timeout = timeout
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._closed = False
        try:
            if not self._run(_has_schema):
                from handrail.store.sqlite import SQLiteStore

                SQLiteStore(self.path, timeout=timeout).close()
            self._own_keys = keys is None
            self._keys: KeyStore = keys or SQLiteKeyStore(
                self.path,
                clock=self._clock,
                timeout=timeout,
                table_prefix=KEY_TABLE_PREFIX,
                commit=commit,
            )
        except BaseException:
            self.close()
            raise
        self._vault = PayloadVault(self._keys)
        self._sealing_keys = SealFirstKeys(self._keys, self.seal_drafts)

    @property
    def keys(self) -> KeyStore:
        """The data keys; destroying one seals the waiting drafts first, so a record
        written before an erasure is erased like any other (a tombstone, not withheld)."""
        return self._sealing_keys

    @property
    def vault(self) -> PayloadVault:
        return self._vault

    # -- connections ---------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StoreError("the audit log is closed")
            conn = sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return fn(self._conn())
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite audit log: {exc}") from exc

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a ``BEGIN IMMEDIATE`` transaction (the file's write lock): the
        store's group commit when the store opened this log (it then shares the store's
        commits and never waits on the store's connection for the lock), else one of its
        own."""
        if self._commit is not None:
            result: T = self._commit(fn)
            return result

        def op(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return self._run(op)

    def close(self) -> None:
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        if getattr(self, "_own_keys", False) and isinstance(self._keys, SQLiteKeyStore):
            self._keys.close()

    def __enter__(self) -> SQLiteAuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes --------------------------------------------------------------------------

    def append(self, rows: Sequence[AuditRow]) -> int:
        self.seal_drafts()  # records keep the order their steps committed in
        return self._write(lambda conn: insert_audit_records(conn, rows))

    def seal_drafts(self) -> int:
        """Seal the drafts the step transactions wrote (see
        :func:`~handrail.audit.log.seal_in_batches`). A draft is deleted by its id *and*
        call id: SQLite may give a freed id to a later draft, which must stay."""

        def read(limit: int) -> list[tuple[int, AuditDraft]]:
            rows = self._run(lambda c: c.execute(_Q["drafts"], (limit,)).fetchall())
            return [(r[0], AuditDraft(*r[1:])) for r in rows]

        def write(records: Sequence[AuditRow], done: Sequence[tuple[int, str]]) -> None:
            self._write(partial(_store_sealed, records=records, done=done))

        return seal_in_batches(read, write, self._vault)

    def pending(self) -> int:
        """Records (and drafts) that wait for the sequencer."""
        count: int = self._run(lambda c: c.execute(_Q["pending_count"]).fetchone()[0])
        return count

    def sequence(
        self,
        signing_key: SigningKey,
        origin: str,
        *,
        max_batch: int = 1000,
        sinks: Sequence[str] = (),
        now: float | None = None,
    ) -> SignedCheckpoint | None:
        at = self._clock.now() if now is None else now
        self.seal_drafts()

        def op(conn: sqlite3.Connection) -> SignedCheckpoint | None:
            pending = [(r[0], r[1]) for r in conn.execute(_Q["pending_batch"], (max_batch,))]
            if not pending:
                return None
            row = conn.execute(_Q["latest_state"]).fetchone()
            latest = None
            if row is not None:
                size = int(row[0])
                latest = (
                    size,
                    decode_frontier(size, bytes(row[1])),
                    parse_checkpoint(row[2]).origin,
                )
            batch = plan_batch(latest, pending, signing_key, origin, at)
            conn.executemany(_Q["insert_leaf"], batch.leaves)
            conn.executemany(_Q["insert_node"], batch.nodes)
            conn.executemany(_Q["dequeue"], [(record_id,) for record_id, _ in pending])
            signed = batch.signed
            conn.execute(
                _Q["insert_checkpoint"],
                (signed.size, signed.root_hash, signed.note, encode_frontier(batch.frontier), at),
            )
            conn.executemany(
                _Q["enqueue_outbox"],
                [(sink, rid, index, at) for sink in sinks for index, rid, _ in batch.leaves],
            )
            return signed

        return self._write(op)

    # -- reads ---------------------------------------------------------------------------

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        row = self._run(lambda c: c.execute(_Q["latest_checkpoint"]).fetchone())
        return None if row is None else signed_from_row(row[0], row[1])

    def checkpoints(self, *, up_to: int | None = None) -> list[SignedCheckpoint]:
        rows = self._run(lambda c: c.execute(_Q["checkpoints"], {"up_to": up_to}).fetchall())
        return [signed_from_row(note, at) for note, at in rows]

    def records(
        self,
        *,
        task_id: str | None = None,
        kind: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after_id: int | None = None,
        limit: int = 100,
    ) -> list[StoredRecord]:
        params = {
            "task_id": task_id,
            "kind": kind,
            "since": since,
            "until": until,
            "after_id": after_id or 0,
            "limit": limit,
        }
        self.seal_drafts()
        rows = self._run(lambda c: c.execute(_Q["records"], params).fetchall())
        return [_record(r) for r in rows]

    def record(self, call_id: str) -> StoredRecord | None:
        self.seal_drafts()
        row = self._run(lambda c: c.execute(_Q["record"], (call_id,)).fetchone())
        return None if row is None else _record(row)

    def leaves(self, start: int, end: int) -> list[bytes]:
        rows = self._run(lambda c: c.execute(_Q["leaves"], (start, end)).fetchall())
        return [leaf_bytes(body, index) for index, body in rows]

    def _nodes(self, keys: set[NodeKey]) -> dict[NodeKey, bytes]:
        leaves = sorted(index for level, index in keys if level == 0)
        inner = sorted([level, index] for level, index in keys if level > 0)

        def fetch(conn: sqlite3.Connection) -> dict[NodeKey, bytes]:
            found: dict[NodeKey, bytes] = {}
            for index, digest in conn.execute(_Q["leaf_hashes"], (json.dumps(leaves),)):
                found[(0, index)] = bytes(digest)
            for level, index, digest in conn.execute(_Q["node_hashes"], (json.dumps(inner),)):
                found[(level, index)] = bytes(digest)
            return found

        found = self._run(fetch)
        if len(found) != len(keys):
            raise AuditLogError(
                f"the stored tree lacks nodes {sorted(keys - found.keys())[:5]}: the audit "
                "tables were altered or are incomplete"
            )
        return found

    def export_bundle(self, stream: BinaryIO, key: VerifyingKey, *, size: int | None = None) -> int:
        return export_bundle(self, stream, key, size=size)

    # -- outbox --------------------------------------------------------------------------

    def due(self, sink: str, *, now: float, limit: int = 100) -> list[OutboxItem]:
        rows = self._run(lambda c: c.execute(_Q["due"], (sink, limit)).fetchall())
        if not rows or rows[0][11] > now:
            return []
        return [OutboxItem(_record(r), r[10], r[11], r[12]) for r in rows]

    def delivered(self, sink: str, record_ids: Sequence[int], *, now: float) -> None:
        self._write(
            lambda c: c.executemany(_Q["delivered"], [(now, sink, rid) for rid in record_ids])
        )

    def failed(self, sink: str, record_id: int, *, next_at: float, error: str) -> None:
        self._write(lambda c: c.execute(_Q["failed"], (next_at, error, sink, record_id)))

    def sinks(self) -> list[str]:
        return self._run(lambda conn: [r[0] for r in conn.execute(_Q["sinks"])])

    def backlog(self, sink: str) -> Backlog:
        def read(conn: sqlite3.Connection) -> Backlog:
            pending, delivered = conn.execute(_Q["backlog_counts"], (sink,)).fetchone()
            head = conn.execute(_Q["backlog_head"], (sink,)).fetchone()
            if head is None:
                return Backlog(sink, pending, delivered)
            return Backlog(sink, pending, delivered, *head)

        return self._run(read)


def _store_sealed(
    conn: sqlite3.Connection, *, records: Sequence[AuditRow], done: Sequence[tuple[int, str]]
) -> None:
    insert_audit_records(conn, records)
    conn.executemany(_Q["delete_draft"], done)


def _has_schema(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'handrail_audit_records'"
    ).fetchone()
    return row is not None


if TYPE_CHECKING:  # the backend implements the protocol (checked by mypy, never run)
    _CONFORMS: AuditLog = SQLiteAuditLog("")
