"""Signed checkpoints: the note format, Ed25519 keys, and what a forgery looks like."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys

import pytest

from handrail.audit.checkpoint import (
    Checkpoint,
    SigningKey,
    VerifyingKey,
    generate_signing_key,
    parse_checkpoint,
    sign_checkpoint,
    verify_checkpoint,
)
from handrail.audit.leaf import canonical_json, decode_leaf, encode_leaf, leaf_seq
from handrail.errors import AuditError, CheckpointMalformed, SerializationError, SignatureInvalid

ORIGIN = "audit.example.com/log"
ROOT = hashlib.sha256(b"a root").digest()


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.from_private_bytes(ORIGIN, bytes(range(32)))


def test_import_handrail_does_not_load_cryptography() -> None:
    code = (
        "import sys, handrail, handrail.audit.checkpoint, handrail.audit.verify; "
        "print('cryptography' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_checkpoint_text_is_the_tlog_checkpoint_format(key: SigningKey) -> None:
    checkpoint = Checkpoint(ORIGIN, 42, ROOT)
    note = sign_checkpoint(checkpoint, key)
    body, _, signature_line = note.partition("\n\n")
    assert body + "\n" == checkpoint.text()
    assert body.split("\n") == [ORIGIN, "42", base64.b64encode(ROOT).decode()]
    assert signature_line.startswith(f"\u2014 {ORIGIN} ")
    blob = base64.b64decode(signature_line.split(" ")[2])
    assert blob[:4] == key.public_key.key_id
    expected_id = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + key.public_key.raw).digest()[:4]
    assert key.public_key.key_id == expected_id
    assert key.public_key.verify(blob[4:], checkpoint.text().encode())
    assert verify_checkpoint(note, key.public_key) == checkpoint
    assert parse_checkpoint(note) == checkpoint


def test_keys_and_signatures_match_go_sumdb_note() -> None:
    """The known answer of golang.org/x/mod/sumdb/note's documented example: same key id,
    same vkey, same Ed25519 signature blob, so Go-ecosystem tools read our notes."""
    vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
    text = (
        b"If you think cryptography is the answer to your problem,\n"
        b"then you don't know what your problem is.\n"
    )
    blob = (
        "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6R"
        "yyBwJnAM="
    )
    public = VerifyingKey.from_vkey(vkey)
    assert public.to_vkey() == vkey
    signer = SigningKey.from_private_bytes(
        "PeterNeumann", base64.b64decode(skey.split("+", 4)[4])[1:]
    )
    assert signer.public_key == public
    assert base64.b64encode(public.key_id + signer.sign(text)).decode() == blob
    assert public.verify(base64.b64decode(blob)[4:], text)
    # A vkey whose base64 holds the "+" separator (transparency-dev/formats tests).
    plus = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
    assert VerifyingKey.from_vkey(plus).to_vkey() == plus


def test_extension_lines_are_signed_too(key: SigningKey) -> None:
    checkpoint = Checkpoint(ORIGIN, 7, ROOT, ("timestamp 1700000000",))
    note = sign_checkpoint(checkpoint, key)
    assert verify_checkpoint(note, key.public_key) == checkpoint
    with pytest.raises(SignatureInvalid):
        verify_checkpoint(note.replace("1700000000", "1700000001"), key.public_key)


def test_another_key_or_an_edit_is_signature_invalid(key: SigningKey) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), key)
    impostor = generate_signing_key(ORIGIN)
    with pytest.raises(SignatureInvalid, match="no signature by") as caught:
        verify_checkpoint(sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), impostor), key.public_key)
    assert caught.value.key_name == ORIGIN
    assert isinstance(caught.value, AuditError)
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify_checkpoint(note.replace("\n42\n", "\n43\n"), key.public_key)
    other_root = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with pytest.raises(SignatureInvalid):
        verify_checkpoint(note.replace(base64.b64encode(ROOT).decode(), other_root), key.public_key)
    # A co-signature by someone else is ignored; the log's own signature decides.
    cosigned = note + sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), impostor).split("\n\n")[1]
    assert verify_checkpoint(cosigned, key.public_key).size == 42


@pytest.mark.parametrize(
    "note",
    [
        "",
        "no blank line\n",
        f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n\n- not an em dash\n",
        f"{ORIGIN}\n042\nAAAA\n\n\u2014 {ORIGIN} AAAAAAAA\n",
        f"{ORIGIN}\n42\nnot base64!\n\n\u2014 {ORIGIN} AAAAAAAA\n",
        f"{ORIGIN}\n42\n{base64.b64encode(b'short').decode()}\n\n\u2014 {ORIGIN} AAAAAAAA\n",
        f"{ORIGIN}\n42\n\n\u2014 {ORIGIN} AAAAAAAA\n",
        f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n\n\u2014 {ORIGIN} AAAA\n",
        f"{ORIGIN}\x07\n42\n{base64.b64encode(ROOT).decode()}\n\n\u2014 {ORIGIN} AAAAAAAA\n",
    ],
)
def test_unparseable_notes_are_malformed(note: str, key: SigningKey) -> None:
    with pytest.raises(CheckpointMalformed):
        verify_checkpoint(note, key.public_key)


def test_keys_export_and_import(key: SigningKey) -> None:
    public = key.public_key
    assert VerifyingKey.from_vkey(public.to_vkey()) == public
    assert public.to_vkey().startswith(f"{ORIGIN}+{public.key_id.hex()}+")
    assert VerifyingKey.from_pem(ORIGIN, public.to_pem()) == public
    assert public.to_pem().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert SigningKey.from_pem(ORIGIN, key.to_pem()).public_key == public
    encrypted = key.to_pem(password=b"secret")
    assert b"ENCRYPTED" in encrypted
    assert SigningKey.from_pem(ORIGIN, encrypted, password=b"secret").public_key == public
    assert SigningKey.from_private_bytes(ORIGIN, key.private_bytes()).public_key == public
    assert "private" not in repr(key).lower()
    for _ in range(20):  # base64 may contain "+", the vkey separator
        fresh = generate_signing_key(ORIGIN).public_key
        assert VerifyingKey.from_vkey(fresh.to_vkey()) == fresh
    vkey = public.to_vkey()
    with pytest.raises(ValueError, match="key id"):
        VerifyingKey.from_vkey(vkey.replace(public.key_id.hex(), "00000000"))
    with pytest.raises(ValueError, match="name"):
        generate_signing_key("has space")
    with pytest.raises(ValueError, match="32 bytes"):
        VerifyingKey(ORIGIN, b"short")


def test_canonical_leaf_bytes() -> None:
    record = {"b": [1, "é", None], "a": {"z": True, "y": "line\nbreak"}}
    leaf = encode_leaf(7, record)
    assert leaf == (
        '{"record":{"a":{"y":"line\\nbreak","z":true},"b":[1,"é",null]},"seq":7}'.encode()
    )
    assert b"\n" not in leaf
    assert leaf_seq(leaf) == 7
    assert decode_leaf(leaf) == (7, record)
    assert canonical_json({"b": 1, "a": 2}) == b'{"a":2,"b":1}'
    for bad in (b'{"record":{},"seq":07}', b'{"record":{},"seq":x}', b"", b'{"seq":1} '):
        assert leaf_seq(bad) is None
    with pytest.raises(ValueError, match="canonical"):
        decode_leaf(b'{"seq":7,"record":{}}')
    with pytest.raises(SerializationError):
        encode_leaf(1, {"x": float("nan")})
    with pytest.raises(ValueError, match="non-negative"):
        encode_leaf(-1, {})
