"""Signed checkpoints: the log's size and root, signed with Ed25519.

The text formats are those of the transparency-log ecosystem (C2SP ``tlog-checkpoint`` and
``signed-note``, as written by Go's ``golang.org/x/mod/sumdb/note``), so other tools can
read handrail's checkpoints. A checkpoint body is::

    <origin>                the log's name, e.g. "handrail.example.com/audit"
    <size>                  the number of leaves, in decimal
    <root>                  the RFC 6962 root hash, base64
    [extension lines]       optional, each non-empty

and the signed checkpoint adds a blank line and one line per signature::

    — <key name> <base64(key id (4 bytes) || Ed25519 signature (64 bytes))>

The signature covers the body including its final newline; the key id is the first four
bytes of ``SHA-256(key name || "\\n" || 0x01 || public key)``. A verifier key is shared as
a one-line "vkey", ``<name>+<key id hex>+<base64(0x01 || public key)>``, or as PEM.

The ``cryptography`` package is imported on first use of a key, not with this module.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from handrail.audit.merkle import HASH_SIZE
from handrail.errors import CheckpointMalformed, SignatureInvalid

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "Checkpoint",
    "SigningKey",
    "VerifyingKey",
    "generate_signing_key",
    "parse_checkpoint",
    "sign_checkpoint",
    "verify_checkpoint",
]

_ED25519 = b"\x01"
_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_KEY_SIZE = 32
_SIGNATURE_SIZE = 64
_MAX_SIGNATURES = 100
_BAD_NAME = re.compile(r"[\s+]")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def _check_name(name: str) -> None:
    if not name or _BAD_NAME.search(name):
        raise ValueError(f"a key name is non-empty, without spaces or '+': {name!r}")


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True)
class Checkpoint:
    """The state of a log at one point: its ``origin`` (name), ``size`` (leaves) and
    ``root_hash``; optional ``extensions`` are extra signed lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or _CONTROL.search(self.origin):
            raise ValueError(f"a checkpoint origin is one non-empty line: {self.origin!r}")
        if isinstance(self.size, bool) or not 0 <= self.size < 1 << 64:
            raise ValueError(f"a checkpoint size is a 64-bit unsigned integer: {self.size!r}")
        if len(self.root_hash) != HASH_SIZE:
            raise ValueError(f"a root hash is {HASH_SIZE} bytes, not {len(self.root_hash)}")
        for line in self.extensions:
            if not line or "\n" in line or _CONTROL.search(line):
                raise ValueError(f"an extension is one non-empty line: {line!r}")

    def text(self) -> str:
        """The checkpoint body, as signed (ends with a newline)."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode("ascii")]
        lines.extend(self.extensions)
        return "\n".join(lines) + "\n"


def parse_checkpoint(note: str) -> Checkpoint:
    """The checkpoint in a signed note, **without verifying any signature** (to show it;
    trust it only through :func:`verify_checkpoint`). A bare body parses too."""
    body = _split_note(note)[0] if "\n\n" in note else note
    return _parse_body(body)


def _parse_body(body: str) -> Checkpoint:
    if not body.endswith("\n"):
        raise CheckpointMalformed("a checkpoint body ends with a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointMalformed("a checkpoint has an origin, a size and a root line")
    origin, size_text, root_text, *extensions = lines
    if not _DECIMAL.fullmatch(size_text):
        raise CheckpointMalformed(f"line 2 is not a decimal size: {size_text!r}")
    try:
        root_hash = _b64decode(root_text)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise CheckpointMalformed(f"line 3 is not a base64 root hash: {root_text!r}") from exc
    try:
        return Checkpoint(origin, int(size_text), root_hash, tuple(extensions))
    except ValueError as exc:
        raise CheckpointMalformed(str(exc)) from exc


@functools.lru_cache(maxsize=64)
def _load_public(raw: bytes) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return Ed25519PublicKey.from_public_bytes(raw)


@dataclass(frozen=True)
class VerifyingKey:
    """An Ed25519 public key with its signer ``name`` (the name in signature lines)."""

    name: str
    raw: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.raw) != _KEY_SIZE:
            raise ValueError(f"an Ed25519 public key is 32 bytes, not {len(self.raw)}")

    def __repr__(self) -> str:
        return f"VerifyingKey(name={self.name!r}, key_id={self.key_id.hex()})"

    @property
    def key_id(self) -> bytes:
        """The 4-byte id that signature lines carry to say which key signed them."""
        return hashlib.sha256(self.name.encode() + b"\n" + _ED25519 + self.raw).digest()[:4]

    def to_vkey(self) -> str:
        """The one-line verifier key, ``<name>+<key id hex>+<base64(0x01 || key)>``."""
        encoded = base64.b64encode(_ED25519 + self.raw).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def from_vkey(cls, vkey: str) -> VerifyingKey:
        """Parse :meth:`to_vkey` text; ``ValueError`` if it is not an Ed25519 vkey."""
        parts = vkey.strip().split("+", 2)  # the name has no "+", the base64 may
        if len(parts) != 3:
            raise ValueError("a vkey is <name>+<key id hex>+<base64 key>")
        name, key_id, encoded = parts
        try:
            typed = _b64decode(encoded)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ValueError(f"the key part of the vkey is not base64: {exc}") from exc
        if typed[:1] != _ED25519:
            raise ValueError("the vkey is not an Ed25519 key (type byte 0x01)")
        key = cls(name, typed[1:])
        if key.key_id.hex() != key_id.lower():
            raise ValueError("the vkey's key id does not match its name and key")
        return key

    def to_pem(self) -> bytes:
        """The key as PEM (SubjectPublicKeyInfo); the name is not part of it."""
        from cryptography.hazmat.primitives import serialization

        return _load_public(self.raw).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def from_pem(cls, name: str, pem: bytes) -> VerifyingKey:
        """A PEM Ed25519 public key, given the signer ``name`` it signs as."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        key = serialization.load_pem_public_key(pem)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"not an Ed25519 public key: {type(key).__name__}")
        return cls(name, key.public_bytes_raw())

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        from cryptography.exceptions import InvalidSignature

        try:
            _load_public(self.raw).verify(signature, message)
        except InvalidSignature:
            return False
        return True


class SigningKey:
    """An Ed25519 private key with its signer ``name``. Make one with
    :func:`generate_signing_key`, :meth:`from_private_bytes` or :meth:`from_pem`; keep
    :meth:`private_bytes` secret and publish :attr:`public_key`."""

    __slots__ = ("_private", "name", "public_key")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_name(name)
        self.name = name
        self._private = private_key
        raw = private_key.public_key().public_bytes_raw()
        self.public_key = VerifyingKey(name, raw)

    def __repr__(self) -> str:
        return f"SigningKey(name={self.name!r}, key_id={self.public_key.key_id.hex()})"

    @classmethod
    def from_private_bytes(cls, name: str, raw: bytes) -> SigningKey:
        """A key from its 32-byte Ed25519 seed (as :meth:`private_bytes` returns)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if len(raw) != _KEY_SIZE:
            raise ValueError(f"an Ed25519 private key is 32 bytes, not {len(raw)}")
        return cls(name, Ed25519PrivateKey.from_private_bytes(raw))

    @classmethod
    def from_pem(cls, name: str, pem: bytes, password: bytes | None = None) -> SigningKey:
        """A PEM (PKCS#8) Ed25519 private key, encrypted with ``password`` if given."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = serialization.load_pem_private_key(pem, password=password)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"not an Ed25519 private key: {type(key).__name__}")
        return cls(name, key)

    def private_bytes(self) -> bytes:
        """The 32-byte Ed25519 seed. Secret."""
        return self._private.private_bytes_raw()

    def to_pem(self, password: bytes | None = None) -> bytes:
        """The key as PKCS#8 PEM, encrypted with ``password`` if given. Secret."""
        from cryptography.hazmat.primitives import serialization

        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._private.sign(message)


def generate_signing_key(name: str) -> SigningKey:
    """A new random Ed25519 key that signs as ``name`` (by convention the log's origin)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return SigningKey(name, Ed25519PrivateKey.generate())


def sign_checkpoint(checkpoint: Checkpoint, key: SigningKey) -> str:
    """The signed note for ``checkpoint``: its body, a blank line, one signature line."""
    body = checkpoint.text()
    signature = key.sign(body.encode("utf-8"))
    encoded = base64.b64encode(key.public_key.key_id + signature).decode("ascii")
    return f"{body}\n{_SIGNATURE_PREFIX}{key.name} {encoded}\n"


def _split_note(note: str) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """(body, [(key name, key id, signature)]) of a signed note; checks syntax only."""
    if _CONTROL.search(note):
        raise CheckpointMalformed("a signed note contains no control characters but newline")
    if not note.endswith("\n"):
        raise CheckpointMalformed("a signed note ends with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise CheckpointMalformed("a signed note has a blank line before its signatures")
    body, block = note[: split + 1], note[split + 2 :]
    signatures: list[tuple[str, bytes, bytes]] = []
    for line in block[:-1].split("\n"):
        if not line.startswith(_SIGNATURE_PREFIX):
            raise CheckpointMalformed(f"not a signature line: {line!r}")
        name, space, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
        try:
            _check_name(name)
            if not space:
                raise ValueError("no signature after the key name")
            blob = _b64decode(encoded)
        except (ValueError, UnicodeEncodeError) as exc:
            raise CheckpointMalformed(f"bad signature line {line!r}: {exc}") from exc
        if len(blob) < 5:
            raise CheckpointMalformed(f"signature too short in line {line!r}")
        signatures.append((name, blob[:4], blob[4:]))
    if len(signatures) > _MAX_SIGNATURES:
        raise CheckpointMalformed(f"more than {_MAX_SIGNATURES} signatures")
    return body, signatures


def verify_checkpoint(note: str, key: VerifyingKey) -> Checkpoint:
    """The checkpoint in ``note`` once ``key`` has verified it.

    The first signature line with ``key``'s name and key id decides (other signers'
    lines are ignored, as the signed-note format requires). Raises
    :class:`~handrail.errors.SignatureInvalid` if there is no such line or its signature
    does not verify, :class:`~handrail.errors.CheckpointMalformed` if the text does not
    parse.
    """
    body, signatures = _split_note(note)
    checkpoint = _parse_body(body)
    for name, key_id, signature in signatures:
        if name != key.name or key_id != key.key_id:
            continue
        if len(signature) != _SIGNATURE_SIZE or not key.verify(signature, body.encode("utf-8")):
            raise SignatureInvalid(
                f"the signature by {key.name!r} on the checkpoint of size {checkpoint.size} "
                "does not verify: the checkpoint was altered or signed by another key",
                key_name=key.name,
            )
        return checkpoint
    raise SignatureInvalid(
        f"the checkpoint of size {checkpoint.size} carries no signature by {key.name!r} "
        f"(key id {key.key_id.hex()}): it was signed by another key, or you have the wrong key",
        key_name=key.name,
    )
