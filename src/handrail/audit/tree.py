"""A Merkle tree that keeps every complete interior node, for proofs at any size.

Level 0 holds the leaf hashes; level ``k`` holds the root of every complete subtree of
``2**k`` leaves, ``levels[k][i]`` covering leaves ``[i * 2**k, (i + 1) * 2**k)``. Nodes
never change once complete (the log only appends), so the tree of any earlier size is
there too. The root of any subtree a proof asks for is at most one stored node per bit of
its length, so a proof costs O(log² n) lookups and hashes, and none of them re-reads the
leaves: at a million leaves an inclusion or consistency proof takes microseconds.

Storage is about two hashes per leaf. The same layout works as a table keyed by
(level, index) in a database; :func:`~handrail.audit.merkle.inclusion_path` and
:func:`~handrail.audit.merkle.consistency_path` take any ``subtree_root`` function.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import sha256

from handrail.audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    consistency_path,
    hash_pairs,
    inclusion_path,
)
from handrail.audit.merkle import root as _root

__all__ = ["MerkleTree"]

_NODE_PREFIX = b"\x01"


class MerkleTree:
    """An append-only RFC 6962 tree over leaf hashes, with every complete node stored."""

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        self.extend(leaf_hashes)

    @property
    def size(self) -> int:
        """The number of leaves."""
        return len(self._levels[0])

    def leaf_hash(self, index: int) -> bytes:
        """The hash of leaf ``index``."""
        if not 0 <= index < self.size:
            raise IndexError(f"leaf {index} is not in a tree of {self.size}")
        return self._levels[0][index]

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf hash."""
        self.extend((leaf_hash,))

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Add leaf hashes in order, completing the interior nodes they close."""
        new = list(leaf_hashes)
        if any(len(leaf) != HASH_SIZE for leaf in new):
            raise ValueError(f"every leaf hash is {HASH_SIZE} bytes")
        levels = self._levels
        levels[0].extend(new)
        depth = 1
        while True:
            below = levels[depth - 1]
            complete = len(below) // 2
            if depth == len(levels):
                if not complete:
                    break
                levels.append([])
            level = levels[depth]
            done = len(level)
            if complete == done:
                break  # nothing new closed here, so nothing above either
            level.extend(hash_pairs(below[2 * done : 2 * complete]))
            depth += 1

    def subtree_root(self, begin: int, end: int) -> bytes:
        """The Merkle tree hash of leaves ``[begin, end)``.

        When ``begin`` is a multiple of the largest power of two in ``end - begin`` (every
        range a proof asks for is), this folds at most one stored node per bit of the
        length; any other range is hashed from its leaves.
        """
        if not 0 <= begin <= end <= self.size:
            raise ValueError(f"[{begin}, {end}) is not a range of a tree of {self.size}")
        length = end - begin
        if length == 0:
            return EMPTY_ROOT
        top = length.bit_length() - 1
        if begin & ((1 << top) - 1):
            return _root(self._levels[0][begin:end])
        parts: list[bytes] = []
        position = begin
        for level in range(top, -1, -1):
            if length >> level & 1:
                parts.append(self._levels[level][position >> level])
                position += 1 << level
        result = parts[-1]
        for node in reversed(parts[:-1]):
            result = sha256(_NODE_PREFIX + node + result).digest()
        return result

    def root(self, size: int | None = None) -> bytes:
        """The root of the tree of ``size`` leaves (default: all of them)."""
        return self.subtree_root(0, self.size if size is None else size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The inclusion proof of leaf ``index`` in the tree of ``size`` (default: now)."""
        size = self.size if size is None else size
        self._check_size(size)
        return inclusion_path(index, size, self.subtree_root)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The consistency proof from the tree of ``old_size`` to that of ``new_size``
        (default: now)."""
        new_size = self.size if new_size is None else new_size
        self._check_size(new_size)
        return consistency_path(old_size, new_size, self.subtree_root)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ValueError(f"the tree has {self.size} leaves, not {size}")

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"MerkleTree(size={self.size})"
