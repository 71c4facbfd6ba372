"""Shared fixtures: a store of each kind, PostgreSQL databases cloned from a template.

PostgreSQL tests use ``$HANDRAIL_TEST_PG_DSN`` (default: the local server,
``postgresql://postgres@127.0.0.1:5432/test``). Where it is unreachable they skip, saying
how to enable them; with ``HANDRAIL_REQUIRE_PG=1`` (as in CI) they fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from handrail import App
from handrail.store.base import Store
from handrail.testing import ManualClock, MemoryStore

PG_DSN = os.environ.get("HANDRAIL_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("HANDRAIL_REQUIRE_PG") == "1"


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


def pg_unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here, or ``None`` if they can."""
    try:
        import psycopg

        import handrail.store.postgres  # noqa: F401
    except Exception as exc:
        return f"the postgres extra is not installed ({exc}); pip install -e '.[postgres]'"
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return (
            f"PostgreSQL is not reachable at {PG_DSN} ({exc.__class__.__name__}); start it or "
            "set HANDRAIL_TEST_PG_DSN"
        )
    return None


def require_pg() -> None:
    reason = pg_unavailable()
    if reason is None:
        return
    if REQUIRE_PG:
        pytest.fail(f"HANDRAIL_REQUIRE_PG=1 but {reason}")
    pytest.skip(reason)


def _admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A database with handrail's migrations applied, to clone per test."""
    require_pg()
    from handrail.store.postgres import PostgresStore

    name = f"handrail_tmpl_{uuid.uuid4().hex[:10]}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    store = PostgresStore(with_database(PG_DSN, name))
    store.close()
    yield name
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A fresh database cloned from the template; dropped afterwards."""
    name = f"handrail_t_{uuid.uuid4().hex[:12]}"
    _admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield with_database(PG_DSN, name)
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        from handrail.store.sqlite import SQLiteStore

        return SQLiteStore(tmp_path / "handrail.db")
    url: str = request.getfixturevalue("pg_url")
    from handrail.store.postgres import PostgresStore

    return PostgresStore(url)


STORE_KINDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def store_factory(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[], Store]]:
    """Opens stores on one shared backing (same file / database / memory)."""
    opened: list[Store] = []
    memory = MemoryStore() if store_kind == "memory" else None

    def open_one() -> Store:
        store: Store = memory if memory is not None else _make_store(store_kind, tmp_path, request)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(store_factory: Callable[[], Store]) -> Store:
    return store_factory()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_000_000.0)


@pytest.fixture
def make_app(
    store_factory: Callable[[], Store], clock: ManualClock
) -> Iterator[Callable[..., App]]:
    """Apps over one shared store (each App a separate 'process'), on a manual clock."""
    apps: list[App] = []

    def make(**kwargs: object) -> App:
        app = App(store_factory(), clock=clock, **kwargs)  # type: ignore[arg-type]
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.heartbeat.stop()
