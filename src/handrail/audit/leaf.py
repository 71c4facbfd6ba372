"""The canonical bytes of an audit log leaf: one record and its sequence number.

A leaf is the canonical JSON of ``{"record": <the record's fields>, "seq": <n>}``:
object keys sorted, no whitespace, UTF-8 (non-ASCII characters as themselves, not
``\\u`` escapes), integers in decimal, no NaN or infinity. Because ``"record"`` sorts
before ``"seq"``, every leaf ends with ``,"seq":<n>}``, so a verifier reads the sequence
number without parsing the record (:func:`leaf_seq`), and a raw newline never occurs in a
leaf (JSON escapes it inside strings), so leaves can be stored one per line.

``seq`` is the leaf's index in the Merkle tree: 0, 1, 2, ... with no gaps. The record's
own fields are the caller's (a tool call's compliance view, digests or salted
commitments of its raw payloads, ...); the encoding only fixes their bytes. Floats are
written as Python's shortest round-trip form; prefer integers and strings in records
(durations in microseconds, amounts in minor units) so other languages agree on bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from handrail.errors import SerializationError

__all__ = ["canonical_json", "decode_leaf", "encode_leaf", "leaf_seq"]

_SEQ_MARK = b',"seq":'


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: Any) -> bytes:
    """``value`` as canonical JSON bytes: sorted keys, no whitespace, UTF-8."""
    try:
        text = _CANONICAL.encode(value)
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"an audit record must be plain JSON (str keys, no NaN): {exc}",
            type_name=type(value).__name__,
        ) from exc
    return text.encode("utf-8")


def encode_leaf(seq: int, record: Mapping[str, Any]) -> bytes:
    """The canonical leaf bytes of ``record`` at index ``seq`` of the log."""
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ValueError(f"seq is a non-negative integer, not {seq!r}")
    if any(not isinstance(key, str) for key in record):
        raise SerializationError("audit record keys must be strings")
    return canonical_json({"record": dict(record), "seq": seq})


def leaf_seq(leaf: bytes) -> int | None:
    """The ``seq`` at the end of a leaf, read without parsing the record; ``None`` if the
    bytes do not end the way :func:`encode_leaf` ends them."""
    mark = leaf.rfind(_SEQ_MARK)
    if mark < 0 or leaf[-1:] != b"}":
        return None
    digits = leaf[mark + len(_SEQ_MARK) : -1]
    if not digits.isdigit() or (digits[:1] == b"0" and len(digits) > 1):
        return None
    return int(digits)


def decode_leaf(leaf: bytes) -> tuple[int, dict[str, Any]]:
    """``(seq, record)`` from canonical leaf bytes; ``ValueError`` if the bytes are not a
    leaf exactly as :func:`encode_leaf` writes it (so a decoded record re-encodes to the
    same bytes, and the same hash)."""
    try:
        value = json.loads(leaf.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a JSON leaf: {exc}") from exc
    if (
        not isinstance(value, dict)
        or set(value) != {"record", "seq"}
        or not isinstance(value["record"], dict)
        or isinstance(value["seq"], bool)
        or not isinstance(value["seq"], int)
        or value["seq"] < 0
    ):
        raise ValueError('a leaf is {"record": {...}, "seq": <n>}')
    seq: int = value["seq"]
    record: dict[str, Any] = value["record"]
    try:
        canonical = encode_leaf(seq, record)
    except SerializationError as exc:
        raise ValueError(f"not a canonical leaf: {exc}") from exc
    if canonical != leaf:
        raise ValueError("the leaf is not in canonical form (key order, spacing or escapes)")
    return seq, record
