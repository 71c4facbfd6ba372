"""Offline verification of an exported audit bundle (:mod:`handrail.audit.bundle`).

:func:`verify_bundle` recomputes the Merkle root of the records at every signed
checkpoint's size and compares; it needs nothing but the bundle (and, ideally, the log's
public key obtained independently). The verdict is one :class:`VerifyCode`, usable as a
process exit code, plus the first sequence number in question and a message.

How each kind of tampering is reported (``seq`` is the first sequence number in
question, ``seq_end`` the end of the range in question, exclusive):

a record's bytes changed
    ``RECORD_ALTERED``: the root at the first checkpoint after it differs. A root cannot
    say which leaf changed, so ``seq`` .. ``seq_end`` spans the records between that
    checkpoint and the one before (checkpoints are signed per batch: one batch). If the
    change hits the record's own ``seq`` number, it is reported like an insertion.
a record deleted
    ``RECORD_MISSING``: the numbers jump (to one the log signed, and keep rising); ``seq``
    is the first one absent, ``seq_end`` the next one present. Deleting the last records
    is ``TRUNCATED``: nothing is out of place, the log just stops short.
a record inserted, or records reordered
    ``RECORD_ALTERED``: a number repeats or comes out of order; ``seq`` is the lower of
    the place where the order breaks and the number found there. A record appended after
    the latest checkpoint is ``RECORD_ALTERED`` at that checkpoint's size (no signature
    covers it), unless an unsigned tail is allowed. Reordered records whose numbers were
    rewritten to look in order are altered records, as above.
the tail cut off
    ``TRUNCATED``: ``seq`` is the first missing record, ``seq_end`` the size the latest
    checkpoint signed.
a checkpoint forged
    ``SIGNATURE_INVALID``: signed by another key than the trusted one, edited after
    signing, or naming another log's origin (``seq`` is ``None``).
an unreadable bundle
    ``MALFORMED``: not a bundle, a bad header, key or checkpoint text, or no checkpoint.

Order of checks: signatures first (nothing else can be trusted without them), then the
records in ``seq`` order, so the earliest problem is the one reported.

Exit codes skip 1 and 2 (a crash and a usage error) so that a script can tell them
apart from a verdict.
"""

from __future__ import annotations

import enum
import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from hashlib import sha256
from typing import BinaryIO

from handrail.audit.bundle import BundleHeader, read_bundle
from handrail.audit.checkpoint import Checkpoint, VerifyingKey, verify_checkpoint
from handrail.audit.leaf import leaf_seq
from handrail.audit.merkle import EMPTY_ROOT
from handrail.errors import BundleMalformed, CheckpointMalformed, SignatureInvalid

__all__ = [
    "VerifyCode",
    "VerifyResult",
    "verify_bundle",
    "verify_bundle_file",
    "verify_bundle_stream",
]


class VerifyCode(enum.IntEnum):
    """What :func:`verify_bundle` found; the value is the exit code of a verify command."""

    OK = 0
    RECORD_ALTERED = 3
    RECORD_MISSING = 4
    TRUNCATED = 5
    SIGNATURE_INVALID = 6
    MALFORMED = 7


@dataclass(frozen=True)
class VerifyResult:
    """The verdict on one bundle.

    ``seq`` is the first sequence number in question (``None`` for a signature or format
    problem, and when all is well); ``seq_end`` ends the range in question (exclusive).
    ``verified_size`` counts the records covered by checkpoints that matched, in order;
    ``unsigned`` the records after the latest checkpoint (an error unless allowed).
    ``key`` is the key the checkpoints were checked with, ``key_trusted`` whether the
    caller supplied it (rather than the bundle itself).
    """

    code: VerifyCode
    message: str
    seq: int | None = None
    seq_end: int | None = None
    records: int = 0
    checkpoints: int = 0
    verified_size: int = 0
    unsigned: int = 0
    key: VerifyingKey | None = None
    key_trusted: bool = False

    @property
    def ok(self) -> bool:
        """Whether the bundle verified."""
        return self.code is VerifyCode.OK

    @property
    def kind(self) -> str:
        """The verdict's name, e.g. ``"RECORD_MISSING"``."""
        return self.code.name


def verify_bundle(
    data: bytes,
    *,
    trusted_key: VerifyingKey | None = None,
    allow_unsigned_tail: bool = False,
) -> VerifyResult:
    """Verify an exported bundle (the bytes of the file) and say what, if anything, is wrong.

    With ``trusted_key`` the checkpoints must be signed by it; without, by the key the
    bundle names, which proves only that the bundle is self-consistent (someone who
    rewrote the records could also have re-signed them with a key of their own): the
    result's ``key`` is then the one to compare with the log's published key. Records
    after the latest checkpoint are an error (``RECORD_ALTERED``: nothing vouches for
    them) unless ``allow_unsigned_tail``, for a live log whose tail is not signed yet.
    """
    try:
        header, leaves = read_bundle(data)
    except BundleMalformed as exc:
        return VerifyResult(VerifyCode.MALFORMED, str(exc))
    return _verify(header, iter(leaves), trusted_key, allow_unsigned_tail)


def verify_bundle_stream(
    stream: BinaryIO,
    *,
    trusted_key: VerifyingKey | None = None,
    allow_unsigned_tail: bool = False,
) -> VerifyResult:
    """:func:`verify_bundle` on a binary stream, read line by line: memory stays flat
    whatever the size of the log (a little slower than verifying bytes in memory)."""
    try:
        header = BundleHeader.from_json(stream.readline())
    except BundleMalformed as exc:
        return VerifyResult(VerifyCode.MALFORMED, str(exc))
    return _verify(header, _lines(stream), trusted_key, allow_unsigned_tail)


def verify_bundle_file(
    path: str | os.PathLike[str],
    *,
    trusted_key: VerifyingKey | None = None,
    allow_unsigned_tail: bool = False,
) -> VerifyResult:
    """:func:`verify_bundle_stream` on the bundle file at ``path``."""
    with open(path, "rb") as stream:
        return verify_bundle_stream(
            stream, trusted_key=trusted_key, allow_unsigned_tail=allow_unsigned_tail
        )


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    for line in stream:
        yield line[:-1] if line.endswith(b"\n") else line


def _verify(
    header: BundleHeader,
    leaves: Iterator[bytes],
    trusted_key: VerifyingKey | None,
    allow_unsigned_tail: bool,
) -> VerifyResult:
    key = trusted_key or header.public_key
    checked = _check_signatures(header, key)
    if isinstance(checked, _Verdict):
        verdict = replace(checked, records=_count(leaves))
    else:
        verdict = _check_records(leaves, checked, allow_unsigned_tail)
    return VerifyResult(
        verdict.code,
        verdict.message,
        verdict.seq,
        verdict.seq_end,
        records=verdict.records,
        checkpoints=len(header.checkpoints),
        verified_size=verdict.verified_size,
        unsigned=verdict.unsigned,
        key=key,
        key_trusted=trusted_key is not None,
    )


def _count(leaves: Iterable[bytes]) -> int:
    return sum(1 for _ in leaves)


@dataclass(frozen=True)
class _Verdict:
    code: VerifyCode
    message: str
    seq: int | None = None
    seq_end: int | None = None
    verified_size: int = 0
    unsigned: int = 0
    records: int = 0


def _check_signatures(header: BundleHeader, key: VerifyingKey) -> list[Checkpoint] | _Verdict:
    if not header.checkpoints:
        return _Verdict(
            VerifyCode.MALFORMED,
            "the bundle holds no signed checkpoint, so nothing vouches for its records; "
            "export it again once the log has signed one",
        )
    checkpoints: list[Checkpoint] = []
    for position, note in enumerate(header.checkpoints):
        try:
            checkpoint = verify_checkpoint(note, key)
        except CheckpointMalformed as exc:
            return _Verdict(VerifyCode.MALFORMED, f"checkpoint {position}: {exc}")
        except SignatureInvalid as exc:
            return _Verdict(VerifyCode.SIGNATURE_INVALID, f"checkpoint {position}: {exc}")
        if checkpoint.origin != header.origin:
            return _Verdict(
                VerifyCode.SIGNATURE_INVALID,
                f"checkpoint {position} is signed for the log {checkpoint.origin!r}, "
                f"but the bundle is the log {header.origin!r}",
            )
        if checkpoint.size == 0 and checkpoint.root_hash != EMPTY_ROOT:
            return _Verdict(
                VerifyCode.SIGNATURE_INVALID,
                f"checkpoint {position} signs a root for the empty log that is not the "
                "empty tree's root: it cannot be a checkpoint of this log",
            )
        checkpoints.append(checkpoint)
    checkpoints.sort(key=lambda c: c.size)
    for earlier, later in itertools.pairwise(checkpoints):
        if earlier.size == later.size and earlier.root_hash != later.root_hash:
            return _Verdict(
                VerifyCode.SIGNATURE_INVALID,
                f"the key signed two different roots for size {later.size}: the log was "
                "forked (rewritten and re-signed), or the key is compromised",
            )
    return checkpoints


def _check_records(
    leaves: Iterator[bytes], checkpoints: list[Checkpoint], allow_unsigned_tail: bool
) -> _Verdict:
    """The hot loop: hash every leaf into a compact range (see
    :mod:`handrail.audit.compact`, inlined here for speed) and compare the root at every
    checkpoint size, checking on the way that leaf ``i`` says ``seq`` ``i``. Reads
    ``leaves`` once, front to back, to the end (to count them)."""
    signed = checkpoints[-1].size
    nodes: list[bytes] = []
    push, pop = nodes.append, nodes.pop
    verified = 0  # leaves [0, verified) match a checkpoint
    position = 0
    for checkpoint in checkpoints:
        for leaf in itertools.islice(leaves, checkpoint.size - position):
            if not leaf.endswith(b',"seq":%d}' % position):
                return _order_break(leaf, leaves, position, verified, signed)
            node = sha256(b"\x00" + leaf).digest()
            carry = position
            while carry & 1:
                node = sha256(b"\x01" + pop() + node).digest()
                carry >>= 1
            push(node)
            position += 1
        if position < checkpoint.size:
            break  # the records ran out
        root = nodes[-1] if nodes else EMPTY_ROOT
        for node in reversed(nodes[:-1]):
            root = sha256(b"\x01" + node + root).digest()
        if root != checkpoint.root_hash:
            return _Verdict(
                VerifyCode.RECORD_ALTERED,
                f"the records {_span(verified, checkpoint.size - 1)} are not those signed: "
                f"their root differs from the checkpoint of size {checkpoint.size}, so at "
                "least one of them was altered (or records were reordered or replaced)",
                verified,
                checkpoint.size,
                verified_size=verified,
                records=position + _count(leaves),
            )
        verified = checkpoint.size

    if position < signed:
        return _Verdict(
            VerifyCode.TRUNCATED,
            f"the log is cut short: the records end before seq {position}, but a checkpoint "
            f"signed {signed} records; {_span(position, signed - 1)} are missing",
            position,
            signed,
            verified_size=verified,
            records=position,
        )
    unsigned = _count(leaves)
    if unsigned and not allow_unsigned_tail:
        return _Verdict(
            VerifyCode.RECORD_ALTERED,
            f"{unsigned} record(s) from seq {signed} on come after the latest checkpoint "
            f"(size {signed}): no signature covers them (inserted after signing?). Export "
            "the log as of its latest checkpoint, or allow an unsigned tail",
            signed,
            signed + unsigned,
            verified_size=verified,
            unsigned=unsigned,
            records=signed + unsigned,
        )
    tail = f"; {unsigned} later record(s) are not signed yet, so not verified" if unsigned else ""
    return _Verdict(
        VerifyCode.OK,
        f"all {signed} signed records verify against {len(checkpoints)} checkpoint(s){tail}",
        verified_size=verified,
        unsigned=unsigned,
        records=signed + unsigned,
    )


def _span(first: int, last: int) -> str:
    return f"seq {first}" if first == last else f"seq {first} to {last}"


def _order_break(
    leaf: bytes, rest: Iterator[bytes], position: int, verified: int, signed: int
) -> _Verdict:
    """Name what happened at ``position``, where ``leaf`` does not say ``seq`` ``position``
    (``rest`` are the leaves after it): a gap (the number found is signed and every later
    one still rises) or a repeat, reordering or insertion."""
    records = position + 1
    found = leaf_seq(leaf)
    if found is None:
        return _Verdict(
            VerifyCode.RECORD_ALTERED,
            f"the record in the place of seq {position} is not a well-formed leaf "
            "(its bytes were altered)",
            position,
            position + 1,
            verified_size=verified,
            records=records + _count(rest),
        )
    rising = position < found < signed
    previous = found
    if rising:
        for later in rest:
            records += 1
            seq = leaf_seq(later)
            if seq is None or seq <= previous:
                rising = False
                break
            previous = seq
    records += _count(rest)
    if rising:
        return _Verdict(
            VerifyCode.RECORD_MISSING,
            f"records are missing: after seq {position - 1} comes seq {found}, so "
            f"{_span(position, found - 1)} were deleted"
            if position
            else f"records are missing: the log starts at seq {found}, not 0",
            position,
            found,
            verified_size=verified,
            records=records,
        )
    first = min(position, found)
    what = "repeats an earlier seq" if found < position else "is out of order"
    return _Verdict(
        VerifyCode.RECORD_ALTERED,
        f"the record in the place of seq {position} says seq {found} and {what}: "
        "records were inserted, duplicated or reordered",
        first,
        first + 1,
        verified_size=verified,
        records=records,
    )
