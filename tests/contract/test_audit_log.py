"""The audit log contract: memory, SQLite and PostgreSQL logs pass the same tests.

Records inserted by writers are sequenced into contiguous leaves under signed checkpoints;
every record has an inclusion proof and every pair of checkpoints a consistency proof; an
exported bundle verifies offline, and still does after a task's payloads are erased; the
outbox delivers every record to a sink that fails and recovers, once and in order;
retention destroys only expired keys and says so in the log. Backend-specific: the SQL
tables refuse UPDATE and DELETE, a PostgreSQL insert rolled back or committed late leaves a
gap in ids but none in leaf indexes, and two SQLite processes write one log.
"""

from __future__ import annotations

import io
import itertools
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from handrail.audit.checkpoint import SigningKey, generate_signing_key, verify_checkpoint
from handrail.audit.delivery import Backoff, Delivery
from handrail.audit.leaf import encode_leaf
from handrail.audit.log import AuditLog, AuditLogError
from handrail.audit.memory import MemoryAuditLog
from handrail.audit.merkle import verify_consistency
from handrail.audit.payloads import task_key_id
from handrail.audit.record import (
    AuditRow,
    ErasedPayload,
    RecordKind,
    build_tool_call_record,
    technical_view,
)
from handrail.audit.retention import RetentionPolicy, erase, run_retention
from handrail.audit.sequencer import Sequencer
from handrail.audit.verify import VerifyCode, verify_bundle
from handrail.testing import ManualClock

ORIGIN = "handrail.test/audit"
NOW = 1_700_000_000.0
POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)
KINDS = ["memory", "sqlite", POSTGRES]


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return generate_signing_key(ORIGIN)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=NOW)


@pytest.fixture(params=KINDS)
def audit_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def db(audit_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where the log lives: a SQLite file or a PostgreSQL URL ('' in memory)."""
    if audit_kind == "sqlite":
        return str(tmp_path / "handrail.db")
    if audit_kind == "postgres":
        url: str = request.getfixturevalue("pg_url")
        return url
    return ""


@pytest.fixture
def open_log(audit_kind: str, db: str, clock: ManualClock) -> Iterator[Callable[[], AuditLog]]:
    """Opens logs on one backing (one memory log is shared)."""
    opened: list[AuditLog] = []
    memory = MemoryAuditLog(clock=clock)

    def make() -> AuditLog:
        log: AuditLog
        if audit_kind == "memory":
            log = memory
        elif audit_kind == "sqlite":
            from handrail.store.sqlite.audit import SQLiteAuditLog

            log = SQLiteAuditLog(db, clock=clock)
        else:
            from handrail.store.postgres.audit import PostgresAuditLog

            log = PostgresAuditLog(db, clock=clock)
        opened.append(log)
        return log

    yield make
    for log in opened:
        log.close()


@pytest.fixture
def log(open_log: Callable[[], AuditLog]) -> AuditLog:
    return open_log()


def call(log: AuditLog, n: int, *, task: str = "t1", prefix: str = "c") -> AuditRow:
    return build_tool_call_record(
        call_id=f"{prefix}{n}",
        task_id=task,
        tool_name="refund",
        params={"email": f"user{n}@example.com", "amount": n},
        started_at=NOW + n,
        duration_ms=12.5,
        logged_at=NOW + n,
        vault=log.vault,
        output={"refunded": n},
        describe="Refund {amount} to {email}",
        data_accessed=["customer.email"],
        data_modified=["payments"],
        authorized_by="carol",
    )


def assert_contiguous(log: AuditLog, expected: int) -> None:
    """Leaves 0..expected-1, each record exactly once, in a tree the latest checkpoint
    signs."""
    records = log.records(limit=10_000)
    indexes = sorted(r.leaf_index for r in records if r.leaf_index is not None)
    assert indexes == list(range(expected))
    assert len(records) == expected
    assert log.size() == expected
    assert log.pending() == 0


def test_records_are_sequenced_into_contiguous_leaves_under_signed_checkpoints(
    log: AuditLog, key: SigningKey
) -> None:
    rows = [call(log, n) for n in range(10)]
    assert log.append(rows[:6]) == 6
    assert log.append(rows[4:]) == 4  # c4, c5 are logged already: skipped
    assert log.pending() == 10
    assert log.latest_checkpoint() is None

    made = []
    while (signed := log.sequence(key, ORIGIN, max_batch=4)) is not None:
        made.append(signed)
    assert [c.size for c in made] == [4, 8, 10]
    assert log.sequence(key, ORIGIN) is None
    assert_contiguous(log, 10)
    assert [c.note for c in log.checkpoints()] == [c.note for c in made]
    assert [c.size for c in log.checkpoints(up_to=9)] == [4, 8]
    latest = log.latest_checkpoint()
    assert latest is not None
    assert latest.note == made[-1].note
    for signed in made:
        assert verify_checkpoint(signed.note, key.public_key) == signed.checkpoint

    # Leaf i is record i in insertion (id) order, with its canonical bytes.
    records = log.records(limit=100)
    assert [r.call_id for r in records] == [f"c{n}" for n in range(10)]
    leaves = log.leaves(0, 10)
    for record, leaf in zip(records, leaves, strict=True):
        assert record.leaf_index is not None
        assert leaf == encode_leaf(record.leaf_index, json.loads(record.leaf_body))
        assert record.leaf() == leaf
    assert log.leaves(3, 5) == leaves[3:5]

    # Every record is provably in every checkpoint that covers it, by index or call id.
    for signed, record in itertools.product(made, records):
        assert record.leaf_index is not None
        if record.leaf_index < signed.size:
            proof = log.inclusion_proof(record.call_id, signed.size)
            assert proof.leaf_hash == record.leaf_hash
            proof.verify(signed.root_hash)
    assert log.inclusion_proof(7).tree_size == 10

    # Every older checkpoint is a prefix of every newer one.
    for old, new in itertools.combinations(made, 2):
        proof = log.consistency_proof(old.size, new.size)
        verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
    assert log.consistency_proof(4) == log.consistency_proof(4, 10)

    log.append([call(log, 99)])
    with pytest.raises(AuditLogError, match=r"cannot be sequenced as 'another\.origin/audit'"):
        log.sequence(key, "another.origin/audit")
    assert log.pending() == 1  # refused, and nothing was written


def test_filters_find_records(log: AuditLog, key: SigningKey) -> None:
    log.append([call(log, n, task="a" if n % 2 else "b") for n in range(6)])
    assert [r.call_id for r in log.records(task_id="a")] == ["c1", "c3", "c5"]
    assert [r.call_id for r in log.records(since=NOW + 2, until=NOW + 4)] == ["c2", "c3"]
    first = log.records(limit=2)
    assert [r.call_id for r in log.records(after_id=first[-1].record_id, limit=2)] == ["c2", "c3"]
    assert log.records(kind=RecordKind.ERASURE) == []
    record = log.record("c4")
    assert record is not None
    assert record.leaf_index is None
    assert record.task_id == "b"
    assert log.record("nope") is None


def test_export_verifies_offline_and_still_does_after_erasure(
    log: AuditLog, key: SigningKey, clock: ManualClock
) -> None:
    log.append([call(log, n, task="t1" if n < 3 else "t2") for n in range(5)])
    log.sequence(key, ORIGIN, max_batch=2)
    log.sequence(key, ORIGIN, max_batch=100)
    before = io.BytesIO()
    assert log.export_bundle(before, key.public_key) == 5
    verdict = verify_bundle(before.getvalue(), trusted_key=key.public_key)
    assert verdict.code is VerifyCode.OK, verdict.message
    assert verdict.checkpoints == 2

    record = log.record("c1")
    assert record is not None
    opened = technical_view(record, log.vault)
    assert opened["raw_input"] == {"email": "user1@example.com", "amount": 1}
    assert opened["raw_output"] == {"refunded": 1}
    assert "user1@example.com" not in record.leaf_body + record.compliance_json

    erased = erase(log, task_key_id("t1"), by="dpo", reason="subject request", task_id="t1")
    assert erased.destroyed
    view = technical_view(record, log.vault)
    assert isinstance(view["raw_input"], ErasedPayload)
    assert view["raw_input"].tombstone is not None
    assert view["raw_input"].tombstone.destroyed_by == "dpo"
    other = log.record("c4")
    assert other is not None
    assert technical_view(other, log.vault)["raw_output"] == {"refunded": 4}

    log.sequence(key, ORIGIN)  # the erasure record itself
    after = io.BytesIO()
    assert log.export_bundle(after, key.public_key) == 6
    verdict = verify_bundle(after.getvalue(), trusted_key=key.public_key)
    assert verdict.code is VerifyCode.OK, verdict.message
    # Erasure changed no leaf: the old bundle's records are the new one's prefix.
    assert after.getvalue().split(b"\n")[1:6] == before.getvalue().split(b"\n")[1:6]
    kinds = [r.kind for r in log.records()]
    assert kinds[-1] == RecordKind.ERASURE

    # And the verifier does look at the records.
    lines = after.getvalue().split(b"\n")
    lines[3] = lines[3].replace(b"Refund 2", b"Refund 9")
    tampered = verify_bundle(b"\n".join(lines), trusted_key=key.public_key)
    assert tampered.code is VerifyCode.RECORD_ALTERED


def test_concurrent_writers_and_a_sequencer_leave_no_gaps(
    open_log: Callable[[], AuditLog], key: SigningKey
) -> None:
    logs = [open_log() for _ in range(3)]
    sequencer = Sequencer(logs[0], key, ORIGIN, every_records=7, poll_seconds=0.002)
    rows = {w: [call(logs[w], n, prefix=f"w{w}-") for n in range(30)] for w in range(3)}
    errors: list[BaseException] = []

    def write(w: int) -> None:
        try:
            for start in range(0, len(rows[w]), 2):
                logs[w].append(rows[w][start : start + 2])
        except BaseException as exc:
            errors.append(exc)

    with sequencer:
        threads = [threading.Thread(target=write, args=(w,)) for w in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert_contiguous(logs[0], 90)
    checkpoints = logs[0].checkpoints()
    sizes = [c.size for c in checkpoints]
    assert sizes == sorted(set(sizes))
    assert sizes[-1] == 90
    assert all(b - a <= 7 for a, b in itertools.pairwise([0, *sizes]))
    final = checkpoints[-1]
    for old in checkpoints[:-1]:
        proof = logs[0].consistency_proof(old.size)
        verify_consistency(old.size, final.size, old.root_hash, final.root_hash, proof)
    out = io.BytesIO()
    logs[0].export_bundle(out, key.public_key)
    assert verify_bundle(out.getvalue(), trusted_key=key.public_key).ok


class FlakySink:
    """Refuses records while ``down``, or once for the leaves in ``fail_once``."""

    view = "compliance"

    def __init__(self, name: str) -> None:
        self.name = name
        self.down = False
        self.fail_once: set[int] = set()
        self.received: list[Mapping[str, Any]] = []

    def send(self, document: Mapping[str, Any]) -> None:
        if self.down:
            raise ConnectionError("sink is down")
        if document["leaf_index"] in self.fail_once:
            self.fail_once.discard(document["leaf_index"])
            raise TimeoutError("sink timed out")
        self.received.append(document)

    def close(self) -> None:
        pass


def test_the_outbox_delivers_every_record_once_in_order_across_an_outage(
    log: AuditLog, key: SigningKey, clock: ManualClock
) -> None:
    flaky, steady = FlakySink("siem"), FlakySink("archive")
    delivery = Delivery(
        log, [flaky, steady], backoff=Backoff(initial=1.0, factor=2.0, jitter=0.0), clock=clock
    )
    sequencer = Sequencer(log, key, ORIGIN, every_records=3, sinks=delivery.sink_names, clock=clock)
    log.append([call(log, n) for n in range(5)])
    sequencer.flush()

    assert log.sinks() == ["archive", "siem"]
    flaky.down = True
    report = delivery.run_once()
    assert report.delivered == {"siem": 0, "archive": 5}
    assert report.failed == {"siem": 1, "archive": 0}
    backlog = log.backlog("siem")
    assert (backlog.pending, backlog.delivered, backlog.oldest_leaf) == (5, 0, 0)
    assert backlog.attempts == 1
    assert backlog.last_error
    assert "sink is down" in backlog.last_error
    assert backlog.next_attempt_at == pytest.approx(NOW + 1.0)
    assert log.due("siem", now=clock.now()) == []  # backing off
    assert delivery.run_once().failed["siem"] == 0  # nothing due, nothing tried

    log.append([call(log, n) for n in range(5, 8)])
    sequencer.flush()
    clock.advance(1.5)
    assert delivery.run_once().failed["siem"] == 1  # still down: attempt 2, wait 2 s
    assert log.backlog("siem").pending == 8
    assert log.backlog("siem").attempts == 2

    flaky.down = False
    flaky.fail_once = {6}  # and one more hiccup mid-way
    clock.advance(2.5)
    report = delivery.run_once()
    assert report.delivered["siem"] == 6
    assert report.failed["siem"] == 1
    assert log.backlog("siem").oldest_leaf == 6
    clock.advance(1.1)
    delivery.run_once()

    for sink in (flaky, steady):
        assert [d["leaf_index"] for d in sink.received] == list(range(8))
        assert [d["call_id"] for d in sink.received] == [f"c{n}" for n in range(8)]
    assert all("user" not in json.dumps(d) for d in flaky.received)  # compliance view
    for name in ("siem", "archive"):
        backlog = log.backlog(name)
        assert (backlog.pending, backlog.delivered, backlog.oldest_leaf) == (0, 8, None)
    assert delivery.backlog()["siem"].pending == 0


def test_retention_destroys_only_expired_task_keys_and_logs_the_run(
    log: AuditLog, key: SigningKey, clock: ManualClock
) -> None:
    finished = {"old-1": NOW - 40 * 86400, "old-2": NOW - 31 * 86400, "new": NOW - 86400}
    log.append([call(log, n, task=task, prefix=f"{task}-") for n, task in enumerate(finished)])

    def finished_before(cutoff: float) -> list[str]:
        return [t for t, at in finished.items() if at < cutoff]

    report = run_retention(log, RetentionPolicy(raw_payload_days=30), finished_before, clock=clock)
    assert report.destroyed == ("old-1", "old-2")
    assert report.cutoff == NOW - 30 * 86400
    assert log.keys.destroyed(task_key_id("old-1"))
    assert log.keys.destroyed(task_key_id("old-2"))
    assert not log.keys.destroyed(task_key_id("new"))
    for call_id, erased in (("old-1-0", True), ("old-2-1", True), ("new-2", False)):
        record = log.record(call_id)
        assert record is not None
        view = technical_view(record, log.vault)
        assert isinstance(view["raw_input"], ErasedPayload) is erased
    run = log.record(report.call_id)
    assert run is not None
    assert run.kind == RecordKind.RETENTION_RUN
    details = json.loads(run.compliance_json)["details"]
    assert details["tasks_erased"] == ["old-1", "old-2"]
    assert details["raw_payload_days"] == 30

    again = run_retention(log, RetentionPolicy(30), ["old-1", "new"], clock=clock)
    assert again.destroyed == ("new",)
    assert again.already_erased == ("old-1",)
    log.sequence(key, ORIGIN)
    assert_contiguous(log, 5)
    # A record written after its task was erased keeps nothing raw.
    late = call(log, 9, task="old-1", prefix="late-")
    assert late.technical_json is not None
    assert "withheld" in late.technical_json
    assert "commitments" not in late.leaf_body


# --- SQL backends -------------------------------------------------------------------------

_APPEND_ONLY = [
    ("UPDATE handrail_audit_records SET kind = 'x'", "handrail_audit_records"),
    ("DELETE FROM handrail_audit_records", "handrail_audit_records"),
    ("UPDATE handrail_audit_leaves SET leaf_index = leaf_index + 100", "handrail_audit_leaves"),
    ("DELETE FROM handrail_audit_leaves", "handrail_audit_leaves"),
    ("DELETE FROM handrail_audit_nodes", "handrail_audit_nodes"),
    ("UPDATE handrail_audit_checkpoints SET note = 'forged'", "handrail_audit_checkpoints"),
    ("DELETE FROM handrail_audit_checkpoints", "handrail_audit_checkpoints"),
    ("DELETE FROM handrail_audit_key_tombstones", "handrail_audit_key_tombstones"),
]


@pytest.mark.parametrize("audit_kind", ["sqlite", POSTGRES])
def test_sql_tables_are_append_only(
    audit_kind: str, db: str, log: AuditLog, key: SigningKey
) -> None:
    log.append([call(log, n) for n in range(3)])
    log.sequence(key, ORIGIN)
    erase(log, task_key_id("t1"), by="dpo")
    if audit_kind == "sqlite":
        conn = sqlite3.connect(db)
        try:
            for statement, table in _APPEND_ONLY:
                with pytest.raises(sqlite3.IntegrityError, match=f"{table} is append-only"):
                    conn.execute(statement)
        finally:
            conn.close()
    else:
        import psycopg

        with psycopg.connect(db, autocommit=True) as pg:
            for statement, table in _APPEND_ONLY:
                with pytest.raises(psycopg.errors.RestrictViolation, match=f"{table} is"):
                    pg.execute(statement.encode())
    assert len(log.records()) == 4
    assert log.size() == 3


@pytest.mark.parametrize("audit_kind", ["sqlite", POSTGRES])
def test_records_written_in_the_callers_transaction_commit_or_roll_back_with_it(
    audit_kind: str, db: str, log: AuditLog, key: SigningKey
) -> None:
    kept, dropped = call(log, 1), call(log, 2)
    if audit_kind == "sqlite":
        from handrail.store.sqlite.audit import insert_audit_records

        conn = sqlite3.connect(db, isolation_level=None)
        try:
            for row, end in ((dropped, "ROLLBACK"), (kept, "COMMIT")):
                conn.execute("BEGIN IMMEDIATE")
                assert insert_audit_records(conn, [row]) == 1
                assert insert_audit_records(conn, [row]) == 0
                conn.execute(end)
        finally:
            conn.close()
    else:
        import psycopg

        from handrail.store.postgres.audit import insert_audit_records as pg_insert

        with psycopg.connect(db) as pg:
            for row, commit in ((dropped, False), (kept, True)):
                with pg.transaction() as tx:
                    assert pg_insert(pg, [row]) == 1
                    assert pg_insert(pg, [row]) == 0
                    if not commit:
                        raise psycopg.Rollback(tx)
    assert log.record("c2") is None
    assert log.pending() == 1
    log.sequence(key, ORIGIN)
    record = log.record("c1")
    assert record is not None
    assert record.leaf_index == 0


@pytest.mark.parametrize("audit_kind", [POSTGRES])
def test_postgres_ids_may_gap_and_commit_late_but_leaf_indexes_do_not(
    audit_kind: str, db: str, log: AuditLog, key: SigningKey
) -> None:
    import psycopg

    from handrail.store.postgres.audit import SEQUENCER_LOCK, insert_audit_records

    late, gone, early = call(log, 1), call(log, 2), call(log, 3)
    with psycopg.connect(db) as slow, psycopg.connect(db) as failing:
        insert_audit_records(slow, [late])  # takes the lowest id, commits last
        insert_audit_records(failing, [gone])
        failing.rollback()  # its id is burnt: a gap
        log.append([early])
        first = log.sequence(key, ORIGIN)
        assert first is not None
        assert first.size == 1
        slow.commit()

        with psycopg.connect(db) as other, other.transaction():
            other.execute("SELECT pg_advisory_xact_lock(%s)", (SEQUENCER_LOCK,))
            assert log.sequence(key, ORIGIN) is None  # another sequencer holds the lock
            assert log.pending() == 1
        second = log.sequence(key, ORIGIN)
        assert second is not None
        assert second.size == 2

    by_call = {r.call_id: r for r in log.records()}
    assert set(by_call) == {"c1", "c3"}
    assert by_call["c1"].record_id < by_call["c3"].record_id - 1  # c2's id is missing
    assert (by_call["c3"].leaf_index, by_call["c1"].leaf_index) == (0, 1)
    out = io.BytesIO()
    log.export_bundle(out, key.public_key)
    assert verify_bundle(out.getvalue(), trusted_key=key.public_key).ok


_WRITER = """
import sys, time
from handrail.audit.record import build_tool_call_record
from handrail.store.sqlite.audit import SQLiteAuditLog

path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with SQLiteAuditLog(path) as log:
    for n in range(count):
        log.append([build_tool_call_record(
            call_id=f"{name}-{n}", task_id=name, tool_name="t", params={"n": n},
            started_at=time.time(), duration_ms=1.0, logged_at=time.time(), vault=log.vault,
        )])
"""


@pytest.mark.parametrize("audit_kind", ["sqlite"])
def test_sqlite_writers_in_two_processes_and_a_sequencer_leave_no_gaps(
    audit_kind: str, db: str, log: AuditLog, key: SigningKey
) -> None:
    sequencer = Sequencer(log, key, ORIGIN, every_records=16, poll_seconds=0.005)
    with sequencer:
        writers = [
            subprocess.Popen([sys.executable, "-c", _WRITER, db, f"p{i}", "60"]) for i in range(2)
        ]
        for proc in writers:
            assert proc.wait(timeout=60) == 0
    assert_contiguous(log, 120)
    names = {r.call_id for r in log.records(limit=1000)}
    assert names == {f"p{i}-{n}" for i in range(2) for n in range(60)}
