"""The Merkle tree as stored rows: which nodes a batch of leaves completes, and which
stored nodes a proof needs.

The database backends keep the tree the way :class:`~handrail.audit.tree.MerkleTree`
keeps it in memory: level 0 is the leaf hashes (``handrail_audit_leaves``), level ``k``
holds the root of every complete subtree of ``2**k`` leaves (``handrail_audit_nodes``,
keyed by ``(level, index)``). Complete nodes never change, so the tree of every earlier
size is there too.

- The sequencer keeps the right frontier (the compact range, O(log n) hashes, saved with
  each checkpoint) and appends a batch with :func:`integrate`: O(batch) hashes and about
  one new stored node per leaf, never a rebuild.
- A proof is planned first (:func:`plan_proof` runs the RFC 6962 path with a recorder to
  learn which subtree roots it needs), then the O(log² n) nodes are fetched in one query,
  then the proof is computed from them (:func:`fold_proof`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from hashlib import sha256

from handrail.audit.compact import CompactRange
from handrail.audit.merkle import EMPTY_ROOT, HASH_SIZE, SubtreeRoot

__all__ = [
    "NodeKey",
    "ProofPath",
    "decode_frontier",
    "encode_frontier",
    "fold",
    "fold_proof",
    "frontier_root",
    "integrate",
    "plan_proof",
    "root_keys",
    "subtree_keys",
]

NodeKey = tuple[int, int]
"""``(level, index)`` of a stored node; level 0 is a leaf."""

ProofPath = Callable[[SubtreeRoot], list[bytes]]
"""A proof as a function of ``subtree_root``, e.g.
``lambda sr: inclusion_path(index, size, sr)``."""

_NODE = b"\x01"
_PLACEHOLDER = bytes(HASH_SIZE)


def integrate(
    size: int, frontier: Sequence[bytes], leaf_hashes: Iterable[bytes]
) -> tuple[int, list[bytes], list[tuple[int, int, bytes]]]:
    """Append ``leaf_hashes`` to the tree of ``size`` whose right frontier is
    ``frontier``; returns the new size, the new frontier and the interior nodes the
    batch completed, as ``(level, index, hash)``."""
    nodes = list(frontier)
    if len(nodes) != size.bit_count():
        raise ValueError(f"a tree of {size} leaves has {size.bit_count()} frontier nodes")
    completed: list[tuple[int, int, bytes]] = []
    for leaf in leaf_hashes:
        node = leaf
        carry = size
        level = 0
        while carry & 1:
            node = sha256(_NODE + nodes.pop() + node).digest()
            carry >>= 1
            level += 1
            completed.append((level, size >> level, node))
        nodes.append(node)
        size += 1
    return size, nodes, completed


def encode_frontier(frontier: Sequence[bytes]) -> bytes:
    """The frontier as one blob (its hashes end to end)."""
    return b"".join(frontier)


def decode_frontier(size: int, blob: bytes) -> list[bytes]:
    """The inverse of :func:`encode_frontier`, checked against ``size``."""
    if len(blob) != size.bit_count() * HASH_SIZE:
        raise ValueError(f"a frontier of a tree of {size} leaves is not {len(blob)} bytes")
    return [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]


def frontier_root(size: int, frontier: Sequence[bytes]) -> bytes:
    """The root of the tree whose frontier is given."""
    return CompactRange.restore(size, frontier).root()


def subtree_keys(begin: int, end: int) -> list[NodeKey]:
    """The stored nodes whose fold is the root of leaves ``[begin, end)``, largest first.

    ``begin`` must be a multiple of the largest power of two in ``end - begin``: every
    range an RFC 6962 proof asks for is.
    """
    length = end - begin
    if length <= 0:
        raise ValueError(f"[{begin}, {end}) is an empty range")
    top = length.bit_length() - 1
    if begin & ((1 << top) - 1):
        raise ValueError(f"[{begin}, {end}) is not aligned to stored nodes")
    keys: list[NodeKey] = []
    position = begin
    for level in range(top, -1, -1):
        if length >> level & 1:
            keys.append((level, position >> level))
            position += 1 << level
    return keys


def root_keys(size: int) -> list[NodeKey]:
    """The stored nodes whose fold is the root of the tree of ``size``."""
    return [] if size == 0 else subtree_keys(0, size)


def fold(hashes: Sequence[bytes]) -> bytes:
    """Fold subtree roots, largest (leftmost) first, into the root of their range."""
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for node in reversed(hashes[:-1]):
        result = sha256(_NODE + node + result).digest()
    return result


def plan_proof(path: ProofPath) -> set[NodeKey]:
    """The stored nodes ``path`` needs (it is run once with placeholders)."""
    keys: set[NodeKey] = set()

    def record(begin: int, end: int) -> bytes:
        keys.update(subtree_keys(begin, end))
        return _PLACEHOLDER

    path(record)
    return keys


def fold_proof(path: ProofPath, nodes: Mapping[NodeKey, bytes]) -> list[bytes]:
    """``path`` computed from the fetched ``nodes`` (see :func:`plan_proof`)."""

    def subtree_root(begin: int, end: int) -> bytes:
        return fold([nodes[key] for key in subtree_keys(begin, end)])

    return path(subtree_root)
