"""Proofs served from a database's stored tree: what the SQLite and PostgreSQL audit logs
share. A backend provides its latest checkpoint, a record lookup and one query that
fetches a set of stored nodes; this class plans each proof, fetches its nodes at once and
folds them (see :mod:`handrail.audit.nodes`)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from handrail.audit.log import (
    AuditLogError,
    InclusionProof,
    SignedCheckpoint,
    check_size,
)
from handrail.audit.merkle import SubtreeRoot, consistency_path, inclusion_path
from handrail.audit.nodes import NodeKey, ProofPath, fold, fold_proof, plan_proof, root_keys
from handrail.audit.record import StoredRecord


class StoredTreeProofs(ABC):
    """Inclusion and consistency proofs over stored nodes (a base of the SQL logs)."""

    @abstractmethod
    def latest_checkpoint(self) -> SignedCheckpoint | None:
        """The newest signed checkpoint, or ``None``."""

    @abstractmethod
    def record(self, call_id: str) -> StoredRecord | None:
        """A record by call id, or ``None``."""

    @abstractmethod
    def _nodes(self, keys: set[NodeKey]) -> dict[NodeKey, bytes]:
        """The stored hashes of ``keys``, fetched in one query."""

    def size(self) -> int:
        """The size of the tree the latest checkpoint signs (0 before the first)."""
        latest = self.latest_checkpoint()
        return 0 if latest is None else latest.size

    def _size_or_latest(self, size: int | None) -> int:
        latest = self.latest_checkpoint()
        tree_size = 0 if latest is None else latest.size
        if size is None:
            if latest is None:
                raise AuditLogError("the log has no signed checkpoint yet")
            return tree_size
        check_size(size, tree_size)
        return size

    def _proof(self, path: ProofPath) -> list[bytes]:
        return fold_proof(path, self._nodes(plan_proof(path)))

    def inclusion_proof(self, leaf: int | str, size: int | None = None) -> InclusionProof:
        tree_size = self._size_or_latest(size)
        if isinstance(leaf, str):
            record = self.record(leaf)
            if record is None or record.leaf_index is None:
                raise AuditLogError(f"record {leaf!r} is not in the log's tree yet")
            leaf = record.leaf_index
        if not 0 <= leaf < tree_size:
            raise AuditLogError(f"leaf {leaf} is not in the tree of size {tree_size}")
        index = leaf

        def path(sr: SubtreeRoot) -> list[bytes]:
            return inclusion_path(index, tree_size, sr)

        keys = plan_proof(path)
        keys.add((0, index))
        keys.update(root_keys(tree_size))
        nodes = self._nodes(keys)
        root = fold([nodes[k] for k in root_keys(tree_size)])
        return InclusionProof(
            index, tree_size, nodes[(0, index)], tuple(fold_proof(path, nodes)), root
        )

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        new = self._size_or_latest(new_size)
        check_size(old_size, new)
        return self._proof(lambda sr: consistency_path(old_size, new, sr))
