"""An idle worker wakes when another process makes a task runnable, long before its poll
interval (60 s here) would have it look again; and idle, it burns no CPU polling.

Only timeouts, no timing assertions: a task done within 30 s was woken, not polled."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from handrail import App, TaskStatus

HERE = Path(__file__).parent
POLL = 60.0
WOKEN_WITHIN = 30.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "wake.db")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def wakeapp(db: str) -> Iterator[Any]:
    """The helper app, imported in this process on ``db``."""
    os.environ["WAKE_DB"] = db
    sys.path.insert(0, str(HERE))
    try:
        import wakeapp
    finally:
        sys.path.remove(str(HERE))
        del os.environ["WAKE_DB"]
    try:
        yield wakeapp
    finally:
        wakeapp.app.close()
        sys.modules.pop("wakeapp", None)


def _operator(db: str, *args: str) -> str:
    """Run ``wakeapp`` in another process; its output."""
    done = subprocess.run(
        [sys.executable, "-m", "wakeapp", *args],
        env={**os.environ, "WAKE_DB": db, "PYTHONPATH": str(HERE)},
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _status(app: App, task_id: str) -> TaskStatus | None:
    record = app.store.get_task(task_id)
    return None if record is None else record.status


def test_an_idle_worker_runs_a_task_another_process_creates(db: str, wakeapp: Any) -> None:
    app: App = wakeapp.app
    with app.worker(concurrency=1, poll_interval=POLL):
        # A first task, started here, makes sure the worker has gone idle before the next.
        first = app.start(wakeapp.job, "here").task_id
        _wait_for(lambda: _status(app, first) is TaskStatus.COMPLETED, WOKEN_WITHIN)
        task_id = _operator(db, "start", "there")
        _wait_for(lambda: _status(app, task_id) is TaskStatus.COMPLETED, WOKEN_WITHIN)
    assert app.handle(task_id).result() == "hello there"


def test_an_idle_worker_runs_a_task_when_another_process_releases_a_halt(
    db: str, wakeapp: Any
) -> None:
    app: App = wakeapp.app
    app.halt("all", by="operator")
    with app.worker(concurrency=1, poll_interval=POLL):
        task_id = app.start(wakeapp.job, "after the halt").task_id
        time.sleep(0.2)  # the worker looks, finds nothing it may claim, goes idle
        assert _status(app, task_id) is TaskStatus.PENDING
        _operator(db, "release")
        _wait_for(lambda: _status(app, task_id) is TaskStatus.COMPLETED, WOKEN_WITHIN)


def test_an_approval_decided_in_another_process_wakes_an_idle_worker(db: str, wakeapp: Any) -> None:
    app: App = wakeapp.app
    with app.worker(concurrency=1, poll_interval=POLL):
        task_id = app.start(wakeapp.gated, "the report").task_id
        _wait_for(lambda: _status(app, task_id) is TaskStatus.AWAITING_APPROVAL, WOKEN_WITHIN)
        record = app.store.get_task(task_id)
        assert record is not None
        assert record.lease_owner is None  # waiting, it holds no worker
        _operator(db, "approve", task_id)
        _wait_for(lambda: _status(app, task_id) is TaskStatus.COMPLETED, WOKEN_WITHIN)
    assert app.handle(task_id).result() == "published the report"


def test_stop_is_prompt_and_leaves_no_threads(db: str, wakeapp: Any) -> None:
    import threading

    app: App = wakeapp.app
    # The store's audit log (on PostgreSQL a connection pool with threads of its own)
    # opens on first use and lives until the store closes: the store's, not the worker's.
    app.store.audit_log()
    before = set(threading.enumerate())
    worker = app.worker(concurrency=2, poll_interval=POLL).start()
    time.sleep(0.1)
    started = time.monotonic()
    worker.stop()
    assert time.monotonic() - started < WOKEN_WITHIN
    left = [t for t in threading.enumerate() if t not in before and t.name.startswith("handrail")]
    assert left == []


@pytest.mark.skipif(sys.platform == "win32", reason="getrusage is POSIX")
def test_an_idle_worker_does_not_poll(db: str) -> None:
    """In a process of its own (no other test's threads around), an idle worker sleeps:
    a poll every 10 ms would cost ~100 voluntary context switches a second; waiting on the
    wake-up signal costs a few (the listener wakes once a second)."""
    cpu, switches = _operator(db, "idle").split()
    assert int(switches) < 50
    assert float(cpu) < 0.25
