"""Offline bundle verification: every single tampering of a valid bundle is caught, and
named for what it is (invariant 6: changing, deleting, inserting or reordering any audit
record is detected)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handrail.audit.bundle import BUNDLE_FORMAT, BundleHeader, encode_bundle, write_bundle
from handrail.audit.checkpoint import Checkpoint, SigningKey, parse_checkpoint, sign_checkpoint
from handrail.audit.leaf import encode_leaf
from handrail.audit.merkle import leaf_hash
from handrail.audit.tree import MerkleTree
from handrail.audit.verify import (
    VerifyCode,
    VerifyResult,
    verify_bundle,
    verify_bundle_stream,
)

ORIGIN = "audit.example.com/log"
KEY = SigningKey.from_private_bytes(ORIGIN, bytes(range(32)))
IMPOSTOR = SigningKey.from_private_bytes(ORIGIN, bytes(range(1, 33)))

records = st.fixed_dictionaries(
    {
        "tool": st.sampled_from(["send_email", "refund", "update_crm"]),
        "task_id": st.text(min_size=1, max_size=8),
        "outcome": st.sampled_from(["ok", "failed", "denied"]),
    },
    optional={
        "seq": st.integers(0, 99),  # a field named seq inside the record must not confuse
        "params": st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=6)),
        "note": st.text(max_size=30),
    },
)


def checkpoints_for(
    leaves: Sequence[bytes], sizes: Sequence[int], key: SigningKey = KEY
) -> tuple[str, ...]:
    tree = MerkleTree(leaf_hash(leaf) for leaf in leaves)
    return tuple(sign_checkpoint(Checkpoint(ORIGIN, size, tree.root(size)), key) for size in sizes)


def bundle_of(leaves: Sequence[bytes], notes: Sequence[str]) -> bytes:
    """The bundle's bytes, written by hand: a tampered leaf may hold a newline, which the
    writer would refuse but an editor would not."""
    header = BundleHeader(ORIGIN, KEY.public_key, tuple(notes)).to_json()
    return b"\n".join([header, *leaves]) + b"\n"


def verify(data: bytes, **options: Any) -> VerifyResult:
    """Verify in memory and streaming; both must give the same verdict."""
    result = verify_bundle(data, trusted_key=KEY.public_key, **options)
    streamed = verify_bundle_stream(io.BytesIO(data), trusted_key=KEY.public_key, **options)
    assert streamed == result
    return result


@st.composite
def signed_logs(draw: st.DrawFn) -> tuple[list[bytes], tuple[str, ...]]:
    """Leaves of a log and its checkpoints: some earlier sizes, and always the last."""
    content = draw(st.lists(records, min_size=1, max_size=40))
    leaves = [encode_leaf(seq, record) for seq, record in enumerate(content)]
    sizes = draw(st.sets(st.integers(0, len(leaves) - 1), max_size=4))
    return leaves, checkpoints_for(leaves, [*sorted(sizes), len(leaves)])


@settings(max_examples=60, deadline=None)
@given(signed_logs())
def test_an_untouched_bundle_verifies(log: tuple[list[bytes], tuple[str, ...]]) -> None:
    leaves, notes = log
    result = verify(bundle_of(leaves, notes))
    assert result.code is VerifyCode.OK, result.message
    assert result.ok
    assert (result.records, result.verified_size, result.seq) == (len(leaves), len(leaves), None)
    assert result.key_trusted


MUTATIONS = ["edit", "delete", "insert", "swap", "truncate", "resign"]


@settings(max_examples=400, deadline=None)
@given(signed_logs(), st.sampled_from(MUTATIONS), st.data())
def test_every_single_tampering_is_detected_and_named(
    log: tuple[list[bytes], tuple[str, ...]], mutation: str, data: st.DataObject
) -> None:
    leaves, notes = log
    size = len(leaves)
    tampered, checkpoints = list(leaves), list(notes)
    index = data.draw(st.integers(0, size - 1), label="index")

    if mutation == "edit":
        leaf = bytearray(tampered[index])
        at = data.draw(st.integers(0, len(leaf) - 1), label="byte")
        leaf[at] = data.draw(st.integers(0, 255).filter(lambda b: b != leaf[at]), label="to")
        tampered[index] = bytes(leaf)
        expected, seq = VerifyCode.RECORD_ALTERED, None
    elif mutation == "delete":
        del tampered[index]
        last = index == size - 1  # nothing out of place: the log just stops short
        expected = VerifyCode.TRUNCATED if last else VerifyCode.RECORD_MISSING
        seq = index
    elif mutation == "insert":
        at = data.draw(st.integers(0, size), label="at")
        claimed = data.draw(st.integers(0, size + 2), label="claimed seq")
        fake = data.draw(
            st.sampled_from(leaves) | records.map(lambda r: encode_leaf(claimed, r)),
            label="inserted",
        )
        tampered.insert(at, fake)
        expected, seq = VerifyCode.RECORD_ALTERED, None
    elif mutation == "swap":
        if size < 2:
            return
        other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index), label="other")
        first, second = sorted((index, other))
        tampered[first], tampered[second] = tampered[second], tampered[first]
        expected, seq = VerifyCode.RECORD_ALTERED, first
    elif mutation == "truncate":
        tampered = tampered[:index]
        expected, seq = VerifyCode.TRUNCATED, index
    else:  # resign
        which = data.draw(st.integers(0, len(checkpoints) - 1), label="checkpoint")
        checkpoints[which] = sign_checkpoint(parse_checkpoint(checkpoints[which]), IMPOSTOR)
        expected, seq = VerifyCode.SIGNATURE_INVALID, None

    data = bundle_of(tampered, checkpoints)
    result = verify(data)
    assert result.code is expected, (mutation, result.message)
    assert not result.ok
    assert result.message
    assert result.records == data.count(b"\n") - 1  # every line after the header
    if seq is not None:
        assert result.seq == seq, result.message
    elif expected is VerifyCode.RECORD_ALTERED:
        # Never after the first place where the bundle differs from the log (an inserted
        # copy of its neighbour differs only from the next place on).
        first_difference = next(
            i for i, leaf in enumerate(tampered) if i >= size or leaf != leaves[i]
        )
        assert result.seq is not None
        assert result.seq <= first_difference, result.message


@settings(max_examples=60, deadline=None)
@given(signed_logs(), st.data())
def test_deleting_a_record_names_the_gap(
    log: tuple[list[bytes], tuple[str, ...]], data: st.DataObject
) -> None:
    leaves, notes = log
    if len(leaves) < 3:
        return
    first = data.draw(st.integers(0, len(leaves) - 3), label="first")
    count = data.draw(st.integers(1, len(leaves) - 1 - first), label="count")
    result = verify(bundle_of(leaves[:first] + leaves[first + count :], notes))
    assert result.code is VerifyCode.RECORD_MISSING
    assert (result.seq, result.seq_end) == (first, first + count)


@settings(max_examples=60, deadline=None)
@given(signed_logs(), records)
def test_a_rewritten_log_re_signed_by_an_impostor(
    log: tuple[list[bytes], tuple[str, ...]], replacement: dict[str, Any]
) -> None:
    """Someone who rewrites a record, recomputes the roots and signs with their own key
    (even swapping the key in the header) is caught against the trusted key; without one,
    the bundle is only self-consistent, and the result shows which key that was."""
    leaves, notes = log
    rewritten = [encode_leaf(0, replacement), *leaves[1:]]
    sizes = [parse_checkpoint(note).size for note in notes]
    forged = checkpoints_for(rewritten, sizes, key=IMPOSTOR)
    data = encode_bundle(BundleHeader(ORIGIN, IMPOSTOR.public_key, forged), rewritten)
    assert verify(data).code is VerifyCode.SIGNATURE_INVALID
    self_consistent = verify_bundle(data)
    assert self_consistent.ok
    assert not self_consistent.key_trusted
    assert self_consistent.key == IMPOSTOR.public_key != KEY.public_key


def test_unsigned_tail_is_an_error_unless_allowed() -> None:
    leaves = [encode_leaf(seq, {"n": seq}) for seq in range(10)]
    data = bundle_of(leaves, checkpoints_for(leaves, [4, 8]))
    strict = verify(data)
    assert strict.code is VerifyCode.RECORD_ALTERED
    assert (strict.seq, strict.seq_end, strict.unsigned) == (8, 10, 2)
    assert "after the latest checkpoint" in strict.message
    live = verify(data, allow_unsigned_tail=True)
    assert live.ok
    assert (live.verified_size, live.unsigned) == (8, 2)
    assert "not signed yet" in live.message


def test_an_altered_record_is_localised_to_its_batch() -> None:
    leaves = [encode_leaf(seq, {"n": seq}) for seq in range(30)]
    notes = checkpoints_for(leaves, [10, 20, 30])
    leaves[14] = encode_leaf(14, {"n": -14})
    result = verify(bundle_of(leaves, notes))
    assert result.code is VerifyCode.RECORD_ALTERED
    assert (result.seq, result.seq_end, result.verified_size) == (10, 20, 10)
    assert "seq 10 to 19" in result.message


@pytest.mark.parametrize("at", [0, 5, -2, -1])
def test_a_newline_typed_into_a_record_is_an_alteration(at: int) -> None:
    leaves = [encode_leaf(seq, {"n": seq, "text": "hello world"}) for seq in range(4)]
    notes = checkpoints_for(leaves, [4])
    leaf = bytearray(leaves[2])
    leaf[at] = ord("\n")
    leaves[2] = bytes(leaf)
    result = verify(bundle_of(leaves, notes))
    assert result.code is VerifyCode.RECORD_ALTERED, result.message
    assert result.seq == 2


def test_streaming_reads_the_same_lines() -> None:
    leaves = [encode_leaf(seq, {"n": seq}) for seq in range(7)]
    data = bundle_of(leaves, checkpoints_for(leaves, [3, 7]))
    for variant in (data, data.rstrip(b"\n"), data + b"\n"):
        assert verify_bundle_stream(io.BytesIO(variant)) == verify_bundle(variant)
    assert verify_bundle_stream(io.BytesIO(b"")).code is VerifyCode.MALFORMED


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"not json\n", "JSON header"),
        (b"[]\n", "JSON object"),
        (b'{"format": "something-else/9"}\n', "not a handrail-audit-bundle/1"),
        (f'{{"format": "{BUNDLE_FORMAT}", "origin": "o"}}\n'.encode(), "public_key"),
    ],
)
def test_unreadable_bundles_are_malformed(data: bytes, fragment: str) -> None:
    result = verify_bundle(data)
    assert result.code is VerifyCode.MALFORMED
    assert fragment in result.message


def test_malformed_checkpoint_or_none_at_all() -> None:
    leaves = [encode_leaf(0, {})]
    assert verify(bundle_of(leaves, [])).code is VerifyCode.MALFORMED
    assert verify(bundle_of(leaves, ["garbage"])).code is VerifyCode.MALFORMED


def test_a_checkpoint_of_another_log_is_not_accepted() -> None:
    leaves = [encode_leaf(0, {})]
    note = sign_checkpoint(Checkpoint("other.example/log", 1, leaf_hash(leaves[0])), KEY)
    result = verify(bundle_of(leaves, [note]))
    assert result.code is VerifyCode.SIGNATURE_INVALID
    assert "other.example/log" in result.message


def test_two_roots_for_one_size_is_a_fork() -> None:
    leaves = [encode_leaf(seq, {"n": seq}) for seq in range(6)]
    forked = [*leaves[:3], *(encode_leaf(seq, {"n": -seq}) for seq in range(3, 6))]
    notes = (*checkpoints_for(leaves, [0, 6]), *checkpoints_for(forked, [6]))
    result = verify(bundle_of(leaves, notes))
    assert result.code is VerifyCode.SIGNATURE_INVALID
    assert "two different roots for size 6" in result.message
    empty = sign_checkpoint(Checkpoint(ORIGIN, 0, leaf_hash(b"")), KEY)
    assert verify(bundle_of(leaves, [empty, notes[1]])).code is VerifyCode.SIGNATURE_INVALID


def test_exit_codes_are_distinct_and_avoid_crash_and_usage_codes() -> None:
    codes = [int(code) for code in VerifyCode]
    assert len(set(codes)) == len(codes) == 6
    assert VerifyCode.OK == 0
    assert not {1, 2} & set(codes)


def test_written_and_encoded_bundles_are_the_same_bytes() -> None:
    leaves = [encode_leaf(seq, {"n": seq}) for seq in range(5)]
    header = BundleHeader(ORIGIN, KEY.public_key, checkpoints_for(leaves, [5]))
    stream = io.BytesIO()
    assert write_bundle(stream, header, leaves) == 5
    assert stream.getvalue() == encode_bundle(header, leaves)
    assert verify(stream.getvalue().rstrip(b"\n")).ok, "the final newline is optional"
    with pytest.raises(ValueError, match="newline"):
        encode_bundle(header, [b"two\nlines"])
