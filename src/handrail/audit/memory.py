"""The audit log in this process's memory, for tests and the in-memory store.

It behaves like the database backends (ids on insert, a pending queue, contiguous leaf
indexes, signed checkpoints, an outbox per sink) under one lock; the whole tree is kept
in a :class:`~handrail.audit.tree.MerkleTree`. The in-memory store writes a step's records
by calling :meth:`MemoryAuditLog.append` while it holds its own lock.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, BinaryIO

from handrail.audit.checkpoint import SigningKey, VerifyingKey
from handrail.audit.log import (
    AuditLog,
    AuditLogError,
    Backlog,
    InclusionProof,
    OutboxItem,
    SignedCheckpoint,
    check_size,
    export_bundle,
    plan_batch,
)
from handrail.audit.payloads import KeyStore, MemoryKeyStore, PayloadVault
from handrail.audit.record import AuditRow, StoredRecord, leaf_bytes
from handrail.audit.tree import MerkleTree
from handrail.clock import Clock, SystemClock

__all__ = ["MemoryAuditLog"]


@dataclasses.dataclass(slots=True)
class _Outbox:
    leaf_index: int
    attempts: int = 0
    next_attempt_at: float = 0.0
    delivered_at: float | None = None
    last_error: str | None = None


class MemoryAuditLog:
    """An :class:`~handrail.audit.log.AuditLog` in memory."""

    def __init__(self, *, keys: KeyStore | None = None, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._keys: KeyStore = keys or MemoryKeyStore(clock=self._clock)
        self._vault = PayloadVault(self._keys)
        self._lock = threading.RLock()
        self._records: list[StoredRecord] = []  # by id - 1
        self._by_call: dict[str, int] = {}
        self._pending: list[int] = []
        self._tree = MerkleTree()
        self._leaf_records: list[int] = []
        self._frontier: list[bytes] = []
        self._checkpoints: list[SignedCheckpoint] = []
        self._outbox: dict[str, dict[int, _Outbox]] = {}

    @property
    def keys(self) -> KeyStore:
        return self._keys

    @property
    def vault(self) -> PayloadVault:
        return self._vault

    def close(self) -> None:
        pass

    # -- writes --------------------------------------------------------------------------

    def append(self, rows: Sequence[AuditRow]) -> int:
        with self._lock:
            added = 0
            for row in rows:
                if row.call_id in self._by_call:
                    continue
                record_id = len(self._records) + 1
                self._records.append(
                    StoredRecord(
                        record_id,
                        row.call_id,
                        row.task_id,
                        row.kind,
                        row.created_at,
                        row.compliance_json,
                        row.technical_json,
                        row.leaf_body,
                    )
                )
                self._by_call[row.call_id] = record_id
                self._pending.append(record_id)
                added += 1
            return added

    def seal_drafts(self) -> int:
        return 0  # records are sealed when written

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def sequence(
        self,
        signing_key: SigningKey,
        origin: str,
        *,
        max_batch: int = 1000,
        sinks: Sequence[str] = (),
        now: float | None = None,
    ) -> SignedCheckpoint | None:
        now = self._clock.now() if now is None else now
        with self._lock:
            if not self._pending:
                return None
            batch_ids = self._pending[:max_batch]
            latest = self._checkpoints[-1] if self._checkpoints else None
            state = (
                None
                if latest is None
                else (latest.size, list(self._frontier), latest.checkpoint.origin)
            )
            pending = [(rid, self._records[rid - 1].leaf_body) for rid in batch_ids]
            batch = plan_batch(state, pending, signing_key, origin, now)
            for leaf_index, record_id, leaf_hash in batch.leaves:
                self._tree.append(leaf_hash)
                self._leaf_records.append(record_id)
                self._records[record_id - 1] = dataclasses.replace(
                    self._records[record_id - 1], leaf_index=leaf_index, leaf_hash=leaf_hash
                )
                for sink in sinks:
                    self._outbox.setdefault(sink, {})[record_id] = _Outbox(
                        leaf_index, next_attempt_at=now
                    )
            del self._pending[: len(batch_ids)]
            self._frontier = batch.frontier
            self._checkpoints.append(batch.signed)
            return batch.signed

    # -- reads ---------------------------------------------------------------------------

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        with self._lock:
            return self._checkpoints[-1] if self._checkpoints else None

    def checkpoints(self, *, up_to: int | None = None) -> list[SignedCheckpoint]:
        with self._lock:
            return [c for c in self._checkpoints if up_to is None or c.size <= up_to]

    def size(self) -> int:
        with self._lock:
            return self._tree.size

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
        with self._lock:
            found: list[StoredRecord] = []
            for record in self._records[after_id or 0 :]:
                if (
                    (task_id is None or record.task_id == task_id)
                    and (kind is None or record.kind == kind)
                    and (since is None or record.created_at >= since)
                    and (until is None or record.created_at < until)
                ):
                    found.append(record)
                    if len(found) >= limit:
                        break
            return found

    def record(self, call_id: str) -> StoredRecord | None:
        with self._lock:
            record_id = self._by_call.get(call_id)
            return None if record_id is None else self._records[record_id - 1]

    def leaves(self, start: int, end: int) -> list[bytes]:
        with self._lock:
            end = min(end, self._tree.size)
            return [
                leaf_bytes(self._records[rid - 1].leaf_body, start + i)
                for i, rid in enumerate(self._leaf_records[start:end])
            ]

    def _size_or_latest(self, size: int | None) -> int:
        if size is not None:
            check_size(size, self._tree.size)
            return size
        latest = self.latest_checkpoint()
        if latest is None:
            raise AuditLogError("the log has no signed checkpoint yet")
        return latest.size

    def inclusion_proof(self, leaf: int | str, size: int | None = None) -> InclusionProof:
        with self._lock:
            size = self._size_or_latest(size)
            if isinstance(leaf, str):
                record = self.record(leaf)
                if record is None or record.leaf_index is None:
                    raise AuditLogError(f"record {leaf!r} is not in the log's tree yet")
                leaf = record.leaf_index
            if not 0 <= leaf < size:
                raise AuditLogError(f"leaf {leaf} is not in the tree of size {size}")
            return InclusionProof(
                leaf,
                size,
                self._tree.leaf_hash(leaf),
                tuple(self._tree.inclusion_proof(leaf, size)),
                self._tree.root(size),
            )

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        with self._lock:
            new_size = self._size_or_latest(new_size)
            check_size(old_size, new_size)
            return self._tree.consistency_proof(old_size, new_size)

    def export_bundle(self, stream: BinaryIO, key: VerifyingKey, *, size: int | None = None) -> int:
        return export_bundle(self, stream, key, size=size)

    # -- outbox --------------------------------------------------------------------------

    def due(self, sink: str, *, now: float, limit: int = 100) -> list[OutboxItem]:
        with self._lock:
            waiting = sorted(
                (entry.leaf_index, record_id, entry)
                for record_id, entry in self._outbox.get(sink, {}).items()
                if entry.delivered_at is None
            )
            if not waiting or waiting[0][2].next_attempt_at > now:
                return []
            return [
                OutboxItem(
                    self._records[rid - 1], entry.attempts, entry.next_attempt_at, entry.last_error
                )
                for _, rid, entry in waiting[:limit]
            ]

    def delivered(self, sink: str, record_ids: Sequence[int], *, now: float) -> None:
        with self._lock:
            box = self._outbox.get(sink, {})
            for record_id in record_ids:
                entry = box.get(record_id)
                if entry is not None and entry.delivered_at is None:
                    entry.delivered_at = now
                    entry.attempts += 1

    def failed(self, sink: str, record_id: int, *, next_at: float, error: str) -> None:
        with self._lock:
            entry = self._outbox.get(sink, {}).get(record_id)
            if entry is not None:
                entry.attempts += 1
                entry.next_attempt_at = next_at
                entry.last_error = error

    def sinks(self) -> list[str]:
        with self._lock:
            return sorted(self._outbox)

    def backlog(self, sink: str) -> Backlog:
        with self._lock:
            entries = list(self._outbox.get(sink, {}).items())
            waiting = sorted(
                ((e.leaf_index, rid, e) for rid, e in entries if e.delivered_at is None),
                key=lambda t: t[0],
            )
            delivered = len(entries) - len(waiting)
            if not waiting:
                return Backlog(sink, 0, delivered)
            _, rid, head = waiting[0]
            return Backlog(
                sink,
                len(waiting),
                delivered,
                head.leaf_index,
                self._records[rid - 1].created_at,
                head.attempts,
                head.next_attempt_at,
                head.last_error,
            )


if TYPE_CHECKING:  # the backend implements the protocol (checked by mypy, never run)
    _CONFORMS: AuditLog = MemoryAuditLog()
