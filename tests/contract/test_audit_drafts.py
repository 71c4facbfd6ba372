"""A step's audit record commits with the step as a draft; the audit log seals drafts into
records before anyone reads or sequences them (issue 4, items 1 and 10).

On SQLite and PostgreSQL the step's transaction writes one row in
``handrail_audit_drafts`` (the compliance view final, the raw payloads unsealed): no
crypto and no key store on the step's path. The in-memory store seals on write.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from contextlib import closing
from typing import Any

import pytest

from handrail import App, TaskContext
from handrail.audit.checkpoint import generate_signing_key
from handrail.audit.record import AuditDraft, RecordKind, tool_call_record
from handrail.store.base import Store

MakeApp = Callable[..., App]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_kind(request: pytest.FixtureRequest) -> str:
    """The stores that keep drafts (the in-memory one seals records as it writes them)."""
    kind: str = request.param
    return kind


def _count(store: Store, table: str) -> int:
    """Rows in an audit table, read with SQL of the store's own kind."""
    if type(store).__name__ == "SQLiteStore":
        with closing(sqlite3.connect(store.path)) as conn:  # type: ignore[attr-defined]
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    import psycopg

    with psycopg.connect(store.url) as conn:  # type: ignore[attr-defined]
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        return int(row[0])


def _chain(app: App, steps: int) -> Callable[..., Any]:
    @app.tool(idempotent=True, describe="Touch item {i}")
    def touch(i: int) -> dict[str, int]:
        return {"touched": i}

    @app.workflow
    def chain(ctx: TaskContext, n: int) -> int:
        for i in range(n):
            touch(i)
        return n

    return chain


def test_a_step_commits_a_draft_and_the_first_read_seals_it(
    make_app: MakeApp, store_kind: str
) -> None:
    app = make_app()
    handle = app.run(_chain(app, 5), 5)
    store = app.store
    assert _count(store, "handrail_audit_drafts") == 5
    assert _count(store, "handrail_audit_records") == 0

    log = store.audit_log()
    assert log.pending() == 5  # drafts wait for the sequencer like records do
    calls = [tool_call_record(r, log.vault) for r in log.records(task_id=handle.task_id)]

    assert [c.raw_input for c in calls] == [{"i": i} for i in range(5)]
    assert [c.raw_output for c in calls] == [{"touched": i} for i in range(5)]
    assert [c.action_description for c in calls] == [f"Touch item {i}" for i in range(5)]
    assert _count(store, "handrail_audit_drafts") == 0
    assert _count(store, "handrail_audit_records") == 5
    stored = log.records(task_id=handle.task_id)
    technical = [r.technical_json or "" for r in stored]
    assert all('"raw_input"' in t and "touched" not in t for t in technical)  # sealed


def test_the_sequencer_seals_drafts_before_it_signs(make_app: MakeApp) -> None:
    app = make_app()
    app.run(_chain(app, 3), 3)
    log = app.store.audit_log()
    signed = log.sequence(generate_signing_key("test"), "handrail.test/log")
    assert signed is not None
    assert signed.size == 3
    assert log.pending() == 0
    assert _count(app.store, "handrail_audit_drafts") == 0


def test_records_keep_the_order_their_steps_committed_in(make_app: MakeApp) -> None:
    app = make_app()

    @app.tool(idempotent=True)
    def step(i: int) -> int:
        return i

    @app.workflow
    def wf(ctx: TaskContext) -> int:
        step(0)
        step(1)
        return 2

    first = app.run(wf)
    log = app.store.audit_log()
    # A standalone record (an operator's action) appended now comes after both steps'.
    from handrail.audit.record import build_audit_record

    log.append(
        [
            build_audit_record(
                RecordKind.HALT,
                call_id="halt:h1:halt",
                task_id=None,
                actor="ops",
                timestamp=1.0,
                logged_at=1.0,
            )
        ]
    )
    second = app.run(wf)
    call_ids = [r.call_id for r in log.records(limit=100)]
    assert call_ids == [
        f"{first.task_id}:0:1",
        f"{first.task_id}:1:1",
        "halt:h1:halt",
        f"{second.task_id}:0:1",
        f"{second.task_id}:1:1",
    ]


def test_many_sealers_at_once_seal_every_draft_exactly_once(
    make_app: MakeApp, store_kind: str
) -> None:
    app = make_app()
    chain = _chain(app, 1)
    handles = []
    stop = threading.Event()
    errors: list[BaseException] = []
    # Each sealer has its own log (its own connections), as separate processes would.
    logs = [type(app.store)(app.store.path if store_kind == "sqlite" else app.store.url)  # type: ignore[attr-defined]
            .audit_log() for _ in range(3)]  # fmt: skip

    def seal(log: Any) -> None:
        try:
            while not stop.is_set():
                log.seal_drafts()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=seal, args=(log,)) for log in logs]
    for thread in threads:
        thread.start()
    try:
        for _ in range(8):
            handles.append(app.run(chain, 25))
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not errors, errors
    log = app.store.audit_log()
    call_ids = [r.call_id for r in log.records(limit=10_000)]
    expected = {f"{h.task_id}:{i}:1" for h in handles for i in range(25)}
    assert sorted(call_ids) == sorted(expected)  # each once: none lost, none twice
    assert _count(app.store, "handrail_audit_drafts") == 0
    for other in logs:
        other.close()


def test_a_stale_sealer_never_deletes_a_later_draft_that_reuses_an_id(tmp_path: Any) -> None:
    """SQLite gives a freed rowid to the next row: a sealer that read drafts before another
    sealed (and deleted) them must not delete the new drafts that took their ids."""
    from handrail.store.sqlite import SQLiteStore
    from handrail.store.sqlite.audit import _store_sealed, insert_audit_drafts

    store = SQLiteStore(tmp_path / "h.db")
    log = store.audit_log()

    def drafts(prefix: str) -> list[AuditDraft]:
        return [AuditDraft(f"{prefix}{i}", "t", "tool_call", 1.0, f'{{"n":{i}}}') for i in range(3)]

    def write(batch: list[AuditDraft]) -> None:
        with closing(sqlite3.connect(store.path)) as conn, conn:
            insert_audit_drafts(conn, batch)

    write(drafts("old"))
    with closing(sqlite3.connect(store.path)) as conn:
        stale = [
            (int(i), str(c))
            for i, c in conn.execute("SELECT id, call_id FROM handrail_audit_drafts")
        ]
    assert log.seal_drafts() == 3  # another sealer got there first
    write(drafts("new"))  # the table was empty: the new drafts reuse ids 1, 2, 3
    with closing(sqlite3.connect(store.path)) as conn:
        reused = [int(i) for (i,) in conn.execute("SELECT id FROM handrail_audit_drafts")]
    assert sorted(reused) == sorted(i for i, _ in stale)

    with closing(sqlite3.connect(store.path, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        _store_sealed(conn, records=[], done=stale)  # the stale sealer's delete
        conn.execute("COMMIT")
    assert log.seal_drafts() == 3  # the new drafts were still there
    assert [r.call_id for r in log.records()] == [f"old{i}" for i in range(3)] + [
        f"new{i}" for i in range(3)
    ]
    store.close()
