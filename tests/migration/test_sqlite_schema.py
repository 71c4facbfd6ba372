"""Applying the SQLite migrations yields schema.sql; the journal is append-only."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from handrail.store._sql import load_migrations, read_schema
from handrail.store.sqlite import SQLiteStore


def _schema(conn: sqlite3.Connection) -> set[tuple[str, str, str]]:
    rows = conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
        "AND name != 'handrail_migrations'"
    ).fetchall()
    return {(t, n, " ".join((s or "").split())) for t, n, s in rows}


def test_migrations_yield_the_schema(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "migrated.db")
    store.close()
    migrated = sqlite3.connect(tmp_path / "migrated.db")
    fresh = sqlite3.connect(tmp_path / "fresh.db")
    fresh.executescript(read_schema("handrail.store.sqlite"))
    assert _schema(migrated) == _schema(fresh)
    versions = migrated.execute("SELECT version FROM handrail_migrations").fetchall()
    assert versions == [(m.version,) for m in load_migrations("handrail.store.sqlite")]


def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    for _ in range(3):
        SQLiteStore(tmp_path / "x.db").close()
    conn = sqlite3.connect(tmp_path / "x.db")
    count = conn.execute("SELECT count(*) FROM handrail_migrations").fetchone()
    assert count == (len(load_migrations("handrail.store.sqlite")),)


def test_journal_rows_cannot_be_updated_or_deleted(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "x.db").close()
    conn = sqlite3.connect(tmp_path / "x.db")
    conn.execute(
        "INSERT INTO handrail_events (task_id, seq, kind, ts) VALUES ('t', 0, 'task_created', 1)"
    )
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE handrail_events SET kind = 'x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM handrail_events")
