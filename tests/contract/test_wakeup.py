"""Wake-up signals: a write that makes a task runnable wakes the store's subscribers, in
this process or another; every backend (memory, SQLite, PostgreSQL) passes these.

Waits that expect a signal are generous (a slow machine only makes them return later);
waits that expect none are short (a wrong wake-up would arrive within milliseconds)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from handrail.journal import Event, EventKind
from handrail.store.base import Claim, Halt, NewTask, Store, Subscription

NOW = 1_000_000.0
SIGNALLED = 10.0
QUIET = 0.2

OpenSubscription = Callable[[Store], Subscription]


@pytest.fixture
def subscribe() -> Iterator[OpenSubscription]:
    """Opens subscriptions and closes them after the test."""
    opened: list[Subscription] = []

    def open_one(store: Store) -> Subscription:
        subscription = store.subscribe()
        opened.append(subscription)
        return subscription

    yield open_one
    for subscription in opened:
        subscription.close()


def new_task(task_id: str, *, run_at: float | None = NOW) -> NewTask:
    event = Event(task_id, 0, EventKind.TASK_CREATED, NOW, inputs_json='{"args":[],"kwargs":{}}')
    return NewTask(task_id, "wf", "default", NOW, run_at, "alice", None, event)


def claim(store: Store) -> Claim | None:
    return store.claim_task("w1", now=NOW, lease_seconds=30.0)


def _pair(store_factory: Callable[[], Store]) -> tuple[Store, Store]:
    """A store that listens and another one, on the same backing, that writes."""
    return store_factory(), store_factory()


def test_a_wait_without_a_signal_times_out(store: Store, subscribe: OpenSubscription) -> None:
    subscription = subscribe(store)
    started = time.monotonic()
    assert subscription.wait(QUIET) is False
    assert time.monotonic() - started >= QUIET * 0.9
    assert subscription.wait(0) is False


def test_create_task_wakes_a_subscriber_of_another_store(
    store_factory: Callable[[], Store], subscribe: OpenSubscription
) -> None:
    listener, writer = _pair(store_factory)
    subscription = subscribe(listener)
    writer.create_task(new_task("t1"))
    assert subscription.wait(SIGNALLED) is True
    assert subscription.wait(QUIET) is False  # one signal wakes once


def test_signals_between_waits_are_kept_and_count_as_one(
    store_factory: Callable[[], Store], subscribe: OpenSubscription
) -> None:
    listener, writer = _pair(store_factory)
    subscription = subscribe(listener)
    for i in range(5):
        writer.create_task(new_task(f"t{i}"))
    assert subscription.wait(SIGNALLED) is True
    # PostgreSQL may deliver the five in more than one packet: drain them, then quiet.
    while subscription.wait(QUIET):
        pass
    assert subscription.wait(QUIET) is False


def test_append_unleased_wakes_only_when_it_sets_a_due_time(
    store_factory: Callable[[], Store], subscribe: OpenSubscription
) -> None:
    listener, writer = _pair(store_factory)
    writer.create_task(new_task("t1", run_at=None))
    subscription = subscribe(listener)
    writer.append_unleased(
        "t1", [Event("t1", 1, EventKind.TASK_RESUMED, NOW)], expect_seq=0, now=NOW, run_at=None
    )
    assert subscription.wait(QUIET) is False
    writer.append_unleased(
        "t1", [Event("t1", 2, EventKind.TASK_RESUMED, NOW)], expect_seq=1, now=NOW, run_at=NOW
    )
    assert subscription.wait(SIGNALLED) is True


def test_append_events_wakes_when_it_hands_the_task_back_with_a_due_time(
    store_factory: Callable[[], Store], subscribe: OpenSubscription
) -> None:
    listener, writer = _pair(store_factory)
    writer.create_task(new_task("t1"))
    got = claim(writer)
    assert got is not None
    subscription = subscribe(listener)
    lease = got.lease
    writer.append_events(lease, [Event("t1", 2, EventKind.TASK_RESUMED, NOW)], now=NOW)
    writer.append_events(lease, [], now=NOW, run_at=NOW + 5)  # still leased: nobody else may
    assert subscription.wait(QUIET) is False
    writer.append_events(
        lease, [Event("t1", 3, EventKind.TASK_RESUMED, NOW)], now=NOW, run_at=NOW, release=True
    )
    assert subscription.wait(SIGNALLED) is True


def test_release_halts_wakes_when_it_released_one(
    store_factory: Callable[[], Store], subscribe: OpenSubscription
) -> None:
    listener, writer = _pair(store_factory)
    writer.add_halt(Halt("h1", "all", None, "boss", None, NOW))
    subscription = subscribe(listener)
    assert writer.release_halts("task", "nothing", actor="boss", now=NOW) == []
    assert subscription.wait(QUIET) is False
    assert len(writer.release_halts("all", None, actor="boss", now=NOW)) == 1
    assert subscription.wait(SIGNALLED) is True


def test_request_cancel_wakes(
    store_factory: Callable[[], Store], subscribe: OpenSubscription
) -> None:
    listener, writer = _pair(store_factory)
    writer.create_task(new_task("t1"))
    subscription = subscribe(listener)
    writer.request_cancel("t1", "alice", now=NOW)
    assert subscription.wait(SIGNALLED) is True


def test_a_write_that_fails_does_not_wake(
    store_factory: Callable[[], Store], subscribe: OpenSubscription
) -> None:
    from handrail.errors import TaskExistsError

    listener, writer = _pair(store_factory)
    writer.create_task(new_task("t1"))
    subscription = subscribe(listener)
    with pytest.raises(TaskExistsError):
        writer.create_task(new_task("t1"))
    assert subscription.wait(QUIET) is False


def test_every_subscriber_wakes(
    store_factory: Callable[[], Store], subscribe: OpenSubscription
) -> None:
    subscriptions = [subscribe(store_factory()) for _ in range(6)]
    store_factory().create_task(new_task("t1"))
    assert [s.wait(SIGNALLED) for s in subscriptions] == [True] * 6


def test_close_is_idempotent_and_ends_a_wait_in_progress(
    store: Store, subscribe: OpenSubscription
) -> None:
    subscription = subscribe(store)
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(subscription.wait(60)))
    waiter.start()
    time.sleep(0.1)  # let it block (the test holds either way)
    subscription.close()
    waiter.join(SIGNALLED)
    assert not waiter.is_alive()
    assert results == [False]
    subscription.close()
    assert subscription.wait(0.01) is False
    store.create_task(new_task("t1"))  # signalling with a closed subscriber around is fine


# -- SQLite: unix sockets between processes ----------------------------------------------

_CREATE_IN_CHILD = """
import sys
from handrail.journal import Event, EventKind
from handrail.store.base import NewTask
from handrail.store.sqlite import SQLiteStore
tid = sys.argv[2]
store = SQLiteStore(sys.argv[1])
event = Event(tid, 0, EventKind.TASK_CREATED, 1.0, inputs_json='{"args":[],"kwargs":{}}')
store.create_task(NewTask(tid, "wf", "default", 1.0, 1.0, "alice", None, event))
store.close()
"""

_SUBSCRIBE_IN_CHILD = """
import sys, time
from handrail.store.sqlite import SQLiteStore
store = SQLiteStore(sys.argv[1])
subscription = store.subscribe()
print("ready", flush=True)
time.sleep(600)
"""


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)


def _sockets(directory: Path | None) -> set[str]:
    assert directory is not None
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


def test_sqlite_a_write_in_another_process_wakes(
    tmp_path: Path, subscribe: OpenSubscription
) -> None:
    from handrail.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "wake.db")
    try:
        subscription = subscribe(store)
        child = _python(_CREATE_IN_CHILD, str(tmp_path / "wake.db"), "t1")
        assert child.wait(60) == 0
        assert child.stdout is not None
        child.stdout.close()
        assert subscription.wait(SIGNALLED) is True
        assert store.get_task("t1") is not None
    finally:
        store.close()


def test_sqlite_a_socket_left_by_a_killed_process_is_cleaned(
    tmp_path: Path, subscribe: OpenSubscription
) -> None:
    from handrail.store.sqlite import SQLiteStore

    path = tmp_path / "wake.db"
    store = SQLiteStore(path)
    try:
        subscription = subscribe(store)
        ours = _sockets(store.wake_dir)
        child = _python(_SUBSCRIBE_IN_CHILD, str(path))
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        theirs = _sockets(store.wake_dir) - ours
        assert len(theirs) == 1
        assert next(iter(theirs)).startswith(f"{child.pid}-")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(60)
        child.stdout.close()
        assert _sockets(store.wake_dir) >= theirs  # SIGKILL left the socket file behind
        store.create_task(new_task("t1"))
        assert subscription.wait(SIGNALLED) is True
        assert _sockets(store.wake_dir) == ours
        store.create_task(new_task("t2"))
        assert subscription.wait(SIGNALLED) is True
    finally:
        store.close()


def test_sqlite_close_removes_the_socket(tmp_path: Path) -> None:
    from handrail.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "wake.db")
    try:
        before = _sockets(store.wake_dir)
        subscription = store.subscribe()
        assert len(_sockets(store.wake_dir) - before) == 1
        subscription.close()
        assert _sockets(store.wake_dir) == before
    finally:
        store.close()


def test_sqlite_a_removed_socket_is_bound_again(
    tmp_path: Path, subscribe: OpenSubscription
) -> None:
    from handrail.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "wake.db")
    try:
        subscription = subscribe(store)
        assert store.wake_dir is not None
        for entry in store.wake_dir.iterdir():  # a temporary-file cleaner, say
            entry.unlink()
        assert subscription.wait(QUIET) is True  # bound again; may have missed signals
        assert len(_sockets(store.wake_dir)) == 1
        store.create_task(new_task("t1"))
        assert subscription.wait(SIGNALLED) is True
    finally:
        store.close()


def test_sqlite_in_memory_signals_stay_in_process(subscribe: OpenSubscription) -> None:
    from handrail.store.sqlite import SQLiteStore

    store = SQLiteStore(":memory:")
    try:
        assert store.wake_dir is None
        subscription = subscribe(store)
        store.create_task(new_task("t1"))
        assert subscription.wait(SIGNALLED) is True
        assert subscription.wait(QUIET) is False
    finally:
        store.close()


def test_sqlite_wake_directory_is_private_and_keyed_by_the_real_path(tmp_path: Path) -> None:
    from handrail.store.sqlite import SQLiteStore

    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    one = SQLiteStore(tmp_path / "real" / "wake.db")
    other = SQLiteStore(tmp_path / "link" / "wake.db")
    try:
        assert one.wake_dir is not None
        assert one.wake_dir == other.wake_dir
        assert one.wake_dir.name.startswith(f"handrail-wake-{os.getuid()}-")
        first, second = one.subscribe(), other.subscribe()
        assert one.wake_dir.stat().st_mode & 0o777 == 0o700
        first.close()
        assert len(_sockets(one.wake_dir)) == 1
        second.close()
        assert not one.wake_dir.exists()  # the last subscriber leaves no litter
    finally:
        one.close()
        other.close()
