"""The audit log's Ed25519 signing key: where it lives, made on first use.

The key is a PKCS#8 PEM file, readable by its owner only (mode 0600). Where it is, in
order: the path given, ``$HANDRAIL_AUDIT_KEY``, or next to a SQLite database
(``<db>.audit-key``). A PostgreSQL deployment names the path explicitly or through the
environment (there is no file next to a server's database).

The first process to need the key creates it: written to a temporary file and linked into
place, so a concurrent process never reads half a key and exactly one key wins. Publish
the public key (:func:`public_key_text`, also written to ``<key>.pub``) where auditors
get it independently of the bundles they verify.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from handrail.audit.checkpoint import SigningKey, VerifyingKey, generate_signing_key
from handrail.errors import ConfigurationError

__all__ = [
    "KEY_ENV",
    "key_path_for",
    "load_or_create_signing_key",
    "load_signing_key",
    "public_key_text",
]

KEY_ENV = "HANDRAIL_AUDIT_KEY"
"""The environment variable naming the signing key file."""
SUFFIX = ".audit-key"


def key_path_for(db_path: str | os.PathLike[str] | None = None) -> Path:
    """Where the signing key is: ``$HANDRAIL_AUDIT_KEY`` if set, else ``<db>.audit-key``."""
    env = os.environ.get(KEY_ENV)
    if env:
        return Path(env)
    if db_path is None:
        raise ConfigurationError(
            f"no audit signing key location: set {KEY_ENV} to a file path (a PostgreSQL "
            "store has no database file to put it next to)"
        )
    return Path(f"{os.fspath(db_path)}{SUFFIX}")


def load_signing_key(path: str | os.PathLike[str], name: str) -> SigningKey:
    """The key in ``path``, signing as ``name`` (the log's origin). Refuses a file that
    others can read or write."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the audit signing key {path}: {exc}") from exc
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"the audit signing key {path} is accessible to other users "
            f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}"
        )
    try:
        return SigningKey.from_pem(name, pem)
    except ValueError as exc:
        raise ConfigurationError(f"{path} is not an Ed25519 private key: {exc}") from exc


def load_or_create_signing_key(
    name: str,
    *,
    path: str | os.PathLike[str] | None = None,
    db_path: str | os.PathLike[str] | None = None,
) -> SigningKey:
    """The log's signing key (signing as ``name``), created with mode 0600 if missing.

    ``path`` wins; else :func:`key_path_for` (``$HANDRAIL_AUDIT_KEY``, then
    ``<db_path>.audit-key``). A new key's public half is written beside it as
    ``<key>.pub`` (one vkey line).
    """
    target = Path(path) if path is not None else key_path_for(db_path)
    if target.exists():
        return load_signing_key(target, name)
    key = generate_signing_key(name)
    temp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.to_pem())
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, target)  # atomic, and fails if another process won the race
        except FileExistsError:
            return load_signing_key(target, name)
    finally:
        temp.unlink(missing_ok=True)
    Path(f"{target}.pub").write_text(public_key_text(key.public_key) + "\n", encoding="utf-8")
    return key


def public_key_text(key: SigningKey | VerifyingKey) -> str:
    """The public key as a one-line vkey (``<name>+<id>+<base64>``) for auditors."""
    public = key.public_key if isinstance(key, SigningKey) else key
    return public.to_vkey()
