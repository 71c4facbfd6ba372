"""Raw payloads: sealed with AES-GCM under per-task/per-subject keys, erasable, committed to.

The erasure story these tests pin down: the audit log's leaf keeps a salted commitment, never
the payload. While the key exists the payload and its salt can be opened and checked against
the leaf. Once the key is destroyed nobody can open the payload, re-derive the salt or test
guesses against the commitment, and the leaf (so the whole log) still hashes the same.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handrail.audit.payloads import (
    SALT_BYTES,
    MemoryKeyStore,
    PayloadErased,
    PayloadError,
    PayloadKeyMissing,
    PayloadTampered,
    PayloadVault,
    SQLiteKeyStore,
    Tombstone,
    commitment,
    envelope_key_id,
    new_salt,
    subject_key_id,
    task_key_id,
    verify_commitment,
)
from handrail.errors import HandrailError
from handrail.testing import ManualClock

TASK = task_key_id("t-1")
OTHER = task_key_id("t-2")


@pytest.fixture
def vault() -> PayloadVault:
    return PayloadVault(MemoryKeyStore())


def _leaf_hash(leaf: dict[str, str]) -> str:
    """RFC 6962 leaf hash of a canonical JSON leaf, as the log would compute it."""
    canonical = json.dumps(leaf, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(b"\x00" + canonical).hexdigest()


# --- sealing ---------------------------------------------------------------------------


@pytest.mark.parametrize("plaintext", [b"", b"x", b'{"to":"alice@example.com"}', bytes(70_000)])
def test_round_trip(vault: PayloadVault, plaintext: bytes) -> None:
    envelope = vault.seal(TASK, plaintext, b"call:1:input")
    assert vault.open(envelope, b"call:1:input") == plaintext
    assert envelope_key_id(envelope) == TASK
    if len(plaintext) >= 16:  # a shorter plaintext can occur in random bytes by chance
        assert plaintext not in envelope


@given(st.binary(max_size=512), st.binary(max_size=64), st.text(min_size=1, max_size=40))
def test_round_trip_any_bytes(plaintext: bytes, aad: bytes, key_id: str) -> None:
    vault = PayloadVault(MemoryKeyStore())
    assert vault.open(vault.seal(key_id, plaintext, aad), aad) == plaintext


def test_sealing_is_randomized(vault: PayloadVault) -> None:
    assert vault.seal(TASK, b"same", b"a") != vault.seal(TASK, b"same", b"a")


def test_wrong_aad_fails(vault: PayloadVault) -> None:
    envelope = vault.seal(TASK, b"secret", b"call:1:input")
    for wrong in (b"call:2:input", b"call:1:output", b""):
        with pytest.raises(PayloadTampered) as info:
            vault.open(envelope, wrong)
        assert info.value.key_id == TASK
        assert isinstance(info.value, HandrailError)


def test_every_flipped_byte_fails(vault: PayloadVault) -> None:
    envelope = vault.seal(TASK, b"raw tool output", b"call:1")
    header = 4 + len(TASK.encode())
    for i in range(len(envelope)):
        forged = bytearray(envelope)
        forged[i] ^= 0x01
        # Every flip is refused; past the version byte and key id it is PayloadTampered.
        expected = PayloadTampered if i == 1 or i >= header else PayloadError
        with pytest.raises(expected):
            vault.open(bytes(forged), b"call:1")


def test_truncated_envelopes_fail(vault: PayloadVault) -> None:
    envelope = vault.seal(TASK, b"raw", b"c")
    for cut in (0, 3, 4 + len(TASK) + 5, len(envelope) - 1):
        with pytest.raises(PayloadTampered):
            vault.open(envelope[:cut], b"c")


def test_an_envelope_cannot_move_to_another_key_id(vault: PayloadVault) -> None:
    """Rewriting the header to name another task's key is caught (the header is AAD)."""
    vault.seal(OTHER, b"make the key exist", b"x")
    envelope = vault.seal(TASK, b"raw", b"call:1")
    moved = envelope.replace(TASK.encode(), OTHER.encode(), 1)
    with pytest.raises(PayloadTampered):
        vault.open(moved, b"call:1")


def test_unknown_key_id_is_missing_not_erased(vault: PayloadVault) -> None:
    envelope = vault.seal(TASK, b"raw", b"c")
    with pytest.raises(PayloadKeyMissing):
        PayloadVault(MemoryKeyStore()).open(envelope, b"c")


def test_bad_key_ids_are_refused(vault: PayloadVault) -> None:
    with pytest.raises(PayloadError):
        vault.seal("", b"raw", b"c")
    with pytest.raises(PayloadError):
        vault.seal("k" * 70_000, b"raw", b"c")


def test_key_id_helpers() -> None:
    assert task_key_id("42") == "task:42"
    assert subject_key_id("cust-7") == "subject:cust-7"


# --- erasure ---------------------------------------------------------------------------


def test_erasure_makes_payloads_unreadable_and_leaves_other_keys_alone() -> None:
    clock = ManualClock(1_800_000_000.0)
    keys = MemoryKeyStore(clock=clock)
    vault = PayloadVault(keys)
    mine = vault.seal(TASK, b"alice@example.com", b"call:1")
    theirs = vault.seal(OTHER, b"bob@example.com", b"call:2")

    assert keys.destroy(TASK, by="dpo@example.com", reason="GDPR art. 17 request #12")

    with pytest.raises(PayloadErased) as info:
        vault.open(mine, b"call:1")
    assert info.value.key_id == TASK
    assert info.value.tombstone is not None
    assert info.value.tombstone.destroyed_by == "dpo@example.com"
    assert info.value.tombstone.destroyed_at == 1_800_000_000.0
    assert vault.open(theirs, b"call:2") == b"bob@example.com"
    assert keys.get(TASK) is None
    assert keys.destroyed(TASK)
    assert not keys.destroyed(OTHER)


def test_a_destroyed_key_id_is_never_reused() -> None:
    keys = MemoryKeyStore(clock=ManualClock(100.0))
    vault = PayloadVault(keys)
    vault.seal(TASK, b"raw", b"c")
    assert keys.destroy(TASK, by="alice") is True
    assert keys.destroy(TASK, by="bob") is False  # nothing left; the first tombstone stays
    tomb = keys.tombstone(TASK)
    assert tomb is not None
    assert tomb.destroyed_by == "alice"
    with pytest.raises(PayloadErased):
        vault.seal(TASK, b"new data for an erased task", b"c")
    with pytest.raises(PayloadErased):
        keys.get_or_create(TASK)


def test_erasing_a_subject_before_any_data_blocks_future_writes() -> None:
    keys = MemoryKeyStore()
    subject = subject_key_id("cust-7")
    assert keys.destroy(subject, by="dpo") is False
    assert keys.destroyed(subject)
    with pytest.raises(PayloadErased):
        PayloadVault(keys).seal(subject, b"raw", b"c")


# --- commitments -----------------------------------------------------------------------


def test_commitment_is_salted_sha256() -> None:
    salt = bytes(range(SALT_BYTES))
    digest = commitment(b"approved", salt)
    assert (
        digest
        == hashlib.sha256(b"handrail.payload-commitment.v1\x00" + salt + b"approved").hexdigest()
    )
    assert digest == commitment(b"approved", salt)
    assert digest != commitment(b"approved", new_salt())
    assert digest != commitment(b"denied", salt)
    assert verify_commitment(b"approved", salt, digest)
    assert verify_commitment(b"approved", salt, digest.upper())
    assert not verify_commitment(b"denied", salt, digest)
    with pytest.raises(PayloadError):
        commitment(b"x", b"short salt")


def test_commitment_verifies_while_the_key_lives_and_the_log_survives_erasure() -> None:
    keys = MemoryKeyStore()
    vault = PayloadVault(keys)
    aad = b"call:9:output"
    raw = b"approved"  # low entropy: two plausible values
    sealed = vault.seal_committed(TASK, raw, aad)
    leaf = {"call_id": "9", "tool": "crm.update", "output": sealed.commitment}
    leaf_hash = _leaf_hash(leaf)

    # The salt lives only inside the ciphertext.
    opened = vault.open_committed(sealed.envelope, aad)
    assert opened.value == raw
    assert opened.salt not in sealed.envelope
    assert verify_commitment(opened.value, opened.salt, leaf["output"])
    assert vault.open(sealed.envelope, aad) == raw  # open() returns the value alone

    keys.destroy(TASK, by="dpo")

    # Nobody can get the payload or the salt back...
    with pytest.raises(PayloadErased):
        vault.open_committed(sealed.envelope, aad)
    # ...nor confirm a guess: without the salt, hashing the candidates gives nothing.
    for guess in (b"approved", b"denied"):
        assert hashlib.sha256(guess).hexdigest() != leaf["output"]
        assert commitment(guess, new_salt()) != leaf["output"]
    # ...while the leaf, holding only the commitment, hashes exactly as it did.
    assert _leaf_hash(leaf) == leaf_hash


def test_open_committed_needs_a_salted_envelope(vault: PayloadVault) -> None:
    envelope = vault.seal(TASK, b"raw", b"c")
    with pytest.raises(PayloadError, match="seal_committed"):
        vault.open_committed(envelope, b"c")


def test_the_kind_byte_is_authenticated(vault: PayloadVault) -> None:
    """Relabelling a salted envelope as raw (to read salt||value) is caught."""
    sealed = vault.seal_committed(TASK, b"raw", b"c")
    relabelled = sealed.envelope[:1] + b"\x00" + sealed.envelope[2:]
    with pytest.raises(PayloadTampered):
        vault.open(relabelled, b"c")


# --- the SQLite key store --------------------------------------------------------------


def test_sqlite_key_store_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    with SQLiteKeyStore(path) as keys:
        sealed = PayloadVault(keys).seal_committed(TASK, b"alice@example.com", b"call:1")
        key = keys.get(TASK)
    with SQLiteKeyStore(path) as keys:
        assert keys.get(TASK) == key
        assert keys.get_or_create(TASK) == key
        opened = PayloadVault(keys).open_committed(sealed.envelope, b"call:1")
        assert verify_commitment(opened.value, opened.salt, sealed.commitment)


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_keys_for_many_ids_reads_makes_and_reports_tombstones(tmp_path: Path, backend: str) -> None:
    """A batch of records reads (or makes) each data key once; a destroyed key comes back
    as its tombstone, never as a new key."""
    keys = MemoryKeyStore() if backend == "memory" else SQLiteKeyStore(tmp_path / "keys.db")
    existing = keys.get_or_create(TASK)
    assert keys.destroy(OTHER, by="dpo") is False  # erased before it had a key
    fresh = task_key_id("t-3")
    found = PayloadVault(keys).keys_for([TASK, OTHER, fresh, fresh])
    assert found[TASK] == existing
    tomb = found[OTHER]
    assert isinstance(tomb, Tombstone)
    assert tomb.destroyed_by == "dpo"
    assert found[fresh] == keys.get(fresh)
    assert isinstance(found[fresh], bytes)
    assert len(found[fresh]) == 32
    assert keys.get(OTHER) is None  # no key was made beside the tombstone


def test_sqlite_tombstones_record_who_and_when_and_the_key_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    clock = ManualClock(1_800_000_000.5)
    with SQLiteKeyStore(path, clock=clock) as keys:
        vault = PayloadVault(keys)
        mine = vault.seal(TASK, b"raw", b"c")
        theirs = vault.seal(OTHER, b"other raw", b"c")
        key = keys.get(TASK)
        assert key is not None
        clock.advance(60)
        assert keys.destroy(TASK, by="dpo@example.com", reason="erasure request #12")
        assert keys.destroy(TASK, by="someone else") is False
    assert key not in path.read_bytes()  # secure_delete overwrote the row

    with SQLiteKeyStore(path) as keys:
        tomb = keys.tombstone(TASK)
        assert tomb is not None
        assert (tomb.destroyed_by, tomb.destroyed_at, tomb.reason) == (
            "dpo@example.com",
            1_800_000_060.5,
            "erasure request #12",
        )
        assert keys.destroyed(TASK)
        assert keys.get(TASK) is None
        assert keys.tombstone(OTHER) is None
        vault = PayloadVault(keys)
        with pytest.raises(PayloadErased) as info:
            vault.open(mine, b"c")
        assert info.value.tombstone == tomb
        with pytest.raises(PayloadErased):
            keys.get_or_create(TASK)
        assert vault.open(theirs, b"c") == b"other raw"


def test_sqlite_key_store_in_wal_mode_keeps_no_copy_of_a_destroyed_key(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "keys.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL").fetchone()
    conn.close()
    with SQLiteKeyStore(path) as keys:
        key = keys.get_or_create(TASK)
        keys.destroy(TASK, by="dpo")
        wal = path.with_name("keys.db-wal")
        leftovers = path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
        assert key not in leftovers


def test_importing_payloads_does_not_import_cryptography_or_sqlite() -> None:
    code = (
        "import sys, handrail.audit.payloads; "
        "print(sorted({'cryptography', 'sqlite3'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
