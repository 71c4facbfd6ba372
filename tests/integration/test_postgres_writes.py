"""PostgreSQL's write path: one statement per write, claims committed without waiting for
their flush, and the per-claim lease token that makes a forgotten claim harmless."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from handrail.errors import LeaseLost, StaleWriteError, StoreError
from handrail.journal import Event, EventKind, TaskStatus
from handrail.store.base import Claim, Lease, NewTask

pytestmark = pytest.mark.postgres

NOW = 1_000_000.0
T = TypeVar("T")


@pytest.fixture
def store(pg_url: str) -> Iterator[Any]:
    from handrail.store.postgres import PostgresStore

    opened = PostgresStore(pg_url)
    yield opened
    opened.close()


def _task(task_id: str) -> NewTask:
    return NewTask(
        task_id=task_id,
        workflow="wf",
        queue="default",
        created_at=NOW,
        run_at=NOW,
        initiator="alice",
        max_execution_seconds=None,
        event=Event(task_id, 0, EventKind.TASK_CREATED, NOW, inputs_json="{}", actor="alice"),
    )


def _claim(store: Any, worker: str = "w1", now: float = NOW) -> Claim:
    got = store.claim_task(worker, now=now, lease_seconds=30.0, task_id="t1")
    assert got is not None
    return got


def _intent(seq: int) -> list[Event]:
    return [Event("t1", seq, EventKind.STEP_STARTED, NOW, step_index=0, step_name="t")]


def _in_rolled_back_transaction(store: Any, call: Callable[[], T]) -> tuple[T, str]:
    """Run ``call`` (one store write) in a transaction that is rolled back, as a server
    crash forgets a commit that was not flushed; its result, and ``synchronous_commit`` as
    its transaction had it when it ended."""
    real = store._write
    seen: list[str] = []

    def rolled_back(fn: Callable[[Any], T]) -> T:
        with store._pool.connection() as conn, conn.transaction(force_rollback=True):
            result = fn(conn)
            seen.append(conn.execute("SHOW synchronous_commit").fetchone()[0])
            return result

    store._write = rolled_back
    try:
        return call(), seen[0]
    finally:
        store._write = real


def test_every_claim_has_a_lease_token_of_its_own(store: Any) -> None:
    store.create_task(_task("t1"))
    tokens = set()
    for n in range(1, 6):  # the same worker, each time after its lease ran out
        got = _claim(store, now=NOW + 31 * n)
        assert got.lease.epoch == n
        assert got.lease.token
        tokens.add(got.lease.token)
    assert len(tokens) == 5


def test_a_forgotten_claim_can_write_nothing(store: Any) -> None:
    """A claim is committed without waiting for its flush, so a server crash may forget it
    while its holder lives on; the next claim then repeats its epoch, here even for the same
    worker. Only the token tells the two leases apart, and the forgotten one is refused."""
    store.create_task(_task("t1"))
    lost, _ = _in_rolled_back_transaction(store, lambda: _claim(store))
    assert store.get_task("t1").epoch == 0  # forgotten
    again = _claim(store)
    assert (again.lease.worker_id, again.lease.epoch) == (lost.lease.worker_id, lost.lease.epoch)
    assert again.lease.token != lost.lease.token
    with pytest.raises(LeaseLost):
        store.append_events(lost.lease, _intent(2), now=NOW, boundary=True)
    assert not store.renew_lease(lost.lease, now=NOW, lease_seconds=30.0)
    no_token = Lease(again.lease.task_id, again.lease.worker_id, again.lease.epoch)
    with pytest.raises(LeaseLost):
        store.append_events(no_token, _intent(2), now=NOW, boundary=True)
    store.append_events(again.lease, _intent(2), now=NOW, boundary=True)
    assert store.renew_lease(again.lease, now=NOW, lease_seconds=30.0)
    assert [e.kind for e in store.load_events("t1")] == [
        EventKind.TASK_CREATED,
        EventKind.TASK_CLAIMED,
        EventKind.STEP_STARTED,
    ]


def test_only_the_claim_skips_the_flush(store: Any) -> None:
    """The claim's transaction commits without waiting for its WAL flush; the writes that
    journal intents, results and decisions wait for it, and the session keeps the server's
    setting (``SET LOCAL`` semantics: nothing leaks into the pooled connection)."""
    store.create_task(_task("t1"))
    _, claim_sync = _in_rolled_back_transaction(store, lambda: _claim(store))
    assert claim_sync == "off"
    got = _claim(store)
    _, intent_sync = _in_rolled_back_transaction(
        store, lambda: store.append_events(got.lease, _intent(2), now=NOW, boundary=True)
    )
    assert intent_sync == "on"
    store.append_events(got.lease, [], now=NOW, release=True, run_at=None)
    decided = Event("t1", 2, EventKind.TASK_RESUMED, NOW, actor="op")
    _, operator_sync = _in_rolled_back_transaction(
        store,
        lambda: store.append_unleased("t1", [decided], expect_seq=1, now=NOW, run_at=NOW),
    )
    assert operator_sync == "on"
    for _ in range(3):  # whichever pooled connection the claim used
        assert store._read(lambda c: c.execute("SHOW synchronous_commit").fetchone()[0]) == "on"


def test_operator_write_says_why_it_was_refused(store: Any) -> None:
    store.create_task(_task("t1"))
    resumed = Event("t1", 1, EventKind.TASK_RESUMED, NOW, actor="op")
    with pytest.raises(StaleWriteError, match="does not exist"):
        store.append_unleased("t2", [resumed], expect_seq=0, now=NOW)
    with pytest.raises(StaleWriteError, match="journal moved on"):
        store.append_unleased("t1", [resumed], expect_seq=3, now=NOW)
    got = _claim(store)
    late = Event("t1", 2, EventKind.TASK_RESUMED, NOW, actor="op")
    with pytest.raises(StaleWriteError, match="a worker holds the task"):
        store.append_unleased("t1", [late], expect_seq=1, now=NOW + 1)
    taken = Event("t1", 1, EventKind.TASK_RESUMED, NOW, actor="op")  # seq 1: the claim's
    with pytest.raises(StaleWriteError, match="sequence number exists"):
        store.append_unleased("t1", [taken], expect_seq=1, now=NOW + 31)
    assert store.get_task("t1").epoch == got.lease.epoch  # nothing was written
    store.append_unleased(
        "t1", [late], expect_seq=1, now=NOW + 31, status=TaskStatus.PENDING, run_at=NOW + 31
    )
    record = store.get_task("t1")
    assert (record.epoch, record.lease_owner, record.status) == (2, None, TaskStatus.PENDING)


def test_a_claim_whose_snapshot_missed_an_append_is_made_again(store: Any) -> None:
    """The claim statement reads the journal in its snapshot; an event committed after the
    snapshot but before the row lock makes its claim event collide (unique violation, nothing
    written). The store claims again."""
    import psycopg.errors

    store.create_task(_task("t1"))
    real = store._write
    calls: list[int] = []

    def collide_once(fn: Callable[[Any], T]) -> T:
        calls.append(1)
        if len(calls) == 1:
            try:
                raise psycopg.errors.UniqueViolation("duplicate key")
            except psycopg.Error as exc:
                raise StoreError("PostgreSQL: UniqueViolation") from exc
        return real(fn)

    store._write = collide_once
    try:
        got = _claim(store)
    finally:
        store._write = real
    assert len(calls) == 2
    assert [e.kind for e in got.events] == [EventKind.TASK_CREATED, EventKind.TASK_CLAIMED]


def test_events_go_as_json_and_come_back_exactly(store: Any) -> None:
    """Events travel as one JSON parameter: text (JSON text included) comes back exactly as
    it went, whatever its characters, and so do the numbers."""
    odd = 'é 🚀 "q" \\ \n\t \x01 \u2028 end'
    store.create_task(_task("t1"))
    got = _claim(store)
    sent = [
        Event(
            "t1",
            2,
            EventKind.STEP_STARTED,
            1_700_000_000.123456789,
            step_index=0,
            step_name=odd,
            inputs_json='{"a": "é\\u00e9 🚀", "n": 1e-7, "big": 12345678901234567890}',
            agent_reasoning=odd,
            data={"k": odd, "f": 0.1 + 0.2},
        ),
        Event("t1", 3, EventKind.STEP_COMPLETED, 1e-9, step_index=0, step_name="t",
              outputs_json="null", error={"message": odd}),
    ]  # fmt: skip
    store.append_events(got.lease, sent, now=NOW, boundary=True)
    assert store.load_events("t1")[2:] == sent


def test_text_the_driver_cannot_send_is_a_store_error(store: Any) -> None:
    store.create_task(_task("t1"))
    got = _claim(store)
    bad = Event("t1", 2, EventKind.STEP_STARTED, NOW, step_index=0, step_name="t\ud800")
    with pytest.raises(StoreError, match="encode"):
        store.append_events(got.lease, [bad], now=NOW, boundary=True)
    nul = Event("t1", 2, EventKind.STEP_STARTED, NOW, step_index=0, step_name="t\x00")
    with pytest.raises(StoreError):
        store.append_events(got.lease, [nul], now=NOW, boundary=True)
    assert len(store.load_events("t1")) == 2
