"""The compact range: a Merkle tree's right frontier, enough to append and get the root.

A tree of ``size`` leaves is a row of complete subtrees, one per set bit of ``size``, from
the largest on the left (a tree of 13 = 8 + 4 + 1 leaves is three subtrees). Their roots,
O(log n) hashes, are all a sequencer needs: appending a leaf merges the equal-sized
subtrees at the right end (like carrying in binary addition, one hash per carry on
average), and the RFC 6962 root folds the row from the right.

Persist ``size`` and ``nodes`` next to each signed checkpoint and the sequencer resumes
from them with :meth:`CompactRange.restore`, without reading any leaf again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import sha256

from handrail.audit.merkle import EMPTY_ROOT, HASH_SIZE

__all__ = ["CompactRange"]

_NODE_PREFIX = b"\x01"


class CompactRange:
    """The roots of the complete subtrees that make up a tree of ``size`` leaves,
    largest first; :meth:`append` leaf hashes, read :meth:`root`."""

    __slots__ = ("_nodes", "_size")

    def __init__(self) -> None:
        self._nodes: list[bytes] = []
        self._size = 0

    @classmethod
    def restore(cls, size: int, nodes: Sequence[bytes]) -> CompactRange:
        """A range saved earlier as (:attr:`size`, :attr:`nodes`)."""
        if size < 0:
            raise ValueError(f"size must not be negative, not {size}")
        if len(nodes) != size.bit_count():
            raise ValueError(
                f"a tree of {size} leaves has {size.bit_count()} frontier nodes, not {len(nodes)}"
            )
        if any(len(node) != HASH_SIZE for node in nodes):
            raise ValueError(f"every frontier node is a {HASH_SIZE}-byte hash")
        restored = cls()
        restored._nodes = [bytes(node) for node in nodes]
        restored._size = size
        return restored

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    @property
    def nodes(self) -> tuple[bytes, ...]:
        """The subtree roots, largest (leftmost) first: one per set bit of :attr:`size`."""
        return tuple(self._nodes)

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf (its hash, see :func:`~handrail.audit.merkle.leaf_hash`)."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, not {len(leaf_hash)}")
        nodes = self._nodes
        carry = self._size
        node = leaf_hash
        while carry & 1:
            node = sha256(_NODE_PREFIX + nodes.pop() + node).digest()
            carry >>= 1
        nodes.append(node)
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Add many leaves, in order."""
        for leaf_hash in leaf_hashes:
            self.append(leaf_hash)

    def root(self) -> bytes:
        """The RFC 6962 root of the tree so far (:data:`~handrail.audit.merkle.EMPTY_ROOT`
        when empty)."""
        nodes = self._nodes
        if not nodes:
            return EMPTY_ROOT
        result = nodes[-1]
        for node in reversed(nodes[:-1]):
            result = sha256(_NODE_PREFIX + node + result).digest()
        return result

    def copy(self) -> CompactRange:
        """An independent copy (to try a batch without committing to it)."""
        return CompactRange.restore(self._size, self._nodes)

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()[:16]}...)"
