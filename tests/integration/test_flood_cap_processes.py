"""Worker processes gating in one approver group at the same moment never pass its cap:
flood control reads the group's load and writes under a lock every process on the store
shares (a file lock beside SQLite, an advisory lock in PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from handrail import EventKind, TaskStatus
from handrail.store.url import open_store

HERE = Path(__file__).parent


def _flood(db: str) -> None:
    env = {**os.environ, "FLOOD_DB": db, "PYTHONPATH": str(HERE)}
    sys.path.insert(0, str(HERE))
    try:
        os.environ["FLOOD_DB"] = db
        import floodapp
    finally:
        sys.path.remove(str(HERE))
        del os.environ["FLOOD_DB"]
    app = floodapp.app
    try:
        tasks = [app.start(floodapp.renew, f"v{n}").task_id for n in range(9)]
    finally:
        app.close()
        del sys.modules["floodapp"]
    env["FLOOD_AT"] = str(time.time() + 3.0)  # every process is up and waiting by then
    procs = [
        subprocess.Popen([sys.executable, "-m", "floodapp", "3"], env=env, cwd=HERE)
        for _ in range(3)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0

    store = open_store(db)
    try:
        requested = queued = 0
        for task_id in tasks:
            record = store.get_task(task_id)
            assert record is not None
            assert record.status is TaskStatus.AWAITING_APPROVAL
            kinds = [e.kind for e in store.load_events(task_id)]
            requested += EventKind.APPROVAL_REQUESTED in kinds
            queued += (
                EventKind.APPROVAL_QUEUED in kinds and EventKind.APPROVAL_REQUESTED not in kinds
            )
        assert (requested, queued) == (2, 7)
    finally:
        store.close()


def test_sqlite_processes_gating_at_once_never_pass_the_cap(tmp_path: Path) -> None:
    _flood(str(tmp_path / "flood.db"))


@pytest.mark.postgres
def test_postgres_processes_gating_at_once_never_pass_the_cap(pg_url: str) -> None:
    _flood(pg_url)
