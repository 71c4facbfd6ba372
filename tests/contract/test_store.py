"""The store contract: every backend (memory, SQLite, PostgreSQL) passes these."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from handrail.errors import CancelRequested, LeaseLost, StaleWriteError, TaskExistsError
from handrail.journal import Event, EventKind, TaskStatus
from handrail.store.base import Lease, NewTask, Store

NOW = 1_000_000.0


def new_task(
    task_id: str,
    *,
    queue: str = "default",
    workflow: str = "wf",
    run_at: float | None = NOW,
    created_at: float = NOW,
    inputs_json: str = '{"args":[],"kwargs":{}}',
) -> NewTask:
    return NewTask(
        task_id=task_id,
        workflow=workflow,
        queue=queue,
        created_at=created_at,
        run_at=run_at,
        initiator="alice",
        max_execution_seconds=60.0,
        event=Event(
            task_id=task_id,
            seq=0,
            kind=EventKind.TASK_CREATED,
            timestamp=created_at,
            inputs_json=inputs_json,
            actor="alice",
            data={"workflow": workflow, "queue": queue},
        ),
    )


def step_events(task_id: str, seq: int, index: int) -> list[Event]:
    return [
        Event(
            task_id,
            seq,
            EventKind.STEP_STARTED,
            NOW,
            step_index=index,
            step_name="t",
            inputs_json='{"b":1,"a":"é"}',
            agent_reasoning="because",
        ),
        Event(
            task_id,
            seq + 1,
            EventKind.STEP_COMPLETED,
            NOW,
            step_index=index,
            step_name="t",
            outputs_json='{"z":[1,2],"a":null}',
        ),
    ]


def claim(store: Store, worker: str = "w1", now: float = NOW, **kw: object):  # type: ignore[no-untyped-def]
    return store.claim_task(worker, now=now, lease_seconds=30.0, **kw)  # type: ignore[arg-type]


def test_create_get_and_list(store: Store) -> None:
    store.create_task(new_task("t1", created_at=NOW))
    store.create_task(new_task("t2", created_at=NOW + 1, queue="mail", workflow="other"))
    record = store.get_task("t1")
    assert record is not None
    assert (record.status, record.workflow, record.queue) == (TaskStatus.PENDING, "wf", "default")
    assert record.initiator == "alice"
    assert record.max_execution_seconds == 60.0
    assert record.epoch == 0
    assert store.get_task("nope") is None
    assert [r.task_id for r in store.list_tasks()] == ["t2", "t1"]
    assert [r.task_id for r in store.list_tasks(queue="mail")] == ["t2"]
    assert [r.task_id for r in store.list_tasks(workflow="wf")] == ["t1"]
    assert [r.task_id for r in store.list_tasks(statuses=[TaskStatus.PENDING], limit=1)] == ["t2"]
    assert store.list_tasks(statuses=[TaskStatus.COMPLETED]) == []
    events = store.load_events("t1")
    assert [e.kind for e in events] == [EventKind.TASK_CREATED]
    assert events[0].data == {"workflow": "wf", "queue": "default"}
    assert store.load_events("nope") == []


def test_duplicate_task_id_is_refused(store: Store) -> None:
    store.create_task(new_task("t1"))
    with pytest.raises(TaskExistsError):
        store.create_task(new_task("t1"))


def test_claim_leases_bumps_epoch_and_journals_the_claim(store: Store) -> None:
    store.create_task(new_task("t1"))
    got = claim(store)
    assert got is not None
    lease = got.lease
    assert Lease(lease.task_id, lease.worker_id, lease.epoch) == Lease("t1", "w1", 1)
    assert got.task.status is TaskStatus.IN_PROGRESS
    assert [e.kind for e in got.events] == [EventKind.TASK_CREATED, EventKind.TASK_CLAIMED]
    assert got.events[-1].data == {"worker": "w1", "epoch": 1}
    assert store.load_events("t1") == got.events
    # leased: nobody else gets it until the lease expires
    assert claim(store, "w2", now=NOW + 29) is None
    again = claim(store, "w2", now=NOW + 31)
    assert again is not None
    assert again.lease.epoch == 2


def test_claim_respects_due_time_queue_workflow_and_id(store: Store) -> None:
    store.create_task(new_task("later", run_at=NOW + 100))
    store.create_task(new_task("mail", queue="mail"))
    store.create_task(new_task("other", workflow="other"))
    store.create_task(new_task("parked", run_at=None))
    assert claim(store, queues=["nothing"]) is None
    got = claim(store, queues=["mail"])
    assert got is not None
    assert got.task.task_id == "mail"
    got = claim(store, workflows=["other"])
    assert got is not None
    assert got.task.task_id == "other"
    assert claim(store, task_id="later") is None
    assert claim(store) is None
    got = claim(store, now=NOW + 20, task_id="later")
    assert got is None
    got = claim(store, now=NOW + 100, task_id="later")
    assert got is not None
    assert got.task.task_id == "later"
    assert claim(store, now=NOW + 10_000, task_id="parked") is None  # waits for a human


def test_claim_takes_the_earliest_due_first(store: Store) -> None:
    store.create_task(new_task("b", run_at=NOW - 5))
    store.create_task(new_task("a", run_at=NOW - 10))
    store.create_task(new_task("c", run_at=NOW - 1))
    order = []
    while (got := claim(store)) is not None:
        order.append(got.task.task_id)
    assert order == ["a", "b", "c"]


def test_append_is_fenced_by_the_epoch(store: Store) -> None:
    store.create_task(new_task("t1"))
    first = claim(store)
    assert first is not None
    store.append_events(first.lease, step_events("t1", 2, 0), now=NOW)
    second = claim(store, "w2", now=NOW + 60)  # first lease expired
    assert second is not None
    with pytest.raises(LeaseLost):
        store.append_events(first.lease, step_events("t1", 5, 1), now=NOW + 61)
    assert not store.renew_lease(first.lease, now=NOW + 61, lease_seconds=30)
    store.append_events(second.lease, step_events("t1", 5, 1), now=NOW + 61)
    kinds = [e.kind for e in store.load_events("t1")]
    assert kinds.count(EventKind.STEP_COMPLETED) == 2
    assert [e.seq for e in store.load_events("t1")] == list(range(7))


def test_events_keep_their_exact_json_text(store: Store) -> None:
    store.create_task(new_task("t1", inputs_json='{"z":1,"a":"ü"}'))
    got = claim(store)
    assert got is not None
    store.append_events(got.lease, step_events("t1", 2, 0), now=NOW)
    events = store.load_events("t1")
    assert events[0].inputs_json == '{"z":1,"a":"ü"}'
    assert events[2].inputs_json == '{"b":1,"a":"é"}'
    assert events[2].agent_reasoning == "because"
    assert events[3].outputs_json == '{"z":[1,2],"a":null}'
    assert events[3].outputs == {"z": [1, 2], "a": None}


def test_append_updates_status_due_time_and_releases(store: Store) -> None:
    store.create_task(new_task("t1"))
    got = claim(store)
    assert got is not None
    store.append_events(got.lease, [], now=NOW, run_at=NOW + 50, release=True)
    record = store.get_task("t1")
    assert record is not None
    assert record.lease_owner is None
    assert record.run_at == NOW + 50
    assert store.next_due(now=NOW) == NOW + 50
    assert claim(store, now=NOW + 49) is None
    got = claim(store, now=NOW + 50)
    assert got is not None
    store.append_events(
        got.lease,
        [Event("t1", got.events[-1].seq + 1, EventKind.TASK_COMPLETED, NOW, outputs_json="1")],
        now=NOW + 51,
        status=TaskStatus.COMPLETED,
        run_at=None,
        release=True,
    )
    record = store.get_task("t1")
    assert record is not None
    assert record.status is TaskStatus.COMPLETED
    assert record.run_at is None
    assert store.next_due(now=NOW + 60) is None
    assert claim(store, now=NOW + 10_000) is None


def test_cancel_flag_refuses_new_intents_but_not_results(store: Store) -> None:
    store.create_task(new_task("t1"))
    got = claim(store)
    assert got is not None
    record = store.request_cancel("t1", "bob", now=NOW)
    assert record.cancel_requested_by == "bob"
    assert record.leased(NOW)
    with pytest.raises(CancelRequested):
        store.append_events(got.lease, step_events("t1", 2, 0), now=NOW, boundary=True)
    assert len(store.load_events("t1")) == 2  # nothing written
    store.append_events(got.lease, step_events("t1", 2, 0), now=NOW)
    assert len(store.load_events("t1")) == 4
    # the first requester stays recorded
    assert store.request_cancel("t1", "carol", now=NOW).cancel_requested_by == "bob"


def test_renew_and_release_worker(store: Store) -> None:
    store.create_task(new_task("t1"))
    got = claim(store)
    assert got is not None
    assert store.renew_lease(got.lease, now=NOW + 20, lease_seconds=30)
    assert claim(store, "w2", now=NOW + 40) is None  # renewed until NOW + 50
    assert store.release_worker("w1") == 1
    record = store.get_task("t1")
    assert record is not None
    assert record.lease_owner is None
    again = claim(store, "w1", now=NOW + 41)
    assert again is not None
    assert again.lease.epoch == 2


def test_unleased_writes_are_conditional(store: Store) -> None:
    store.create_task(new_task("t1", run_at=None))
    ev = Event("t1", 1, EventKind.TASK_RESUMED, NOW, actor="op")
    with pytest.raises(StaleWriteError):
        store.append_unleased("t1", [ev], expect_seq=5, now=NOW)
    with pytest.raises(StaleWriteError):
        store.append_unleased("missing", [ev], expect_seq=0, now=NOW)
    store.append_unleased("t1", [ev], expect_seq=0, now=NOW, status=TaskStatus.PENDING, run_at=NOW)
    got = claim(store)
    assert got is not None
    ev2 = Event("t1", 3, EventKind.TASK_RESUMED, NOW, actor="op")
    with pytest.raises(StaleWriteError):  # a live lease holds it
        store.append_unleased("t1", [ev2], expect_seq=2, now=NOW + 1)
    assert [e.seq for e in store.load_events("t1")] == [0, 1, 2]


def test_concurrent_claims_hand_each_task_to_one_worker(
    store_factory: Callable[[], Store],
) -> None:
    setup = store_factory()
    for i in range(40):
        setup.create_task(new_task(f"t{i:02d}"))
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        store = store_factory()
        while (got := store.claim_task(name, now=NOW, lease_seconds=30)) is not None:
            with lock:
                claimed.append(got.task.task_id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == [f"t{i:02d}" for i in range(40)]


def test_operator_write_revokes_an_expired_lease(store: Store) -> None:
    store.create_task(new_task("t1"))
    got = claim(store)
    assert got is not None
    late = NOW + 31  # the lease ran out; nobody claimed the task again
    resumed = Event("t1", 2, EventKind.TASK_RESUMED, late, actor="op")
    store.append_unleased("t1", [resumed], expect_seq=1, now=late, run_at=late)
    with pytest.raises(LeaseLost):
        store.append_events(got.lease, step_events("t1", 3, 0), now=late)
    assert [e.seq for e in store.load_events("t1")] == [0, 1, 2]


def test_halts_stop_new_steps_and_claims_until_released(store: Store) -> None:
    from handrail.errors import Halted
    from handrail.store.base import Halt

    store.create_task(new_task("t1"))
    store.create_task(new_task("t2"))
    got = claim(store, task_id="t1")
    assert got is not None
    store.add_halt(Halt("h-tool", "tool", "t", "op", "vendor API misbehaves", NOW))
    # an intent for the halted tool is refused at a boundary; results still go through
    intent = Event("t1", 2, EventKind.STEP_STARTED, NOW, step_index=0, step_name="t")
    with pytest.raises(Halted) as info:
        store.append_events(got.lease, [intent], now=NOW, boundary=True)
    assert (info.value.halt_id, info.value.scope, info.value.halted_by) == ("h-tool", "tool", "op")
    store.append_events(got.lease, [intent], now=NOW)  # not at a boundary: allowed
    store.append_events(
        got.lease,
        [Event("t1", 3, EventKind.STEP_COMPLETED, NOW, step_index=0, step_name="t")],
        now=NOW,
        boundary=True,
    )
    store.add_halt(Halt("h-task", "task", "t1", "op", None, NOW + 1))
    other = Event("t1", 4, EventKind.STEP_STARTED, NOW, step_index=1, step_name="other")
    with pytest.raises(Halted):
        store.append_events(got.lease, [other], now=NOW, boundary=True)
    store.add_halt(Halt("h-all", "all", None, "boss", None, NOW + 2))
    assert claim(store, task_id="t2") is None  # nothing new runs
    assert store.next_due(now=NOW) is None
    assert [h.halt_id for h in store.list_halts()] == ["h-tool", "h-task", "h-all"]
    released = store.release_halts("all", None, actor="boss", now=NOW + 3)
    assert [(h.halt_id, h.released_by) for h in released] == [("h-all", "boss")]
    assert claim(store, task_id="t2") is not None
    store.release_halts("task", "t1", actor="op", now=NOW + 4)
    store.append_events(got.lease, [other], now=NOW, boundary=True)
    assert [h.halt_id for h in store.list_halts()] == ["h-tool"]
    assert len(store.list_halts(active_only=False)) == 3


def test_circuit_opens_after_consecutive_failures_and_closes_on_success(store: Store) -> None:
    for i in range(2):
        state = store.record_tool_failure("crm", now=NOW + i, threshold=3, cooldown=30)
        assert not state.open(NOW + i)
    state = store.record_tool_failure("crm", now=NOW + 2, threshold=3, cooldown=30)
    assert state.failures == 3
    assert state.open(NOW + 2)
    assert state.open_until == NOW + 32
    store.record_tool_success("crm", now=NOW + 40)
    (after,) = store.circuits()
    assert (after.tool, after.failures, after.open(NOW + 40)) == ("crm", 0, False)


def test_rate_tokens_per_fixed_window(store: Store) -> None:
    start = 1_000_020.0  # a window boundary for interval 10 and 60
    assert [store.take_rate_token("k", now=start + i, limit=3, interval=10) for i in range(3)] == [
        None,
        None,
        None,
    ]
    assert store.take_rate_token("k", now=start + 5, limit=3, interval=10) == start + 10
    assert store.take_rate_token("other", now=start + 5, limit=3, interval=10) is None
    assert store.take_rate_token("k", now=start + 10, limit=3, interval=10) is None


def test_a_named_lock_has_one_holder_across_store_objects(
    store_factory: Callable[[], Store],
) -> None:
    first, second = store_factory(), store_factory()  # two "processes" on one database
    inside: list[str] = []
    overlaps: list[str] = []
    entered = threading.Event()

    def hold(store: Store, who: str, name: str, wait: float) -> None:
        with store.named_lock(name):
            if inside and name == "group-a":
                overlaps.append(who)
            inside.append(who)
            entered.set()
            threading.Event().wait(wait)
            inside.remove(who)

    a = threading.Thread(target=hold, args=(first, "a", "group-a", 0.3))
    a.start()
    assert entered.wait(10)
    # another name is free at once; the same name waits for the holder
    with second.named_lock("group-b"):
        assert inside == ["a"]
    b = threading.Thread(target=hold, args=(second, "b", "group-a", 0.0))
    b.start()
    a.join(10)
    b.join(10)
    assert overlaps == []
    assert inside == []
