"""The log's signing key: made once with mode 0600 next to the database (or where
HANDRAIL_AUDIT_KEY says), loaded afterwards, refused when others can read it."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from handrail.audit.checkpoint import VerifyingKey
from handrail.audit.keys import (
    KEY_ENV,
    key_path_for,
    load_or_create_signing_key,
    load_signing_key,
    public_key_text,
)
from handrail.errors import ConfigurationError

ORIGIN = "handrail.test/audit"


def test_the_key_is_created_next_to_the_database_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    db = tmp_path / "handrail.db"
    first = load_or_create_signing_key(ORIGIN, db_path=db)
    path = tmp_path / "handrail.db.audit-key"
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create_signing_key(ORIGIN, db_path=db)
    assert again.private_bytes() == first.private_bytes()
    published = (tmp_path / "handrail.db.audit-key.pub").read_text().strip()
    assert VerifyingKey.from_vkey(published) == first.public_key
    assert public_key_text(first) == published == public_key_text(first.public_key)


def test_the_environment_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "keys" / "audit.pem"
    monkeypatch.setenv(KEY_ENV, str(target))
    assert key_path_for(tmp_path / "ignored.db") == target
    key = load_or_create_signing_key(ORIGIN)
    assert load_signing_key(target, ORIGIN).public_key == key.public_key
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ConfigurationError, match=KEY_ENV):
        key_path_for(None)


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k"
    load_or_create_signing_key(ORIGIN, path=path)
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        load_signing_key(path, ORIGIN)
    path.chmod(0o600)
    path.write_bytes(b"not a key")
    with pytest.raises(ConfigurationError, match="not an Ed25519"):
        load_signing_key(path, ORIGIN)


def test_racing_creators_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "shared.audit-key"
    found: list[bytes] = []
    start = threading.Barrier(6)

    def make() -> None:
        start.wait()
        found.append(load_or_create_signing_key(ORIGIN, path=path).private_bytes())

    threads = [threading.Thread(target=make) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(found) == 6
    assert len(set(found)) == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
