"""A real PostgreSQL server crash against a claim that was committed without its flush.

A private cluster (initdb in a temporary directory, its WAL writer slowed so that an
unflushed commit stays unflushed) is stopped in ``immediate`` mode, which is a crash: no
shutdown checkpoint, WAL buffers lost. Skipped where the server binaries (``pg_config
--bindir``) are missing, or where the tests run as root and cannot run them as ``postgres``;
failed instead under ``HANDRAIL_REQUIRE_PG=1`` (CI).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from handrail.errors import LeaseLost
from handrail.journal import Event, EventKind
from handrail.store.base import NewTask

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

NOW = 1_000_000.0


def _bindir() -> Path | None:
    try:
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
    except OSError:
        return None
    path = Path(found.stdout.strip())
    return path if (path / "initdb").exists() and (path / "pg_ctl").exists() else None


class Cluster:
    """A throwaway PostgreSQL server that can be crashed and restarted."""

    def __init__(self, bindir: Path, root: Path, as_user: list[str]):
        self.bindir, self.data, self.as_user = bindir, root / "data", as_user
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        settings = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{root}'",
            "wal_writer_delay": "10000ms",  # an unflushed commit stays so for 10 s
            "wal_writer_flush_after": "1GB",
            "autovacuum": "off",  # nothing else commits (and so flushes) meanwhile
            "fsync": "on",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
        self.log = root / "server.log"
        self.start()
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE crash")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bindir / tool), *args], check=True, capture_output=True
        )

    def url(self, db: str = "crash") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "start")

    def crash(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "stop", "-m", "immediate")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-w", "stop", "-m", "fast")


def _cannot(reason: str) -> NoReturn:
    """Skip, with how to enable the test; under ``HANDRAIL_REQUIRE_PG=1`` (CI) fail."""
    if os.environ.get("HANDRAIL_REQUIRE_PG") == "1":
        pytest.fail(f"HANDRAIL_REQUIRE_PG=1 but {reason}")
    pytest.skip(f"{reason} (install the PostgreSQL server package to run it)")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    bindir = _bindir()
    if bindir is None:
        _cannot("the PostgreSQL server binaries are not installed (pg_config --bindir)")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="handrail-pgcrash-"))
    if os.geteuid() == 0:  # initdb refuses root
        if shutil.which("runuser") is None:
            _cannot("running as root without runuser: cannot start a private server")
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    try:
        try:
            made = Cluster(bindir, root, as_user)
        except (subprocess.CalledProcessError, LookupError, OSError) as exc:
            _cannot(f"cannot start a private PostgreSQL server: {exc}")
        yield made
        made.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _task(task_id: str) -> NewTask:
    created = Event(task_id, 0, EventKind.TASK_CREATED, NOW, inputs_json="{}")
    return NewTask(task_id, "wf", "default", NOW, NOW, None, None, created)


def _intent(task_id: str, seq: int) -> list[Event]:
    return [Event(task_id, seq, EventKind.STEP_STARTED, NOW, step_index=0, step_name="t")]


def _kinds(store: Any, task_id: str) -> list[EventKind]:
    return [e.kind for e in store.load_events(task_id)]


def test_a_claim_lost_in_a_crash_leaves_its_holder_unable_to_write(cluster: Cluster) -> None:
    from handrail.store.postgres import PostgresStore

    store = PostgresStore(cluster.url())
    store.create_task(_task("t1"))
    lost = store.claim_task("w1", now=NOW, lease_seconds=30.0, task_id="t1")
    assert lost is not None
    cluster.crash()  # before any flush: the claim was committed without one
    cluster.start()
    store.close()
    store = PostgresStore(cluster.url())
    try:
        record = store.get_task("t1")
        assert record is not None
        assert (record.epoch, record.lease_owner) == (0, None)
        assert _kinds(store, "t1") == [EventKind.TASK_CREATED]  # the claim is forgotten
        again = store.claim_task("w1", now=NOW + 1, lease_seconds=30.0, task_id="t1")
        assert again is not None
        # the same worker, the same epoch: only the token tells the leases apart
        assert (again.lease.worker_id, again.lease.epoch) == ("w1", lost.lease.epoch)
        with pytest.raises(LeaseLost):
            store.append_events(lost.lease, _intent("t1", 2), now=NOW + 1, boundary=True)
        assert not store.renew_lease(lost.lease, now=NOW + 1, lease_seconds=30.0)
        store.append_events(again.lease, _intent("t1", 2), now=NOW + 1, boundary=True)
        assert _kinds(store, "t1") == [
            EventKind.TASK_CREATED,
            EventKind.TASK_CLAIMED,
            EventKind.STEP_STARTED,
        ]
    finally:
        store.close()


def test_a_claim_is_durable_once_its_holder_has_written(cluster: Cluster) -> None:
    """The holder's first write (an intent, before any effect) waits for its flush, and
    the WAL is one sequence: the claim before it is flushed with it."""
    from handrail.store.postgres import PostgresStore

    store = PostgresStore(cluster.url())
    store.create_task(_task("t1"))
    held = store.claim_task("w1", now=NOW, lease_seconds=30.0, task_id="t1")
    assert held is not None
    store.append_events(held.lease, _intent("t1", 2), now=NOW, boundary=True)
    started = time.monotonic()
    cluster.crash()
    assert time.monotonic() - started < 10  # within the WAL writer's delay
    cluster.start()
    store.close()
    store = PostgresStore(cluster.url())
    try:
        record = store.get_task("t1")
        assert record is not None
        assert (record.epoch, record.lease_owner) == (1, "w1")
        assert _kinds(store, "t1") == [
            EventKind.TASK_CREATED,
            EventKind.TASK_CLAIMED,
            EventKind.STEP_STARTED,
        ]
        done = Event("t1", 3, EventKind.STEP_COMPLETED, NOW, step_index=0, step_name="t")
        store.append_events(held.lease, [done], now=NOW)  # the lease survived with the claim
    finally:
        store.close()
