"""Applying the PostgreSQL migrations yields schema.sql; opening is safe from many processes
at once; the journal is append-only.

Uses ``$HANDRAIL_TEST_PG_DSN`` (default the local server); skips where it is unreachable,
fails instead with ``HANDRAIL_REQUIRE_PG=1``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from conftest import PG_DSN, require_pg
from handrail.store._sql import load_migrations

pytestmark = pytest.mark.postgres


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(sql.encode())


@pytest.fixture
def new_database() -> Iterator[Callable[[], str]]:
    """Makes empty databases (URLs), dropped afterwards."""
    require_pg()
    made: list[str] = []

    def make() -> str:
        name = f"handrail_mig_{uuid.uuid4().hex[:12]}"
        _admin(f'CREATE DATABASE "{name}" TEMPLATE template0')
        made.append(name)
        return urlunsplit(urlsplit(PG_DSN)._replace(path="/" + name))

    yield make
    for name in made:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_CATALOG = {
    "relations": """
        SELECT c.relname, c.relkind::text, c.relpersistence::text
        FROM pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace
          AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
          AND c.relname <> 'handrail_migrations'
    """,
    "columns": """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), co.collname,
               rank() OVER (PARTITION BY c.relname ORDER BY a.attnum)
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        LEFT JOIN pg_collation co ON co.oid = a.attcollation
        WHERE c.relnamespace = current_schema()::regnamespace
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND c.relname <> 'handrail_migrations'
          AND a.attnum > 0 AND NOT a.attisdropped
    """,
    "information_schema.columns": """
        SELECT table_name, column_name, data_type, is_nullable, column_default,
               numeric_precision
        FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name <> 'handrail_migrations'
    """,
    "constraints": """
        SELECT c.conrelid::regclass::text, c.conname, c.contype::text,
               pg_get_constraintdef(c.oid)
        FROM pg_constraint c
        WHERE c.connamespace = current_schema()::regnamespace
          AND c.conrelid::regclass::text <> 'handrail_migrations'
    """,
    "indexes": """
        SELECT tablename, indexname, indexdef
        FROM pg_indexes
        WHERE schemaname = current_schema() AND tablename <> 'handrail_migrations'
    """,
    "triggers": """
        SELECT t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled::text
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal
    """,
    "functions": """
        SELECT p.proname, pg_get_functiondef(p.oid)
        FROM pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace
    """,
}


def _catalog(url: str) -> dict[str, set[tuple[Any, ...]]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return {
            what: set(conn.execute(query.encode()).fetchall()) for what, query in _CATALOG.items()
        }


def _open(url: str) -> None:
    from handrail.store.postgres import PostgresStore

    PostgresStore(url).close()


def test_migrations_yield_the_schema(new_database: Callable[[], str]) -> None:
    import psycopg

    from handrail.store._sql import load_migrations, read_schema

    migrated, fresh = new_database(), new_database()
    _open(migrated)
    with psycopg.connect(fresh) as conn:
        conn.execute(read_schema("handrail.store.postgres").encode())
    got, want = _catalog(migrated), _catalog(fresh)
    for what in _CATALOG:
        assert got[what] == want[what], what
    assert {"handrail_tasks", "handrail_events"} <= {r[0] for r in got["relations"]}
    assert len([t for t in got["triggers"] if t[0] == "handrail_events"]) == 2
    with psycopg.connect(migrated) as conn:
        versions = conn.execute("SELECT version FROM handrail_migrations ORDER BY 1").fetchall()
    assert versions == [(m.version,) for m in load_migrations("handrail.store.postgres")]


def test_many_processes_opening_at_once_migrate_once(new_database: Callable[[], str]) -> None:
    import psycopg

    url = new_database()
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def open_one() -> None:
        try:
            start.wait()
            _open(url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    _open(url)  # and reopening applies nothing twice
    with psycopg.connect(url) as conn:
        count = conn.execute("SELECT count(*) FROM handrail_migrations").fetchone()
    assert count == (len(load_migrations("handrail.store.postgres")),)


def test_journal_rows_cannot_be_updated_or_deleted(new_database: Callable[[], str]) -> None:
    import psycopg

    url = new_database()
    _open(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO handrail_events (task_id, seq, kind, ts) "
            "VALUES ('t', 0, 'task_created', 1)"
        )
        with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
            conn.execute("UPDATE handrail_events SET kind = 'x'")
        with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
            conn.execute("DELETE FROM handrail_events")
        assert conn.execute("SELECT count(*) FROM handrail_events").fetchone() == (1,)


def test_an_unreachable_server_is_a_store_error() -> None:
    from handrail.errors import StoreError

    try:
        from handrail.store.postgres import PostgresStore
    except Exception as exc:
        pytest.skip(f"the postgres extra is not installed ({exc})")
    with pytest.raises(StoreError, match="cannot open PostgreSQL store") as info:
        PostgresStore("postgresql://u:secret@127.0.0.1:1/nowhere", connect_timeout=2)
    assert "secret" not in str(info.value)
    assert "u:***@127.0.0.1:1" in str(info.value)
