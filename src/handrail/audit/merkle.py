"""RFC 6962 Merkle tree hashing, proofs and their verification (RFC 9162 section 2.1).

The audit log is a transparency log: leaf ``i`` is the hash of record ``i``'s canonical
bytes, interior nodes hash their two children, and the tree over ``n`` leaves splits at the
largest power of two below ``n`` (so it is left-full, and an old tree is always a prefix of
a newer one). Two proofs, both O(log n) hashes:

- an **inclusion proof** shows that one leaf is at ``index`` in the tree of ``size`` with
  a given root (an auditor checks one record against a signed checkpoint);
- a **consistency proof** shows that the tree of ``old_size`` is a prefix of the tree of
  ``new_size`` (nothing signed earlier was changed, only leaves appended).

Proof generation here works on a plain list of leaf hashes and costs O(n) hashes (every
sibling subtree is hashed once). For large logs use :class:`handrail.audit.tree.MerkleTree`,
which keeps every interior node and answers in O(log² n), or call :func:`inclusion_path`
and :func:`consistency_path` with your own ``subtree_root`` (for example one reading
stored nodes from a database).

Verification follows RFC 9162 sections 2.1.3.2 and 2.1.4.2 step by step and raises
:class:`~handrail.errors.InclusionProofError` or
:class:`~handrail.errors.ConsistencyProofError`; it never returns a boolean, so a caller
cannot forget to look at it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from hashlib import sha256

from handrail.errors import ConsistencyProofError, InclusionProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "SubtreeRoot",
    "consistency_path",
    "consistency_proof",
    "hash_pairs",
    "inclusion_path",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Bytes in every hash of the tree (SHA-256)."""

EMPTY_ROOT = sha256(b"").digest()
"""The root of the tree with no leaves: SHA-256 of the empty string (RFC 6962 2.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

SubtreeRoot = Callable[[int, int], bytes]
"""``subtree_root(begin, end)``: the Merkle tree hash of leaves ``[begin, end)``."""


def leaf_hash(data: bytes) -> bytes:
    """The hash of one leaf: ``SHA-256(0x00 || data)``."""
    return sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return sha256(_NODE_PREFIX + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash (RFC 6962 ``MTH``) of the leaves whose hashes are given.

    Computed level by level: adjacent pairs are hashed and a lone last node moves up
    unchanged, which builds exactly the RFC's tree (split at the largest power of two).
    """
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        upper = hash_pairs(level)
        if len(level) & 1:
            upper.append(level[-1])
        level = upper
    return level[0]


def hash_pairs(nodes: Sequence[bytes]) -> list[bytes]:
    """The parents of ``nodes[0], nodes[1]``, ``nodes[2], nodes[3]``, ...: one level up
    (a last odd node is left out)."""
    even = len(nodes) & ~1
    return [
        sha256(_NODE_PREFIX + left + right).digest()
        for left, right in zip(nodes[0:even:2], nodes[1:even:2], strict=True)
    ]


def _split(size: int) -> int:
    """The largest power of two strictly below ``size`` (``size`` >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def inclusion_path(index: int, size: int, subtree_root: SubtreeRoot) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of ``size`` (RFC 6962 ``PATH``).

    ``subtree_root(begin, end)`` is asked for one sibling subtree per level, each a range
    that starts at a multiple of a power of two at least its length. The proof lists the
    siblings from the leaf up.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    siblings: list[bytes] = []
    begin, end = 0, size
    while end - begin > 1:
        middle = begin + _split(end - begin)
        if index < middle:
            siblings.append(subtree_root(middle, end))
            end = middle
        else:
            siblings.append(subtree_root(begin, middle))
            begin = middle
    siblings.reverse()
    return siblings


def consistency_path(old_size: int, new_size: int, subtree_root: SubtreeRoot) -> list[bytes]:
    """The consistency proof from the tree of ``old_size`` to that of ``new_size``
    (RFC 6962 ``PROOF``/``SUBPROOF``); empty when the sizes are equal or ``old_size`` is 0.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    nodes: list[bytes] = []
    begin, end = 0, new_size
    # True while [begin, end) is still a left spine of the new tree, whose old part the
    # verifier knows already (it is the old root), so it need not be sent.
    on_left_spine = True
    while old_size != end:
        middle = begin + _split(end - begin)
        if old_size <= middle:
            nodes.append(subtree_root(middle, end))
            end = middle
        else:
            nodes.append(subtree_root(begin, middle))
            begin = middle
            on_left_spine = False
    if not on_left_spine:
        nodes.append(subtree_root(begin, end))
    nodes.reverse()
    return nodes


def _list_subtree_root(leaf_hashes: Sequence[bytes]) -> SubtreeRoot:
    def subtree_root(begin: int, end: int) -> bytes:
        return root(leaf_hashes[begin:end])

    return subtree_root


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree over all of ``leaf_hashes``.

    O(n) hashes: fine for one proof; for many, build a
    :class:`~handrail.audit.tree.MerkleTree` once.
    """
    return inclusion_path(index, len(leaf_hashes), _list_subtree_root(leaf_hashes))


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """The consistency proof from the tree over the first ``old_size`` leaves to the tree
    over all of ``leaf_hashes``. O(n) hashes, like :func:`inclusion_proof`."""
    return consistency_path(old_size, len(leaf_hashes), _list_subtree_root(leaf_hashes))


def _check_hashes(proof: Sequence[bytes]) -> str | None:
    for position, node in enumerate(proof):
        if len(node) != HASH_SIZE:
            return f"proof element {position} is {len(node)} bytes, not {HASH_SIZE}"
    return None


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root that ``proof`` implies for ``leaf_hash`` at ``index`` in a tree of ``size``
    (RFC 9162 2.1.3.2 steps 1-5, without the final comparison).

    Raises :class:`~handrail.errors.InclusionProofError` if the proof has the wrong
    length or shape for that position, whatever the hashes.
    """

    def fail(reason: str) -> InclusionProofError:
        return InclusionProofError(reason, index=index, size=size)

    if index < 0 or size < 0:
        raise fail("index and size must not be negative")
    if index >= size:
        raise fail("the index is not below the tree size")
    if len(leaf_hash) != HASH_SIZE:
        raise fail(f"the leaf hash is {len(leaf_hash)} bytes, not {HASH_SIZE}")
    bad = _check_hashes(proof)
    if bad:
        raise fail(bad)
    fn, sn = index, size - 1
    result = leaf_hash
    for sibling in proof:
        if sn == 0:
            raise fail(f"the proof is too long ({len(proof)} elements)")
        if fn & 1 or fn == sn:
            result = sha256(_NODE_PREFIX + sibling + result).digest()
            # A right-edge node with no right sibling moves up unchanged: skip those levels.
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            result = sha256(_NODE_PREFIX + result + sibling).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise fail(f"the proof is too short ({len(proof)} elements)")
    return result


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` whose root is
    ``root``; raise :class:`~handrail.errors.InclusionProofError` if not."""
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if computed != root:
        raise InclusionProofError(
            "the proof leads to another root (wrong leaf, index, size, proof or root)",
            index=index,
            size=size,
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``old_size`` with ``old_root`` is a prefix of the tree of
    ``new_size`` with ``new_root`` (RFC 9162 2.1.4.2); raise
    :class:`~handrail.errors.ConsistencyProofError` if not.

    Equal sizes need an empty proof and equal roots. A consistency proof from the empty
    tree would prove nothing (every tree extends it) and is refused; two empty trees are
    consistent only if both roots are :data:`EMPTY_ROOT`.
    """

    def fail(reason: str) -> ConsistencyProofError:
        return ConsistencyProofError(reason, old_size=old_size, new_size=new_size)

    if old_size < 0 or new_size < 0:
        raise fail("sizes must not be negative")
    if new_size < old_size:
        raise fail("the new tree is smaller than the old one")
    if old_size == new_size:
        if proof:
            raise fail("equal sizes need an empty proof")
        if old_size == 0 and not old_root == new_root == EMPTY_ROOT:
            raise fail("the root of an empty tree is the hash of the empty string")
        if old_root != new_root:
            raise fail("equal sizes but different roots")
        return
    if old_size == 0:
        raise fail("a consistency proof from the empty tree proves nothing")
    if not proof:
        raise fail("the proof is empty")
    bad = _check_hashes(proof)
    if bad:
        raise fail(bad)

    path = list(proof)
    if old_size & (old_size - 1) == 0:
        # The old tree is a complete subtree of the new one: its root is the first node.
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    old_hash = new_hash = path[0]
    for node in path[1:]:
        if sn == 0:
            raise fail(f"the proof is too long ({len(proof)} elements)")
        if fn & 1 or fn == sn:
            old_hash = sha256(_NODE_PREFIX + node + old_hash).digest()
            new_hash = sha256(_NODE_PREFIX + node + new_hash).digest()
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            new_hash = sha256(_NODE_PREFIX + new_hash + node).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise fail(f"the proof is too short ({len(proof)} elements)")
    if old_hash != old_root:
        raise fail("the proof does not lead to the old root")
    if new_hash != new_root:
        raise fail("the proof does not lead to the new root")
