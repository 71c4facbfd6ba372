"""A bearer token alone names its principal (the HTTP API's authentication)."""

from __future__ import annotations

from pathlib import Path

import pytest

from handrail.auth import AuthenticationError, Principals, add_principal


def test_identify_by_token(tmp_path: Path) -> None:
    path = tmp_path / "principals.toml"
    alice = add_principal(path, "alice", ["approver"])
    bob = add_principal(path, "bob", ["operator", "auditor"])
    principals = Principals.from_file(path)
    assert principals.identify(alice).name == "alice"
    who = principals.identify(bob)
    assert (who.name, who.roles) == ("bob", frozenset({"operator", "auditor"}))
    for bad in ("", None, "hr_nope", alice + "x"):
        with pytest.raises(AuthenticationError, match="unknown token"):
            principals.identify(bad)
    assert principals.get("bob") == who
    assert principals.get("carol") is None
