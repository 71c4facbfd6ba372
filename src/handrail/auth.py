"""Principals: who may act, proven by a token, with roles.

The faces that take requests from people (the CLI now, the HTTP API later) authenticate a
principal against a principals file before an operator action is carried out; the Python
API trusts its caller (it runs inside your own process) and records the name it is given.

A principals file is TOML; tokens are never stored, only their SHA-256::

    [principals.carol]
    token_sha256 = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
    roles = ["operator"]

``handrail principals add NAME --role operator`` creates an entry and prints its token
once. Roles: ``operator`` (start, cancel, resume, halt, release, resolve interventions),
``approver``, ``auditor``, ``engineer``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handrail.errors import ConfigurationError, HandrailError

ROLES: tuple[str, ...] = ("operator", "approver", "auditor", "engineer")


class AuthenticationError(HandrailError):
    """The principal is unknown, the token is wrong, or the role is missing."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated identity."""

    name: str
    roles: frozenset[str]

    def require(self, role: str, action: str) -> None:
        if role not in self.roles:
            raise AuthenticationError(
                f"{self.name} may not {action}: it needs the {role!r} role "
                f"(has: {', '.join(sorted(self.roles)) or 'none'})"
            )


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return "hr_" + secrets.token_urlsafe(32)


class Principals:
    """The principals a face accepts."""

    def __init__(self, entries: Mapping[str, tuple[str, Iterable[str]]]):
        self._entries = {
            name: (digest.lower(), frozenset(roles)) for name, (digest, roles) in entries.items()
        }

    @classmethod
    def from_file(cls, path: str | Path) -> Principals:
        file = Path(path)
        try:
            data: dict[str, Any] = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigurationError(
                f"principals file {file} does not exist; create one with "
                "`handrail principals add NAME --role operator --file PATH`"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"principals file {file} is not valid TOML: {exc}") from None
        entries: dict[str, tuple[str, list[str]]] = {}
        for name, entry in (data.get("principals") or {}).items():
            digest = entry.get("token_sha256") if isinstance(entry, dict) else None
            roles = entry.get("roles", []) if isinstance(entry, dict) else []
            if not isinstance(digest, str) or len(digest) != 64:
                raise ConfigurationError(
                    f"principals file {file}: {name} needs token_sha256 (64 hex digits)"
                )
            unknown = set(roles) - set(ROLES)
            if unknown:
                raise ConfigurationError(
                    f"principals file {file}: {name} has unknown roles {sorted(unknown)}; "
                    f"known: {', '.join(ROLES)}"
                )
            entries[name] = (digest, list(roles))
        return cls(entries)

    def authenticate(self, name: str, token: str | None) -> Principal:
        """The principal ``name`` if ``token`` is its token."""
        entry = self._entries.get(name)
        digest = token_digest(token or "")
        # compare even for unknown names, so timing does not tell which names exist
        expected = entry[0] if entry is not None else "0" * 64
        if not token or not hmac.compare_digest(digest, expected) or entry is None:
            raise AuthenticationError(
                f"cannot authenticate {name!r}: unknown principal or wrong token "
                "(set HANDRAIL_TOKEN to the token `handrail principals add` printed)"
            )
        return Principal(name, entry[1])

    def identify(self, token: str | None) -> Principal:
        """The principal whose token ``token`` is (a bearer token alone names it)."""
        digest = token_digest(token or "")
        found: Principal | None = None
        # every entry is compared, so timing does not tell how far the search got
        for name, (expected, roles) in self._entries.items():
            if hmac.compare_digest(digest, expected):
                found = Principal(name, roles)
        if not token or found is None:
            raise AuthenticationError(
                "unknown token: use the token `handrail principals add` printed"
            )
        return found

    def get(self, name: str) -> Principal | None:
        """The principal ``name`` (its roles), or ``None``; no token is checked."""
        entry = self._entries.get(name)
        return None if entry is None else Principal(name, entry[1])


def add_principal(path: str | Path, name: str, roles: Iterable[str]) -> str:
    """Append a principal to a principals file (created if missing); return its token."""
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ConfigurationError(
            f"principal name {name!r}: use letters, digits, '-', '_' and '.' only"
        )
    roles = list(roles)
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ConfigurationError(f"unknown roles {sorted(unknown)}; known: {', '.join(ROLES)}")
    file = Path(path)
    if file.exists():
        existing = Principals.from_file(file)
        if name in existing._entries:
            raise ConfigurationError(f"{name} is in {file} already")
    token = new_token()
    role_list = ", ".join(f'"{r}"' for r in roles)
    with file.open("a", encoding="utf-8") as out:
        out.write(
            f'\n[principals."{name}"]\ntoken_sha256 = "{token_digest(token)}"\n'
            f"roles = [{role_list}]\n"
        )
    file.chmod(0o600)
    return token
