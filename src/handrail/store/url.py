"""Turning a store URL (or path) into a store."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

from handrail.errors import ConfigurationError
from handrail.store.base import Store

DEFAULT_PATH = "handrail.db"


def open_store(target: str | os.PathLike[str] | None = None) -> Store:
    """Open the store ``target`` names.

    - ``None``: ``$HANDRAIL_DB`` if set, else ``handrail.db`` in the working directory;
    - a path, or ``sqlite:///relative.db`` / ``sqlite:////absolute.db``, with an optional
      ``?synchronous=NORMAL`` (default FULL: every commit reaches the disk);
    - ``postgresql://...`` (needs ``pip install handrail[postgres]``);
    - ``memory:`` for the in-memory store of :mod:`handrail.testing`.
    """
    if target is None:
        target = os.environ.get("HANDRAIL_DB") or DEFAULT_PATH
    text = os.fspath(target)
    if text.startswith(("postgresql://", "postgres://")):
        from handrail.store.postgres import PostgresStore

        return PostgresStore(text)
    if text == "memory:":
        from handrail.testing import MemoryStore

        return MemoryStore()
    synchronous = "FULL"
    if text.startswith("sqlite:"):
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise ConfigurationError(
                f"store URL {text!r}: a SQLite URL has no host; write sqlite:///file.db "
                "(relative) or sqlite:////abs/path/file.db"
            )
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        options = parse_qs(parts.query)
        synchronous = options.get("synchronous", ["FULL"])[0].upper()
        text = path
    elif "://" in text:
        raise ConfigurationError(
            f"store URL {text!r}: unknown scheme; use a file path, sqlite:///file.db, "
            "postgresql://user@host/db or memory:"
        )
    if not text:
        raise ConfigurationError("store URL names no file; write sqlite:///handrail.db")
    from handrail.store.sqlite import SQLiteStore

    return SQLiteStore(text, synchronous=synchronous)
