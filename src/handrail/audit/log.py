"""The audit log's storage protocol, and the pieces every backend shares.

Three backends implement :class:`AuditLog`: in memory (:mod:`handrail.audit.memory`),
SQLite (:mod:`handrail.store.sqlite.audit`) and PostgreSQL
(:mod:`handrail.store.postgres.audit`). How a record travels:

1. **insert**: a writer inserts the record inside the transaction that journals the
   event (or :meth:`AuditLog.append` on its own). The in-memory store seals it
   (:func:`~handrail.audit.record.seal_draft`) and inserts the record; the SQLite and
   PostgreSQL stores insert the :class:`~handrail.audit.record.AuditDraft` and the log
   seals it into a record later (:meth:`AuditLog.seal_drafts`, which the sequencer and
   every read call first). The record gets an id; a trigger queues it in
   ``handrail_audit_pending``. Writers only ever INSERT, so they never wait on a shared
   row.
2. **sequence**: :meth:`AuditLog.sequence`, one sequencer at a time (SQLite: ``BEGIN
   IMMEDIATE``; PostgreSQL: ``pg_try_advisory_xact_lock``), takes the queued records in
   id order, gives them the next contiguous leaf indexes (never the id: PostgreSQL ids
   commit out of order and leave gaps; a record committed late just gets a later
   index), stores leaves and completed tree nodes, signs a checkpoint over the new size
   and queues the records in the outbox of every sink, all in one transaction.
3. **deliver**: :mod:`handrail.audit.delivery` sends each sink its records, in leaf
   order, retrying with back-off.

Proofs read O(log² n) stored nodes (:mod:`handrail.audit.nodes`); the tree's right
frontier is saved with every checkpoint, so appending a batch never rebuilds anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO, Protocol

from handrail.audit.bundle import BundleHeader, write_bundle
from handrail.audit.checkpoint import (
    Checkpoint,
    SigningKey,
    VerifyingKey,
    parse_checkpoint,
    sign_checkpoint,
)
from handrail.audit.merkle import verify_inclusion
from handrail.audit.nodes import frontier_root, integrate
from handrail.audit.payloads import KeyStore, PayloadVault, Tombstone
from handrail.audit.record import AuditDraft, AuditRow, StoredRecord, seal_drafts, stored_leaf_hash
from handrail.errors import AuditError

__all__ = [
    "AuditLog",
    "AuditLogError",
    "Backlog",
    "InclusionProof",
    "OutboxItem",
    "SequencedBatch",
    "SealFirstKeys",
    "SignedCheckpoint",
    "export_bundle",
    "plan_batch",
    "seal_in_batches",
]

DRAFT_BATCH = 500
"""Drafts sealed per transaction."""

EXPORT_CHUNK = 1000
"""Leaves read per query while exporting."""


class AuditLogError(AuditError):
    """The stored audit log is inconsistent or was asked for something it does not hold
    (a size beyond its leaves, a record that is not sequenced yet, another origin)."""


@dataclasses.dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint the log signed: the parsed ``checkpoint``, the signed ``note`` text
    (what auditors verify) and when it was made."""

    checkpoint: Checkpoint
    note: str
    created_at: float

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root_hash(self) -> bytes:
        return self.checkpoint.root_hash


@dataclasses.dataclass(frozen=True, slots=True)
class InclusionProof:
    """That the leaf at ``leaf_index`` (hash ``leaf_hash``) is in the tree of
    ``tree_size`` with root ``root_hash``: ``path`` lists the siblings from the leaf up."""

    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    path: tuple[bytes, ...]
    root_hash: bytes

    def verify(self, root_hash: bytes | None = None) -> None:
        """Check the proof against ``root_hash`` (a signed checkpoint's root; default the
        root it was made for); raises :class:`~handrail.errors.InclusionProofError`."""
        verify_inclusion(
            self.leaf_hash, self.leaf_index, self.tree_size, self.path, root_hash or self.root_hash
        )


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxItem:
    """A record waiting for a sink: how often delivery failed, and why last time."""

    record: StoredRecord
    attempts: int
    next_attempt_at: float
    last_error: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Backlog:
    """What a sink still has to receive: ``pending`` records, the oldest first
    (``oldest_leaf``, logged at ``oldest_logged_at``), its ``attempts`` so far, when it
    is tried next and the last error."""

    sink: str
    pending: int
    delivered: int
    oldest_leaf: int | None = None
    oldest_logged_at: float | None = None
    attempts: int = 0
    next_attempt_at: float | None = None
    last_error: str | None = None


class AuditLog(Protocol):
    """The audit log over one database (see the module docs for the life of a record)."""

    @property
    def keys(self) -> KeyStore:
        """The data keys of this log's raw payloads, in the same database."""

    @property
    def vault(self) -> PayloadVault:
        """A vault over :attr:`keys`, to build records and open their payloads."""

    def append(self, rows: Sequence[AuditRow]) -> int:
        """Insert records in a transaction of their own; returns how many were new (a
        ``call_id`` already in the log is skipped)."""

    def seal_drafts(self) -> int:
        """Seal the drafts step transactions left (oldest first) into records; returns how
        many. Reads and :meth:`sequence` do it first; a log that seals on write has none."""

    def pending(self) -> int:
        """How many records (and drafts) wait for the sequencer."""

    def sequence(
        self,
        signing_key: SigningKey,
        origin: str,
        *,
        max_batch: int = 1000,
        sinks: Sequence[str] = (),
        now: float | None = None,
    ) -> SignedCheckpoint | None:
        """Integrate up to ``max_batch`` queued records (in id order) as the next leaves,
        sign a checkpoint over the new size and queue the records for ``sinks``; ``None``
        if nothing was queued or another sequencer holds the lock."""

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        """The checkpoint of the largest size, or ``None`` before the first."""

    def checkpoints(self, *, up_to: int | None = None) -> list[SignedCheckpoint]:
        """Every checkpoint (of size at most ``up_to``), smallest first."""

    def size(self) -> int:
        """The number of leaves."""

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
        """Records in id order, filtered: ``since <= created_at < until``, ids above
        ``after_id`` (to page)."""

    def record(self, call_id: str) -> StoredRecord | None:
        """The record with ``call_id``."""

    def leaves(self, start: int, end: int) -> list[bytes]:
        """The canonical leaf bytes of leaves ``[start, end)``."""

    def inclusion_proof(self, leaf: int | str, size: int | None = None) -> InclusionProof:
        """The proof that a leaf (its index, or the ``call_id`` of its record) is in the
        tree of ``size`` (default: the latest checkpoint's)."""

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The proof that the tree of ``old_size`` is a prefix of that of ``new_size``
        (default: the latest checkpoint's)."""

    def export_bundle(self, stream: BinaryIO, key: VerifyingKey, *, size: int | None = None) -> int:
        """Write the bundle of leaves ``[0, size)`` (default: the latest checkpoint's)
        with every checkpoint up to it; returns the number of leaves written."""

    def due(self, sink: str, *, now: float, limit: int = 100) -> list[OutboxItem]:
        """The sink's next undelivered records in leaf order; empty while the oldest is
        backing off (delivery is in order, so nothing overtakes it)."""

    def delivered(self, sink: str, record_ids: Sequence[int], *, now: float) -> None:
        """Mark records delivered to ``sink``."""

    def failed(self, sink: str, record_id: int, *, next_at: float, error: str) -> None:
        """Count a failed attempt; try again at ``next_at``."""

    def backlog(self, sink: str) -> Backlog:
        """What ``sink`` still has to receive."""

    def sinks(self) -> list[str]:
        """Every sink the sequencer has queued records for, by name."""

    def close(self) -> None:
        """Release connections."""


# --- shared by the backends -----------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class SequencedBatch:
    """What one sequencing step writes: leaves ``(leaf_index, record_id, leaf_hash)``,
    completed ``nodes`` ``(level, index, hash)``, the checkpoint and its frontier."""

    leaves: list[tuple[int, int, bytes]]
    nodes: list[tuple[int, int, bytes]]
    signed: SignedCheckpoint
    frontier: list[bytes]


def plan_batch(
    latest: tuple[int, list[bytes], str] | None,
    pending: Sequence[tuple[int, str]],
    signing_key: SigningKey,
    origin: str,
    now: float,
) -> SequencedBatch:
    """Sequence ``pending`` ``(record_id, leaf_body)`` after the tree ``latest`` (its
    size, frontier and origin; ``None`` when empty): pure computation, the backend
    writes the result in the transaction that read its inputs."""
    size, frontier = 0, list[bytes]()
    if latest is not None:
        size, frontier, latest_origin = latest
        if latest_origin != origin:
            raise AuditLogError(
                f"this log is {latest_origin!r}; it cannot be sequenced as {origin!r} "
                "(pass the origin its checkpoints were signed with)"
            )
    leaves = [
        (size + offset, record_id, stored_leaf_hash(body, size + offset))
        for offset, (record_id, body) in enumerate(pending)
    ]
    new_size, new_frontier, nodes = integrate(size, frontier, (leaf[2] for leaf in leaves))
    checkpoint = Checkpoint(origin, new_size, frontier_root(new_size, new_frontier))
    note = sign_checkpoint(checkpoint, signing_key)
    return SequencedBatch(leaves, nodes, SignedCheckpoint(checkpoint, note, now), new_frontier)


def seal_in_batches(
    read: Callable[[int], Sequence[tuple[int, AuditDraft]]],
    write: Callable[[Sequence[AuditRow], Sequence[tuple[int, str]]], None],
    vault: PayloadVault,
    *,
    batch: int | None = None,
) -> int:
    """Seal drafts into records, oldest first, ``batch`` at a time: ``read(n)`` returns up
    to ``n`` ``(draft id, draft)``; they are sealed with no transaction open (sealing may
    create a data key, a write of its own); ``write(records, done)`` inserts the records
    (a ``call_id`` already logged is skipped) and deletes the drafts ``done``
    ``(id, call_id)`` in one transaction. Safe in many threads and processes at once: two
    sealers of one draft insert one record. ``batch`` defaults to :data:`DRAFT_BATCH`.
    Returns how many drafts were sealed."""
    batch = batch or DRAFT_BATCH
    sealed = 0
    while True:
        drafts = read(batch)
        if not drafts:
            return sealed
        records = seal_drafts([draft for _, draft in drafts], vault)
        write(records, [(draft_id, draft.call_id) for draft_id, draft in drafts])
        sealed += len(drafts)
        if len(drafts) < batch:
            return sealed


class SealFirstKeys:
    """A log's key store as its users see it: destroying a key seals the log's waiting
    drafts first, so a record written before an erasure is erased like any other (opened
    as erased, with its tombstone) instead of sealed afterwards with its payloads
    withheld."""

    def __init__(self, keys: KeyStore, seal: Callable[[], int]) -> None:
        self._keys = keys
        self._seal = seal

    def get_or_create(self, key_id: str) -> bytes:
        return self._keys.get_or_create(key_id)

    def get(self, key_id: str) -> bytes | None:
        return self._keys.get(key_id)

    def destroy(self, key_id: str, *, by: str, reason: str | None = None) -> bool:
        self._seal()
        return self._keys.destroy(key_id, by=by, reason=reason)

    def destroyed(self, key_id: str) -> bool:
        return self._keys.destroyed(key_id)

    def tombstone(self, key_id: str) -> Tombstone | None:
        return self._keys.tombstone(key_id)


def signed_from_row(note: str, created_at: float) -> SignedCheckpoint:
    """A stored checkpoint row as a :class:`SignedCheckpoint`."""
    return SignedCheckpoint(parse_checkpoint(note), note, created_at)


def export_bundle(
    log: AuditLog, stream: BinaryIO, key: VerifyingKey, *, size: int | None = None
) -> int:
    """Write ``log``'s bundle (see :meth:`AuditLog.export_bundle`): the header with every
    checkpoint up to ``size``, then the leaves, streamed in chunks."""
    latest = log.latest_checkpoint()
    if latest is None:
        raise AuditLogError("the log has no signed checkpoint yet: run the sequencer first")
    size = latest.size if size is None else size
    notes = log.checkpoints(up_to=size)
    if not notes or notes[-1].size != size:
        raise AuditLogError(f"no checkpoint signs size {size}: export a checkpointed size")
    header = BundleHeader(latest.checkpoint.origin, key, tuple(c.note for c in notes))

    def leaves() -> Iterator[bytes]:
        for start in range(0, size, EXPORT_CHUNK):
            yield from log.leaves(start, min(size, start + EXPORT_CHUNK))

    return write_bundle(stream, header, leaves())


def check_size(size: int, tree_size: int) -> None:
    if not 0 <= size <= tree_size:
        raise AuditLogError(f"the log has {tree_size} leaves; there is no tree of size {size}")
