"""The stored-node layout: integrating batches against the saved frontier builds exactly the
RFC 6962 tree, and proofs computed from stored nodes equal the in-memory tree's."""

from __future__ import annotations

import hashlib
import itertools

import pytest

from handrail.audit.compact import CompactRange
from handrail.audit.merkle import consistency_path, inclusion_path, leaf_hash, root
from handrail.audit.nodes import (
    NodeKey,
    decode_frontier,
    encode_frontier,
    fold,
    fold_proof,
    frontier_root,
    integrate,
    plan_proof,
    root_keys,
    subtree_keys,
)
from handrail.audit.tree import MerkleTree

LEAVES = [leaf_hash(b"leaf %d" % i) for i in range(70)]


def stored_tree(batches: list[int]) -> tuple[dict[NodeKey, bytes], int, list[bytes]]:
    """Integrate LEAVES in batches of the given sizes, as the sequencer does: keep only
    the frontier between batches (through its blob), store what each batch completes."""
    nodes: dict[NodeKey, bytes] = {}
    size, blob = 0, b""
    position = 0
    for count in batches:
        batch = LEAVES[position : position + count]
        for offset, digest in enumerate(batch):
            nodes[(0, position + offset)] = digest
        size, frontier, completed = integrate(size, decode_frontier(size, blob), batch)
        for level, index, digest in completed:
            assert (level, index) not in nodes  # a node is completed once
            nodes[(level, index)] = digest
        blob = encode_frontier(frontier)
        position += count
    return nodes, size, decode_frontier(size, blob)


@pytest.mark.parametrize("batches", [[1] * 70, [7] * 10, [3, 64, 3], [70], [5, 1, 2, 33, 29]])
def test_integrating_batches_builds_the_rfc_tree(batches: list[int]) -> None:
    nodes, size, frontier = stored_tree(batches)
    tree = MerkleTree(LEAVES)
    assert size == 70
    assert frontier_root(size, frontier) == root(LEAVES) == tree.root()
    reference = CompactRange()
    reference.extend(LEAVES)
    assert tuple(frontier) == reference.nodes
    for level in range(1, 7):
        for index in range(70 >> level):
            begin = index << level
            assert nodes[(level, index)] == tree.subtree_root(begin, begin + (1 << level))
    for size_then in range(1, 71):
        assert fold([nodes[k] for k in root_keys(size_then)]) == tree.root(size_then)


def test_proofs_from_stored_nodes_equal_the_trees() -> None:
    nodes, _, _ = stored_tree([9, 9, 9, 43])
    tree = MerkleTree(LEAVES)
    for size in (1, 2, 5, 8, 13, 32, 33, 70):
        for index in range(size):

            def path(sr, index=index, size=size):  # type: ignore[no-untyped-def]
                return inclusion_path(index, size, sr)

            wanted = plan_proof(path)
            assert wanted <= nodes.keys()
            assert len(wanted) <= (size.bit_length() + 1) ** 2
            assert fold_proof(path, nodes) == tree.inclusion_proof(index, size)
    for old, new in itertools.combinations((1, 3, 4, 8, 21, 64, 70), 2):

        def cpath(sr, old=old, new=new):  # type: ignore[no-untyped-def]
            return consistency_path(old, new, sr)

        assert fold_proof(cpath, nodes) == tree.consistency_proof(old, new)


def test_subtree_keys_cover_aligned_ranges_only() -> None:
    assert subtree_keys(0, 13) == [(3, 0), (2, 2), (0, 12)]
    assert subtree_keys(8, 12) == [(2, 2)]
    assert root_keys(0) == []
    with pytest.raises(ValueError, match="aligned"):
        subtree_keys(1, 3)
    with pytest.raises(ValueError, match="frontier"):
        integrate(3, [hashlib.sha256().digest()], [])
    with pytest.raises(ValueError, match="frontier"):
        decode_frontier(3, b"x" * 32)
