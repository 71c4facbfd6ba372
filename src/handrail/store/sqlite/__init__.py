"""The SQLite store: one file, WAL mode, the embedded default."""

from handrail.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
