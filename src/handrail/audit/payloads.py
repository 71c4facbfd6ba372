"""Raw payloads encrypted at rest, erasable by destroying their key (crypto-shredding).

The technical view of an audit record keeps a tool call's raw input and output, which may
be personal data. They are sealed with AES-256-GCM under a **data key** chosen by the
caller: one per task (``task:<id>``) or one per data subject (``subject:<id>``). Erasing a
task's or a person's data is destroying that key: every payload sealed under it becomes
unreadable at once, wherever copies of the ciphertext went (exports, backups), and the key
store keeps a **tombstone** saying who destroyed it and when.

The tamper-evident log never holds raw data. It holds a salted **commitment** to it:
``SHA-256(domain || salt || value)`` with a fresh 256-bit salt per payload. The salt is
sealed *with* the payload (the envelope's plaintext is ``salt || value``), so:

- while the key exists, anyone allowed to open the payload gets the value and its salt and
  can check that it is exactly what the log committed to (:func:`verify_commitment`);
- after erasure the salt is gone with the value. The commitment is then an opaque 32-byte
  number: it cannot be re-derived or checked by anyone, and, because it is salted, it
  cannot be brute-forced either. An unsalted hash of a low-entropy payload ("approved",
  an amount, one of a few thousand customer e-mails) would give the value away to anyone
  who hashes the candidates; a 256-bit salt makes that search hopeless.
- the log's leaf, which contains the commitment and not the payload, hashes exactly as
  before, so the Merkle tree, its checkpoints and every proof still verify.

Envelope format, version 1 (all of it authenticated; integers big-endian)::

    offset   size  field
    0        1     version = 0x01
    1        1     kind: 0x00 raw plaintext, 0x01 salted (plaintext = salt(32) || value)
    2        2     n = length of key_id in bytes
    4        n     key_id, UTF-8
    4+n      12    nonce, random (96 bits)
    16+n     ...   AES-256-GCM ciphertext || 16-byte tag

GCM's associated data is the header (bytes ``0 .. 4+n``) followed by the caller's ``aad``,
which should name the record the payload belongs to (a call id and which side, e.g.
``b"call:42:input"``). So a ciphertext cannot be moved to another record, another key id
or another kind without :class:`PayloadTampered`. Random 96-bit nonces are safe far beyond
the number of payloads one task or subject produces (NIST's bound is 2**32 per key).

``cryptography`` is imported on first use, so importing this module stays light.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import re
import struct
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from handrail.clock import Clock, SystemClock
from handrail.errors import HandrailError

T = TypeVar("T")

if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path

__all__ = [
    "ENVELOPE_VERSION",
    "KEY_BYTES",
    "SALT_BYTES",
    "KeyStore",
    "MemoryKeyStore",
    "OpenedPayload",
    "PayloadErased",
    "PayloadError",
    "PayloadKeyMissing",
    "PayloadTampered",
    "PayloadVault",
    "SQLiteKeyStore",
    "SealedPayload",
    "Tombstone",
    "check_key_id",
    "commitment",
    "envelope_key_id",
    "new_salt",
    "subject_key_id",
    "task_key_id",
    "verify_commitment",
]

ENVELOPE_VERSION: Final = 1
KEY_BYTES: Final = 32
"""Data keys are AES-256 keys."""
SALT_BYTES: Final = 32
"""Commitment salts are 256 bits."""

_KIND_RAW: Final = 0
_KIND_SALTED: Final = 1
_NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16
_COMMIT_DOMAIN: Final = b"handrail.payload-commitment.v1\x00"


# --- errors ----------------------------------------------------------------------------


class PayloadError(HandrailError):
    """A sealed payload cannot be written or read; subclasses say why."""

    def __init__(self, message: str, *, key_id: str | None = None):
        super().__init__(message)
        self.key_id = key_id


class PayloadErased(PayloadError):
    """The payload's data key was destroyed: the payload is erased for good.

    This is the expected outcome after an erasure request, not a fault; ``tombstone``
    says who destroyed the key and when.
    """

    def __init__(self, key_id: str, tombstone: Tombstone | None):
        who = f" by {tombstone.destroyed_by} at {tombstone.destroyed_at}" if tombstone else ""
        super().__init__(
            f"payloads under key {key_id!r} were erased (key destroyed{who}); the audit "
            "log still verifies, but this raw payload cannot be recovered",
            key_id=key_id,
        )
        self.tombstone = tombstone


class PayloadTampered(PayloadError):
    """The envelope does not authenticate: its ciphertext, header or the associated data
    given to open it differ from what was sealed (or it was cut short)."""


class PayloadKeyMissing(PayloadError):
    """The key store has no key and no tombstone for the envelope's key id: it is the
    wrong key store, the key was lost, or the key id in the envelope was altered."""


# --- key ids and commitments -----------------------------------------------------------


def task_key_id(task_id: str) -> str:
    """The key id for payloads erased together with a task: ``task:<id>``."""
    return f"task:{task_id}"


def subject_key_id(subject_id: str) -> str:
    """The key id for payloads erased together with a data subject: ``subject:<id>``."""
    return f"subject:{subject_id}"


def new_salt() -> bytes:
    """A fresh random salt for :func:`commitment`."""
    return os.urandom(SALT_BYTES)


def commitment(value: bytes, salt: bytes) -> str:
    """The salted SHA-256 commitment to a raw payload, as 64 hex digits.

    Binding (no other value has the same commitment) and hiding (without the salt the
    commitment says nothing about the value, however few values are plausible). Keep the
    salt only next to the value, encrypted under the same key: see the module docs.
    """
    if len(salt) != SALT_BYTES:
        raise PayloadError(f"a commitment salt is {SALT_BYTES} bytes, not {len(salt)}")
    return hashlib.sha256(_COMMIT_DOMAIN + salt + value).hexdigest()


def verify_commitment(value: bytes, salt: bytes, expected: str) -> bool:
    """Whether ``value`` and ``salt`` open the commitment ``expected`` (constant time)."""
    return hmac.compare_digest(commitment(value, salt), expected.lower())


# --- key stores ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Tombstone:
    """The record left when a data key is destroyed."""

    key_id: str
    destroyed_at: float
    """Seconds since the epoch, from the key store's clock."""
    destroyed_by: str
    reason: str | None = None


class KeyStore(Protocol):
    """Where data keys live, and die. A destroyed key id stays destroyed: it is never
    given a new key, so nothing new is written for an erased task or person by mistake."""

    def get_or_create(self, key_id: str) -> bytes:
        """The key for ``key_id``, made on first use; :class:`PayloadErased` if destroyed."""

    def get(self, key_id: str) -> bytes | None:
        """The key for ``key_id``, or None if there is none (never made, or destroyed)."""

    def destroy(self, key_id: str, *, by: str, reason: str | None = None) -> bool:
        """Destroy the key and leave a tombstone (the first one stays). True if a key
        was destroyed now; False if there was none (the tombstone is still written, so
        the key id can never be used)."""

    def destroyed(self, key_id: str) -> bool:
        """Whether the key id has a tombstone."""

    def tombstone(self, key_id: str) -> Tombstone | None:
        """The tombstone of a destroyed key id, or None."""


def check_key_id(key_id: str) -> None:
    """Raise :class:`PayloadError` unless ``key_id`` is a usable key id."""
    if not isinstance(key_id, str) or not key_id or len(key_id.encode("utf-8")) > 0xFFFF:
        raise PayloadError(f"a key id is a non-empty string of at most 65535 bytes: {key_id!r}")


class MemoryKeyStore:
    """Data keys in this process's memory, for tests and throwaway runs."""

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._keys: dict[str, bytes] = {}
        self._tombstones: dict[str, Tombstone] = {}

    def get_or_create(self, key_id: str) -> bytes:
        check_key_id(key_id)
        with self._lock:
            if key_id in self._tombstones:
                raise PayloadErased(key_id, self._tombstones[key_id])
            return self._keys.setdefault(key_id, os.urandom(KEY_BYTES))

    def get(self, key_id: str) -> bytes | None:
        with self._lock:
            return self._keys.get(key_id)

    def destroy(self, key_id: str, *, by: str, reason: str | None = None) -> bool:
        check_key_id(key_id)
        with self._lock:
            existed = self._keys.pop(key_id, None) is not None
            if key_id not in self._tombstones:
                self._tombstones[key_id] = Tombstone(key_id, self._clock.now(), by, reason)
            return existed

    def destroyed(self, key_id: str) -> bool:
        with self._lock:
            return key_id in self._tombstones

    def tombstone(self, key_id: str) -> Tombstone | None:
        with self._lock:
            return self._tombstones.get(key_id)


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS {prefix}data_keys (
    key_id      TEXT PRIMARY KEY,
    key         BLOB NOT NULL,
    created_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS {prefix}key_tombstones (
    key_id        TEXT PRIMARY KEY,
    destroyed_at  REAL NOT NULL,
    destroyed_by  TEXT NOT NULL,
    reason        TEXT
);
"""
_PREFIX: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SQLiteKeyStore:
    """Data keys in a SQLite file: two small tables, keys and tombstones.

    Keep this file apart from the payloads it protects (another file, ideally another
    volume or a KMS-backed :class:`KeyStore`): whoever holds both can read the payloads.
    Keys are stored as they are. ``secure_delete`` is on, so a destroyed key's bytes are
    overwritten in the database file; in WAL mode the log is checkpointed and truncated
    after each destroy. Copies outside SQLite's reach (file-system snapshots, backups of
    this file) are the operator's to expire.

    The tables are ``<table_prefix>data_keys`` and ``<table_prefix>key_tombstones``
    (created if missing); the audit log's own key store uses the prefix
    ``handrail_audit_``, whose tables its migration creates.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock | None = None,
        timeout: float = 30.0,
        table_prefix: str = "handrail_",
        commit: Callable[[Callable[[Any], Any]], Any] | None = None,
    ):
        import sqlite3

        if not _PREFIX.fullmatch(table_prefix):
            raise PayloadError(f"a table prefix is an SQL identifier: {table_prefix!r}")
        self.path = str(path)
        self._commit = commit
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        keys, tombs = f"{table_prefix}data_keys", f"{table_prefix}key_tombstones"
        self._q_tomb = f"SELECT destroyed_at, destroyed_by, reason FROM {tombs} WHERE key_id = ?"
        self._q_live = (
            f"SELECT key FROM {keys} WHERE key_id = ? "
            f"AND NOT EXISTS (SELECT 1 FROM {tombs} WHERE key_id = ?)"
        )
        self._q_make = f"INSERT OR IGNORE INTO {keys} (key_id, key, created_at) VALUES (?, ?, ?)"
        self._q_key = f"SELECT key FROM {keys} WHERE key_id = ?"
        self._q_delete = f"DELETE FROM {keys} WHERE key_id = ?"
        self._q_bury = (
            f"INSERT OR IGNORE INTO {tombs} (key_id, destroyed_at, destroyed_by, reason) "
            "VALUES (?, ?, ?, ?)"
        )
        self._conn: sqlite3.Connection = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self._conn.execute("PRAGMA secure_delete = ON")
            self._wal = self._conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
            self._conn.executescript(_SCHEMA.format(prefix=table_prefix))
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SQLiteKeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tombstone_row(self, key_id: str, conn: Any = None) -> Tombstone | None:
        row = (conn or self._conn).execute(self._q_tomb, (key_id,)).fetchone()
        return None if row is None else Tombstone(key_id, row[0], row[1], row[2])

    def get_or_create(self, key_id: str) -> bytes:
        # The common case, a key that exists, needs no write lock (a destroy deletes the
        # key and writes its tombstone in one transaction, so a read sees both or neither).
        made = self.get_or_create_many([key_id])[key_id]
        if isinstance(made, Tombstone):
            raise PayloadErased(key_id, made)
        return made

    def get_or_create_many(self, key_ids: Iterable[str]) -> dict[str, bytes | Tombstone]:
        """:meth:`get_or_create` for many key ids: each one's key, or its tombstone if it
        was destroyed. The missing keys are made in one transaction (one commit for a
        batch of records, not one per task)."""
        wanted = sorted(set(key_ids))
        for key_id in wanted:
            check_key_id(key_id)
        found: dict[str, bytes | Tombstone] = {}
        with self._lock:
            for key_id in wanted:
                row = self._conn.execute(self._q_live, (key_id, key_id)).fetchone()
                if row is not None:
                    found[key_id] = bytes(row[0])
            missing = [key_id for key_id in wanted if key_id not in found]
            if not missing:
                return found
            now = self._clock.now()

            def make(conn: Any) -> dict[str, bytes | Tombstone]:
                made: dict[str, bytes | Tombstone] = {}
                for key_id in missing:
                    tomb = self._tombstone_row(key_id, conn)
                    if tomb is not None:
                        made[key_id] = tomb
                        continue
                    conn.execute(self._q_make, (key_id, os.urandom(KEY_BYTES), now))
                    made[key_id] = bytes(conn.execute(self._q_key, (key_id,)).fetchone()[0])
                return made

            found.update(self._in_write(make))
        return found

    def _in_write(self, fn: Callable[[Any], T]) -> T:
        """``fn(conn)`` in a write transaction: the one ``commit`` runs, if given (the
        store's group commit), else ``BEGIN IMMEDIATE`` on this store's connection."""
        if self._commit is not None:
            result: T = self._commit(fn)
            return result
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(self._conn)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return result

    def get(self, key_id: str) -> bytes | None:
        with self._lock:
            row = self._conn.execute(self._q_key, (key_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def destroy(self, key_id: str, *, by: str, reason: str | None = None) -> bool:
        check_key_id(key_id)
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                deleted = self._conn.execute(self._q_delete, (key_id,)).rowcount
                self._conn.execute(self._q_bury, (key_id, self._clock.now(), by, reason))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            if self._wal:
                # Older copies of the page that held the key live on in the WAL until it
                # is checkpointed; best effort (a busy reader can delay it).
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted > 0

    def destroyed(self, key_id: str) -> bool:
        with self._lock:
            return self._tombstone_row(key_id) is not None

    def tombstone(self, key_id: str) -> Tombstone | None:
        with self._lock:
            return self._tombstone_row(key_id)


# --- sealing ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class SealedPayload:
    """A payload sealed for storage, and the commitment the audit log keeps instead."""

    envelope: bytes
    commitment: str


@dataclasses.dataclass(frozen=True, slots=True)
class OpenedPayload:
    """A salted payload opened: the raw value and the salt of its commitment."""

    value: bytes
    salt: bytes


def _header(kind: int, key_id: str) -> bytes:
    raw = key_id.encode("utf-8")
    return struct.pack(">BBH", ENVELOPE_VERSION, kind, len(raw)) + raw


def _parse(envelope: bytes) -> tuple[int, str, bytes, bytes, bytes]:
    """(kind, key_id, header, nonce, ciphertext) of an envelope."""
    if len(envelope) < 4:
        raise PayloadTampered("the payload envelope is cut short (no header)")
    version, kind, n = struct.unpack_from(">BBH", envelope)
    if version != ENVELOPE_VERSION:
        raise PayloadError(
            f"payload envelope version {version} is not supported (this handrail reads "
            f"version {ENVELOPE_VERSION}); upgrade handrail, or the envelope is corrupt"
        )
    body = 4 + n
    if kind not in (_KIND_RAW, _KIND_SALTED) or len(envelope) < body + _NONCE_BYTES + _TAG_BYTES:
        raise PayloadTampered("the payload envelope is malformed or cut short")
    try:
        key_id = envelope[4:body].decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadTampered("the payload envelope's key id is not UTF-8") from None
    nonce = envelope[body : body + _NONCE_BYTES]
    return kind, key_id, envelope[:body], nonce, envelope[body + _NONCE_BYTES :]


def _encrypt(cipher: Any, kind: int, key_id: str, plaintext: bytes, aad: bytes) -> bytes:
    header = _header(kind, key_id)
    nonce = os.urandom(_NONCE_BYTES)
    return bytes(header + nonce + cipher.encrypt(nonce, plaintext, header + aad))


def envelope_key_id(envelope: bytes) -> str:
    """The key id an envelope was sealed under (read from its header, not verified)."""
    return _parse(envelope)[1]


class PayloadVault:
    """Seals and opens payloads with data keys from a :class:`KeyStore`."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    def seal(self, key_id: str, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt ``plaintext`` under the data key ``key_id`` (made on first use), bound
        to ``aad``. Raises :class:`PayloadErased` if the key id was destroyed."""
        return self._seal(_KIND_RAW, key_id, plaintext, aad)

    def open(self, envelope: bytes, aad: bytes) -> bytes:
        """Decrypt an envelope made by :meth:`seal` or :meth:`seal_committed` (the value
        only). Raises :class:`PayloadErased` after erasure, :class:`PayloadTampered` if
        the envelope or ``aad`` is not what was sealed."""
        kind, plaintext = self._open(envelope, aad)
        return plaintext[SALT_BYTES:] if kind == _KIND_SALTED else plaintext

    def seal_committed(self, key_id: str, value: bytes, aad: bytes) -> SealedPayload:
        """Seal ``value`` with a fresh salt inside, and return the envelope together with
        the salted commitment for the audit log's leaf."""
        salt = new_salt()
        envelope = self._seal(_KIND_SALTED, key_id, salt + value, aad)
        return SealedPayload(envelope, commitment(value, salt))

    def open_committed(self, envelope: bytes, aad: bytes) -> OpenedPayload:
        """Open an envelope made by :meth:`seal_committed`: the value and its salt, to
        check against the log with :func:`verify_commitment`."""
        kind, plaintext = self._open(envelope, aad)
        if kind != _KIND_SALTED:
            raise PayloadError(
                "this envelope was sealed without a commitment salt (seal, not "
                "seal_committed); open it with open()",
                key_id=envelope_key_id(envelope),
            )
        return OpenedPayload(plaintext[SALT_BYTES:], plaintext[:SALT_BYTES])

    def _seal(self, kind: int, key_id: str, plaintext: bytes, aad: bytes) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        check_key_id(key_id)
        return _encrypt(AESGCM(self.keys.get_or_create(key_id)), kind, key_id, plaintext, aad)

    @staticmethod
    def cipher(key: bytes) -> Any:
        """The AES-GCM cipher of a data key (to seal many payloads under it)."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM(key)

    def keys_for(self, key_ids: Iterable[str]) -> dict[str, bytes | Tombstone | None]:
        """The key of each of ``key_ids``, made if missing, or its tombstone (``None`` if
        destroyed without one): in one go where the key store can
        (``get_or_create_many``), else one key at a time."""
        many = getattr(self.keys, "get_or_create_many", None)
        if many is not None:
            return dict(many(key_ids))
        found: dict[str, bytes | Tombstone | None] = {}
        for key_id in set(key_ids):
            try:
                found[key_id] = self.keys.get_or_create(key_id)
            except PayloadErased as exc:
                found[key_id] = exc.tombstone
        return found

    def seal_committed_all(
        self, key_id: str, values: Sequence[tuple[bytes, bytes]], *, key: Any = None
    ) -> list[SealedPayload]:
        """:meth:`seal_committed` for several ``(value, aad)`` pairs under one key, read
        from the key store once (or given: ``key``, the key's bytes from
        :meth:`keys_for`, or a cipher :meth:`cipher` made from them)."""
        check_key_id(key_id)
        if key is None:
            key = self.keys.get_or_create(key_id)
        cipher = self.cipher(key) if isinstance(key, bytes) else key
        sealed: list[SealedPayload] = []
        for value, aad in values:
            salt = new_salt()
            envelope = _encrypt(cipher, _KIND_SALTED, key_id, salt + value, aad)
            sealed.append(SealedPayload(envelope, commitment(value, salt)))
        return sealed

    def _open(self, envelope: bytes, aad: bytes) -> tuple[int, bytes]:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        kind, key_id, header, nonce, ciphertext = _parse(envelope)
        key = self.keys.get(key_id)
        if key is None:
            if self.keys.destroyed(key_id):
                raise PayloadErased(key_id, self.keys.tombstone(key_id))
            raise PayloadKeyMissing(
                f"no data key {key_id!r} in this key store and no record of its erasure: "
                "open the envelope with the key store it was sealed with (or the "
                "envelope's key id was altered)",
                key_id=key_id,
            )
        try:
            plaintext = AESGCM(key).decrypt(nonce, ciphertext, header + aad)
        except InvalidTag:
            raise PayloadTampered(
                f"the payload sealed under {key_id!r} does not authenticate: its bytes or "
                "the associated data (the record it belongs to) differ from what was sealed",
                key_id=key_id,
            ) from None
        if kind == _KIND_SALTED and len(plaintext) < SALT_BYTES:
            raise PayloadTampered("a salted payload shorter than its salt", key_id=key_id)
        return kind, plaintext
