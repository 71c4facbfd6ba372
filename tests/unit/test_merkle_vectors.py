"""RFC 6962 Merkle proofs: the public test vectors, a reference transcription of the RFC,
and properties over random trees (proofs verify; any single change to one is rejected)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from handrail.audit import merkle
from handrail.audit.compact import CompactRange
from handrail.audit.tree import MerkleTree
from handrail.errors import ConsistencyProofError, InclusionProofError, ProofError

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "rfc6962"


def _vector_files(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json")) if VECTORS.is_dir() else []


def _id(path: Path) -> str:
    return str(path.relative_to(VECTORS))


def _b64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def _load(path: Path) -> dict[str, Any]:
    vector: dict[str, Any] = json.loads(path.read_text())
    return vector


def test_vectors_are_present() -> None:
    """The vectors sit beside the repository (``../shared``); without them the vector
    tests would silently do nothing, so CI fails instead of skipping."""
    if not VECTORS.is_dir():
        message = (
            f"RFC 6962 test vectors not found at {VECTORS} (expected ../shared beside the repo)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    assert _vector_files("inclusion"), "no inclusion vectors"
    assert _vector_files("consistency"), "no consistency vectors"


@pytest.mark.parametrize("path", _vector_files("inclusion"), ids=_id)
def test_inclusion_vector(path: Path) -> None:
    vector = _load(path)
    args = (
        _b64(vector["leafHash"]),
        vector["leafIdx"],
        vector["treeSize"],
        [_b64(node) for node in vector["proof"] or []],
        _b64(vector["root"]),
    )
    if vector["wantErr"]:
        with pytest.raises(InclusionProofError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("path", _vector_files("consistency"), ids=_id)
def test_consistency_vector(path: Path) -> None:
    vector = _load(path)
    args = (
        vector["size1"],
        vector["size2"],
        _b64(vector["root1"]),
        _b64(vector["root2"]),
        [_b64(node) for node in vector["proof"] or []],
    )
    if vector["wantErr"]:
        with pytest.raises(ConsistencyProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


# -- A transcription of the RFC 6962 definitions (section 2.1), recursive and slow. --


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaves: Sequence[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = _k(n)
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def ref_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [ref_mth(leaves)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], complete), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


def leaves_of(size: int, salt: bytes = b"") -> list[bytes]:
    return [merkle.leaf_hash(salt + i.to_bytes(4, "big")) for i in range(size)]


def test_hashes_are_domain_separated() -> None:
    assert merkle.leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert merkle.node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert merkle.root([]) == merkle.EMPTY_ROOT == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("size", range(0, 40))
def test_matches_the_rfc_definitions_exhaustively(size: int) -> None:
    leaves = leaves_of(size)
    tree = MerkleTree(leaves)
    assert merkle.root(leaves) == ref_mth(leaves) == tree.root()
    for index in range(size):
        expected = ref_path(index, leaves)
        assert merkle.inclusion_proof(leaves, index) == expected
        assert tree.inclusion_proof(index) == expected
        merkle.verify_inclusion(leaves[index], index, size, expected, ref_mth(leaves))
    for old in range(1, size + 1):
        expected = ref_subproof(old, leaves, True)
        assert merkle.consistency_proof(leaves, old) == expected
        assert tree.consistency_proof(old) == expected
        merkle.verify_consistency(old, size, ref_mth(leaves[:old]), ref_mth(leaves), expected)


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[list[bytes], int]:
    size = draw(st.integers(1, 300))
    salt = draw(st.binary(min_size=1, max_size=8))
    return leaves_of(size, salt), draw(st.integers(0, size - 1))


@st.composite
def tree_and_sizes(draw: st.DrawFn) -> tuple[list[bytes], int]:
    size = draw(st.integers(2, 300))
    salt = draw(st.binary(min_size=1, max_size=8))
    return leaves_of(size, salt), draw(st.integers(1, size - 1))


def _flip(proof: list[bytes], element: int, byte: int, bit: int) -> list[bytes]:
    element %= len(proof)
    node = bytearray(proof[element])
    node[byte % len(node)] ^= 1 << bit
    return [*proof[:element], bytes(node), *proof[element + 1 :]]


@settings(max_examples=150, deadline=None)
@given(tree_and_index(), st.data())
def test_inclusion_proofs_verify_and_every_single_change_is_rejected(
    case: tuple[list[bytes], int], data: st.DataObject
) -> None:
    leaves, index = case
    size = len(leaves)
    tree = MerkleTree(leaves)
    root = tree.root()
    proof = tree.inclusion_proof(index)
    assert proof == merkle.inclusion_proof(leaves, index)
    assert len(proof) <= (size - 1).bit_length()
    merkle.verify_inclusion(leaves[index], index, size, proof, root)

    def rejected(leaf: bytes, at: int, in_size: int, path: list[bytes], against: bytes) -> None:
        with pytest.raises(InclusionProofError):
            merkle.verify_inclusion(leaf, at, in_size, path, against)

    if proof:
        element = data.draw(st.integers(0, len(proof) - 1), label="element")
        byte, bit = data.draw(st.integers(0, 31)), data.draw(st.integers(0, 7))
        rejected(leaves[index], index, size, _flip(proof, element, byte, bit), root)
        rejected(leaves[index], index, size, proof[:-1], root)
        rejected(leaves[index], index, size, proof[1:], root)
    extra = data.draw(st.binary(min_size=32, max_size=32), label="extra")
    rejected(leaves[index], index, size, [*proof, extra], root)
    rejected(leaves[index], index, size, [extra, *proof], root)
    rejected(bytes(32), index, size, proof, root)
    other = data.draw(st.integers(0, size + 3).filter(lambda i: i != index), label="index")
    rejected(leaves[index], other, size, proof, root)
    # Another size, against the root a checkpoint would sign for that size.
    # (A proof for one size can fit another too; what ties a root to its size is the
    # signed checkpoint, so the claim to reject is "leaf in the tree of that other size".)
    grown = MerkleTree([*leaves, *leaves_of(40, b"more")])
    other_size = data.draw(st.integers(index + 1, size + 40).filter(lambda s: s != size))
    if grown.inclusion_proof(index, other_size) != proof:
        rejected(leaves[index], index, other_size, proof, grown.root(other_size))


@settings(max_examples=150, deadline=None)
@given(tree_and_sizes(), st.data())
def test_consistency_proofs_verify_and_every_single_change_is_rejected(
    case: tuple[list[bytes], int], data: st.DataObject
) -> None:
    leaves, old = case
    size = len(leaves)
    tree = MerkleTree(leaves)
    old_root, new_root = tree.root(old), tree.root()
    proof = tree.consistency_proof(old)
    assert proof == merkle.consistency_proof(leaves, old)
    assert len(proof) <= 2 * size.bit_length()
    merkle.verify_consistency(old, size, old_root, new_root, proof)

    def rejected(m: int, n: int, r1: bytes, r2: bytes, path: list[bytes]) -> None:
        with pytest.raises(ConsistencyProofError):
            merkle.verify_consistency(m, n, r1, r2, path)

    element = data.draw(st.integers(0, len(proof) - 1), label="element")
    byte, bit = data.draw(st.integers(0, 31)), data.draw(st.integers(0, 7))
    rejected(old, size, old_root, new_root, _flip(proof, element, byte, bit))
    rejected(old, size, old_root, new_root, proof[:-1])
    rejected(old, size, old_root, new_root, proof[1:])
    extra = data.draw(st.binary(min_size=32, max_size=32), label="extra")
    rejected(old, size, old_root, new_root, [*proof, extra])
    rejected(old, size, old_root, new_root, [extra, *proof])
    rejected(old, size, new_root, old_root, proof)
    rejected(old, size, old_root, extra, proof)
    rejected(size, old, new_root, old_root, proof)
    # Another old or new size, each with the root a checkpoint would sign for it.
    grown = MerkleTree([*leaves, *leaves_of(40, b"more")])
    other_old = data.draw(st.integers(1, size).filter(lambda m: m != old), label="old")
    if grown.consistency_proof(other_old, size) != proof:
        rejected(other_old, size, grown.root(other_old), new_root, proof)
    other_new = data.draw(st.integers(old, size + 40).filter(lambda n: n != size), label="new")
    if grown.consistency_proof(old, other_new) != proof:
        rejected(old, other_new, old_root, grown.root(other_new), proof)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 600), st.integers(0, 600), st.binary(max_size=8))
def test_compact_range_tracks_the_root_and_resumes(first: int, second: int, salt: bytes) -> None:
    leaves = leaves_of(first + second, salt)
    compact = CompactRange()
    compact.extend(leaves[:first])
    assert compact.size == first
    assert len(compact.nodes) == first.bit_count()
    assert compact.root() == merkle.root(leaves[:first])
    resumed = CompactRange.restore(compact.size, compact.nodes)
    for leaf in leaves[first:]:
        resumed.append(leaf)
    assert resumed.root() == merkle.root(leaves)
    assert compact.root() == merkle.root(leaves[:first]), "restore copied the nodes"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 70), min_size=1, max_size=6), st.data())
def test_tree_grown_in_batches_answers_for_every_earlier_size(
    batches: list[int], data: st.DataObject
) -> None:
    leaves = leaves_of(sum(batches))
    tree = MerkleTree()
    done = 0
    for batch in batches:
        tree.extend(leaves[done : done + batch])
        done += batch
        assert tree.root() == merkle.root(leaves[:done])
    assume(done > 0)
    size = data.draw(st.integers(1, done), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    old = data.draw(st.integers(1, size), label="old")
    assert tree.inclusion_proof(index, size) == ref_path(index, leaves[:size])
    assert tree.consistency_proof(old, size) == ref_subproof(old, leaves[:size], True)
    begin = data.draw(st.integers(0, size), label="begin")
    assert tree.subtree_root(begin, size) == ref_mth(leaves[begin:size])


def test_bad_arguments_are_refused_not_guessed() -> None:
    leaves = leaves_of(5)
    tree = MerkleTree(leaves)
    with pytest.raises(ValueError, match="not in a tree"):
        merkle.inclusion_proof(leaves, 5)
    with pytest.raises(ValueError, match="no consistency proof"):
        merkle.consistency_proof(leaves, 6)
    with pytest.raises(ValueError, match="leaves"):
        tree.inclusion_proof(0, 6)
    with pytest.raises(ValueError, match="32 bytes"):
        tree.append(b"short")
    with pytest.raises(ValueError, match="frontier nodes"):
        CompactRange.restore(5, [bytes(32)])
    with pytest.raises(InclusionProofError, match="negative"):
        merkle.verify_inclusion(leaves[0], -1, 5, [], merkle.root(leaves))
    with pytest.raises(InclusionProofError, match="not 32") as caught:
        merkle.verify_inclusion(leaves[0], 0, 5, [b"x"] * 3, merkle.root(leaves))
    assert (caught.value.index, caught.value.size) == (0, 5)
    assert isinstance(caught.value, ProofError)
    with pytest.raises(ConsistencyProofError, match="empty tree proves nothing"):
        merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, merkle.root(leaves), [])
    merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [])
    assert tree.consistency_proof(0) == []
