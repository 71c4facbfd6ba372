"""The audit log in the PostgreSQL store's database (tables ``handrail_audit_*``).

:func:`insert_audit_records` writes records inside a transaction the caller holds (the
store's step transaction): one ``INSERT ... SELECT FROM unnest(...)``, and a trigger queues
each new record for the sequencer. Writers never touch a shared row.

Identity values are handed out when a row is inserted, not when it commits, and a rolled
back insert leaves a gap: ids are neither contiguous nor in commit order. So the sequencer
(:meth:`PostgresAuditLog.sequence`, one at a time under ``pg_try_advisory_xact_lock``)
assigns the leaf indexes itself, contiguous, to whatever is queued and committed, in id
order: a record committed late is simply integrated later, at a later index.

:class:`PostgresKeyStore` keeps the data keys of raw payloads in the same database. A
deleted key's bytes stay in the table's pages until ``VACUUM`` reclaims them (and in
WAL archives and backups until they expire): schedule a vacuum after erasures.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
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
from handrail.audit.payloads import (
    KEY_BYTES,
    KeyStore,
    PayloadErased,
    PayloadVault,
    Tombstone,
    check_key_id,
)
from handrail.audit.record import (
    DRAFT_COLUMNS,
    AuditDraft,
    AuditRow,
    StoredRecord,
    draft_values,
    leaf_bytes,
)
from handrail.audit.stored_proofs import StoredTreeProofs
from handrail.clock import Clock, SystemClock
from handrail.errors import ConfigurationError, StoreError
from handrail.store._sql import load_queries

try:
    import psycopg
    from psycopg_pool import ConnectionPool, PoolClosed
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigurationError(
        "the PostgreSQL audit log needs psycopg 3 and psycopg-pool: "
        "pip install 'handrail[postgres]'"
    ) from exc

__all__ = [
    "PostgresAuditLog",
    "PostgresKeyStore",
    "audit_cte",
    "audit_params",
    "insert_audit_records",
]

T = TypeVar("T")
_Conn = psycopg.Connection[tuple[Any, ...]]
_Q = load_queries("handrail.store.postgres", "audit.sql")
SEQUENCER_LOCK = 0x68616E6472_0003
"""The advisory lock a sequencer holds for its transaction ("handr" + 3)."""
_KEY_LOCK = 0x68610004
"""First half of the advisory lock on one data key id (the second is its hash)."""


def _drafts_json(drafts: Sequence[AuditDraft]) -> str:
    """Drafts as the JSON array of objects (a key per column) the insert reads with
    ``json_populate_recordset``: one parameter for the driver to send, not ten arrays."""
    return json.dumps(
        [dict(zip(DRAFT_COLUMNS, draft_values(d), strict=True)) for d in drafts],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _arrays(rows: Sequence[AuditRow]) -> dict[str, list[Any]]:
    return {
        "call_id": [r.call_id for r in rows],
        "task_id": [r.task_id for r in rows],
        "kind": [r.kind for r in rows],
        "created_at": [r.created_at for r in rows],
        "compliance_json": [r.compliance_json for r in rows],
        "technical_json": [r.technical_json for r in rows],
        "leaf_body": [r.leaf_body for r in rows],
    }


def audit_cte(name: str, *, where: str | None = None) -> str:
    """The drafts' insert as a data-modifying CTE ``name`` (its parameters prefixed
    ``a_``; rows kept only ``where`` that holds), for a writer that folds it into its own
    statement: one round trip less."""
    insert = _Q["insert_drafts"].strip().rstrip(";").replace("%(", "%(a_")
    if where is not None:
        insert = f"{insert}\nWHERE {where}"
    return f"{name} AS ({insert} RETURNING 1)"


def audit_params(drafts: Sequence[AuditDraft]) -> dict[str, str]:
    """The parameters of :func:`audit_cte` for ``drafts``."""
    return {"a_drafts": _drafts_json(drafts)}


def insert_audit_records(conn: _Conn, rows: Sequence[AuditRow]) -> int:
    """Insert ``rows`` in the transaction ``conn`` is in (nothing is committed here);
    returns how many were new (a ``call_id`` already logged is skipped). Build the rows
    before the transaction: sealing a payload may write a data key."""
    if not rows:
        return 0
    cursor = conn.execute(_Q["insert_records"], _arrays(rows))
    return max(cursor.rowcount, 0)


def _one(conn: _Conn, query: str, params: dict[str, Any] | None = None) -> tuple[Any, ...]:
    row = conn.execute(_Q[query], params).fetchone()
    if row is None:  # pragma: no cover - these queries always return a row
        raise StoreError(f"PostgreSQL audit log: {query} returned no row")
    return row


def _record(r: Sequence[Any]) -> StoredRecord:
    return StoredRecord(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], None if r[9] is None else bytes(r[9])
    )


class _Pool:
    """A connection pool that runs each call in one transaction and translates errors."""

    def __init__(self, url: str, *, min_size: int, max_size: int, timeout: float):
        self._pool: ConnectionPool[_Conn] | None = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=True,
            name="handrail-audit",
            kwargs={"autocommit": False},
        )

    def run(self, fn: Callable[[_Conn], T]) -> T:
        pool = self._pool
        if pool is None:
            raise StoreError("the audit log is closed")
        try:
            with pool.connection() as conn, conn.transaction():
                return fn(conn)
        except PoolClosed:
            raise StoreError("the audit log is closed") from None
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL audit log: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


class PostgresKeyStore:
    """Data keys in the audit tables ``handrail_audit_data_keys`` and
    ``handrail_audit_key_tombstones``. Creating and destroying a key id take an advisory
    lock on it, so a key is never created beside its tombstone."""

    def __init__(self, pool: _Pool, *, clock: Clock | None = None) -> None:
        self._pool = pool
        self._clock = clock or SystemClock()

    def get_or_create(self, key_id: str) -> bytes:
        check_key_id(key_id)
        params = {"key_id": key_id, "lock": _KEY_LOCK}
        row = self._pool.run(lambda c: c.execute(_Q["live_key"], params).fetchone())
        if row is not None:
            return bytes(row[0])

        def make(conn: _Conn) -> bytes | Tombstone:
            conn.execute(_Q["key_lock"], params)
            tomb = _tombstone(conn, key_id)
            if tomb is not None:
                return tomb
            new = {"key_id": key_id, "key": os.urandom(KEY_BYTES), "now": self._clock.now()}
            conn.execute(_Q["make_key"], new)
            return bytes(_one(conn, "get_key", params)[0])

        made = self._pool.run(make)
        if isinstance(made, Tombstone):
            raise PayloadErased(key_id, made)
        return made

    def get(self, key_id: str) -> bytes | None:
        row = self._pool.run(lambda c: c.execute(_Q["get_key"], {"key_id": key_id}).fetchone())
        return None if row is None else bytes(row[0])

    def destroy(self, key_id: str, *, by: str, reason: str | None = None) -> bool:
        check_key_id(key_id)
        params = {
            "key_id": key_id,
            "lock": _KEY_LOCK,
            "now": self._clock.now(),
            "by": by,
            "reason": reason,
        }

        def op(conn: _Conn) -> bool:
            conn.execute(_Q["key_lock"], params)
            deleted = conn.execute(_Q["delete_key"], params).rowcount
            conn.execute(_Q["bury_key"], params)
            return deleted > 0

        return self._pool.run(op)

    def destroyed(self, key_id: str) -> bool:
        return self.tombstone(key_id) is not None

    def tombstone(self, key_id: str) -> Tombstone | None:
        return self._pool.run(lambda c: _tombstone(c, key_id))


def _tombstone(conn: _Conn, key_id: str) -> Tombstone | None:
    row = conn.execute(_Q["tombstone"], {"key_id": key_id}).fetchone()
    return None if row is None else Tombstone(key_id, row[0], row[1], row[2])


class PostgresAuditLog(StoredTreeProofs):
    """An :class:`~handrail.audit.log.AuditLog` in the PostgreSQL database at ``url``.

    The schema comes from the store's migrations (applied by opening the store, which
    this does once if the audit tables are missing). ``keys`` defaults to a
    :class:`PostgresKeyStore` in the same database.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        keys: KeyStore | None = None,
        min_size: int = 1,
        max_size: int = 4,
        timeout: float = 30.0,
    ) -> None:
        self._clock = clock or SystemClock()
        try:
            self._pool = _Pool(url, min_size=min_size, max_size=max_size, timeout=timeout)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the PostgreSQL audit log: {exc}") from exc
        try:
            if not self._pool.run(_has_schema):
                from handrail.store.postgres import PostgresStore

                PostgresStore(url, min_size=1, max_size=1).close()
        except BaseException:
            self._pool.close()
            raise
        self._keys: KeyStore = keys or PostgresKeyStore(self._pool, clock=self._clock)
        self._vault = PayloadVault(self._keys)
        self._sealing_keys = SealFirstKeys(self._keys, self.seal_drafts)

    @property
    def keys(self) -> KeyStore:
        """The data keys; destroying one seals the waiting drafts first (see
        :class:`~handrail.audit.log.SealFirstKeys`)."""
        return self._sealing_keys

    @property
    def vault(self) -> PayloadVault:
        return self._vault

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> PostgresAuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes --------------------------------------------------------------------------

    def append(self, rows: Sequence[AuditRow]) -> int:
        self.seal_drafts()  # records keep the order their steps committed in
        return self._pool.run(lambda conn: insert_audit_records(conn, rows))

    def seal_drafts(self) -> int:
        """Seal the drafts the step statements wrote (see
        :func:`~handrail.audit.log.seal_in_batches`); draft ids are never reused."""

        def read(limit: int) -> list[tuple[int, AuditDraft]]:
            rows = self._pool.run(lambda c: c.execute(_Q["drafts"], {"limit": limit}).fetchall())
            return [(r[0], AuditDraft(*r[1:])) for r in rows]

        def write(records: Sequence[AuditRow], done: Sequence[tuple[int, str]]) -> None:
            def op(conn: _Conn) -> None:
                insert_audit_records(conn, records)
                conn.execute(_Q["delete_drafts"], {"ids": [draft_id for draft_id, _ in done]})

            self._pool.run(op)

        return seal_in_batches(read, write, self._vault)

    def pending(self) -> int:
        count: int = self._pool.run(lambda c: _one(c, "pending_count")[0])
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

        def op(conn: _Conn) -> SignedCheckpoint | None:
            if not _one(conn, "try_lock", {"lock": SEQUENCER_LOCK})[0]:
                return None  # another sequencer is at work; it takes these records too
            rows = conn.execute(_Q["pending_batch"], {"limit": max_batch}).fetchall()
            if not rows:
                return None
            pending = [(int(r[0]), str(r[1])) for r in rows]
            state = conn.execute(_Q["latest_state"]).fetchone()
            latest = None
            if state is not None:
                size = int(state[0])
                frontier = decode_frontier(size, bytes(state[1]))
                latest = (size, frontier, parse_checkpoint(state[2]).origin)
            batch = plan_batch(latest, pending, signing_key, origin, at)
            leaves = batch.leaves
            conn.execute(
                _Q["insert_leaves"],
                {
                    "leaf_index": [leaf[0] for leaf in leaves],
                    "record_id": [leaf[1] for leaf in leaves],
                    "leaf_hash": [leaf[2] for leaf in leaves],
                },
            )
            if batch.nodes:
                conn.execute(
                    _Q["insert_nodes"],
                    {
                        "level": [n[0] for n in batch.nodes],
                        "idx": [n[1] for n in batch.nodes],
                        "hash": [n[2] for n in batch.nodes],
                    },
                )
            conn.execute(_Q["dequeue"], {"record_id": [rid for rid, _ in pending]})
            signed = batch.signed
            conn.execute(
                _Q["insert_checkpoint"],
                {
                    "size": signed.size,
                    "root_hash": signed.root_hash,
                    "note": signed.note,
                    "frontier": encode_frontier(batch.frontier),
                    "created_at": at,
                },
            )
            if sinks:
                conn.execute(
                    _Q["enqueue_outbox"],
                    {
                        "sinks": list(sinks),
                        "record_id": [leaf[1] for leaf in leaves],
                        "leaf_index": [leaf[0] for leaf in leaves],
                        "now": at,
                    },
                )
            return signed

        return self._pool.run(op)

    # -- reads ---------------------------------------------------------------------------

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        row = self._pool.run(lambda c: c.execute(_Q["latest_checkpoint"]).fetchone())
        return None if row is None else signed_from_row(row[0], row[1])

    def checkpoints(self, *, up_to: int | None = None) -> list[SignedCheckpoint]:
        rows = self._pool.run(lambda c: c.execute(_Q["checkpoints"], {"up_to": up_to}).fetchall())
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
        rows = self._pool.run(lambda c: c.execute(_Q["records"], params).fetchall())
        return [_record(r) for r in rows]

    def record(self, call_id: str) -> StoredRecord | None:
        self.seal_drafts()
        row = self._pool.run(lambda c: c.execute(_Q["record"], {"call_id": call_id}).fetchone())
        return None if row is None else _record(row)

    def leaves(self, start: int, end: int) -> list[bytes]:
        rows = self._pool.run(
            lambda c: c.execute(_Q["leaves"], {"start": start, "end": end}).fetchall()
        )
        return [leaf_bytes(body, index) for index, body in rows]

    def _nodes(self, keys: set[NodeKey]) -> dict[NodeKey, bytes]:
        inner = [k for k in keys if k[0] > 0]

        def fetch(conn: _Conn) -> dict[NodeKey, bytes]:
            found: dict[NodeKey, bytes] = {}
            indexes = [index for level, index in keys if level == 0]
            for index, digest in conn.execute(_Q["leaf_hashes"], {"indexes": indexes}):
                found[(0, index)] = bytes(digest)
            params = {"level": [k[0] for k in inner], "idx": [k[1] for k in inner]}
            for level, index, digest in conn.execute(_Q["node_hashes"], params):
                found[(level, index)] = bytes(digest)
            return found

        found = self._pool.run(fetch)
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
        params = {"sink": sink, "limit": limit}
        rows = self._pool.run(lambda c: c.execute(_Q["due"], params).fetchall())
        if not rows or rows[0][11] > now:
            return []
        return [OutboxItem(_record(r), r[10], r[11], r[12]) for r in rows]

    def delivered(self, sink: str, record_ids: Sequence[int], *, now: float) -> None:
        params = {"sink": sink, "record_id": list(record_ids), "now": now}
        self._pool.run(lambda c: c.execute(_Q["delivered"], params))

    def failed(self, sink: str, record_id: int, *, next_at: float, error: str) -> None:
        params = {"sink": sink, "record_id": record_id, "next_at": next_at, "error": error}
        self._pool.run(lambda c: c.execute(_Q["failed"], params))

    def sinks(self) -> list[str]:
        return self._pool.run(lambda conn: [r[0] for r in conn.execute(_Q["sinks"])])

    def backlog(self, sink: str) -> Backlog:
        def read(conn: _Conn) -> Backlog:
            pending, delivered = _one(conn, "backlog_counts", {"sink": sink})
            head = conn.execute(_Q["backlog_head"], {"sink": sink}).fetchone()
            if head is None:
                return Backlog(sink, pending, delivered)
            return Backlog(sink, pending, delivered, *head)

        return self._pool.run(read)


def _has_schema(conn: _Conn) -> bool:
    row = conn.execute("SELECT to_regclass('handrail_audit_records') IS NOT NULL").fetchone()
    return bool(row and row[0])


if TYPE_CHECKING:  # the backend implements the protocol (checked by mypy, never run)
    _CONFORMS: AuditLog = PostgresAuditLog("")
