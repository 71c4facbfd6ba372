"""The exported audit bundle: everything an auditor needs to verify the log offline.

A bundle is UTF-8 JSON Lines. The first line is the header, a JSON object::

    {"checkpoints": ["<signed checkpoint>", ...],
     "format": "handrail-audit-bundle/1",
     "origin": "<the log's origin>",
     "public_key": "<vkey of the log's signing key>"}

(unknown keys are ignored). Every further line is one leaf, exactly its canonical bytes
(:func:`handrail.audit.leaf.encode_leaf`), in ``seq`` order: line ``i + 2`` of the file is
leaf ``i``, and its SHA-256 with the 0x00 prefix is leaf ``i``'s hash in the tree. A final
newline is optional. The records are readable as they are (each line is JSON) and are
verified without being parsed.

``checkpoints`` are signed notes (:mod:`handrail.audit.checkpoint`), any order; the
largest says how many leaves the bundle must hold. Export the log *as of* its latest
checkpoint, records ``[0, size)``, so the whole bundle is covered by a signature. The
``public_key`` in the header only says which key the log claims; an auditor should verify
against a key obtained independently (``verify_bundle(..., trusted_key=...)``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from handrail.audit.checkpoint import VerifyingKey
from handrail.errors import BundleMalformed

__all__ = ["BUNDLE_FORMAT", "BundleHeader", "encode_bundle", "read_bundle", "write_bundle"]

BUNDLE_FORMAT = "handrail-audit-bundle/1"
"""The ``format`` a bundle header names; readers refuse any other."""


@dataclass(frozen=True)
class BundleHeader:
    """The bundle's first line: the log's ``origin``, its ``public_key`` and the signed
    ``checkpoints`` (signed-note texts)."""

    origin: str
    public_key: VerifyingKey
    checkpoints: tuple[str, ...]

    def to_json(self) -> bytes:
        """The header line (without its newline)."""
        value = {
            "checkpoints": list(self.checkpoints),
            "format": BUNDLE_FORMAT,
            "origin": self.origin,
            "public_key": self.public_key.to_vkey(),
        }
        return json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, line: bytes) -> BundleHeader:
        """Parse a header line; :class:`~handrail.errors.BundleMalformed` if it is not one."""
        try:
            value = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleMalformed(f"the first line is not a JSON header: {exc}") from exc
        if not isinstance(value, dict):
            raise BundleMalformed("the first line is not a JSON object")
        if value.get("format") != BUNDLE_FORMAT:
            raise BundleMalformed(
                f"not a {BUNDLE_FORMAT} bundle (format {value.get('format')!r}); "
                "export it again with this version of handrail"
            )
        origin, vkey, checkpoints = (value.get(k) for k in ("origin", "public_key", "checkpoints"))
        if not isinstance(origin, str) or not origin:
            raise BundleMalformed("the header has no origin")
        if not isinstance(vkey, str):
            raise BundleMalformed("the header has no public_key")
        try:
            public_key = VerifyingKey.from_vkey(vkey)
        except ValueError as exc:
            raise BundleMalformed(f"the header's public_key is not a vkey: {exc}") from exc
        if not isinstance(checkpoints, list) or not all(isinstance(c, str) for c in checkpoints):
            raise BundleMalformed("the header's checkpoints are not a list of strings")
        return cls(origin, public_key, tuple(checkpoints))


def write_bundle(stream: BinaryIO, header: BundleHeader, leaves: Iterable[bytes]) -> int:
    """Write a bundle to a binary ``stream``, leaves in ``seq`` order; returns how many
    leaves were written. Streams: the leaves are never all in memory."""
    stream.write(header.to_json() + b"\n")
    count = 0
    for leaf in leaves:
        if b"\n" in leaf:
            raise ValueError(f"leaf {count} contains a newline: not a canonical leaf")
        stream.write(leaf + b"\n")
        count += 1
    return count


def encode_bundle(header: BundleHeader, leaves: Iterable[bytes]) -> bytes:
    """The bundle as bytes (see :func:`write_bundle`)."""
    lines = [header.to_json()]
    for position, leaf in enumerate(leaves):
        if b"\n" in leaf:
            raise ValueError(f"leaf {position} contains a newline: not a canonical leaf")
        lines.append(leaf)
    lines.append(b"")
    return b"\n".join(lines)


def read_bundle(data: bytes) -> tuple[BundleHeader, list[bytes]]:
    """The header and the leaf lines of a bundle. Only the header is checked here: the
    leaves are returned as they are, for :func:`handrail.audit.verify.verify_bundle`."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    if not lines:
        raise BundleMalformed("the bundle is empty")
    header = BundleHeader.from_json(lines[0])
    del lines[0]
    return header, lines
