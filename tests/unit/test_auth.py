"""Principals: tokens are checked against stored hashes; roles gate actions."""

from __future__ import annotations

from pathlib import Path

import pytest

from handrail.auth import AuthenticationError, Principals, add_principal, token_digest
from handrail.errors import ConfigurationError


def test_tokens_authenticate_and_roles_gate(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    token = add_principal(path, "carol", ["operator", "approver"])
    assert token_digest(token) in path.read_text()
    assert token not in path.read_text()
    principals = Principals.from_file(path)
    carol = principals.authenticate("carol", token)
    assert carol.roles == {"operator", "approver"}
    carol.require("operator", "cancel")
    with pytest.raises(AuthenticationError, match="needs the 'auditor' role"):
        carol.require("auditor", "read raw payloads")
    for name, tok in (("carol", token + "x"), ("carol", None), ("nobody", token)):
        with pytest.raises(AuthenticationError, match="cannot authenticate"):
            principals.authenticate(name, tok)


def test_bad_files_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        Principals.from_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('[principals.x]\ntoken_sha256 = "abc"\n')
    with pytest.raises(ConfigurationError, match="64 hex"):
        Principals.from_file(bad)
    with pytest.raises(ConfigurationError, match="unknown roles"):
        add_principal(tmp_path / "p.toml", "x", ["king"])
    with pytest.raises(ConfigurationError, match="letters"):
        add_principal(tmp_path / "p.toml", "bad name!", ["operator"])
