"""A task whose worker process was SIGKILLed is taken over by another worker once its lease
expires, and resumed where it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from handrail import EventKind, TaskStatus
from handrail.store.url import open_store

HERE = Path(__file__).parent


def _takeover(db: str, tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    env = {**os.environ, "TK_DB": db, "TK_EFFECTS": str(effects), "PYTHONPATH": str(HERE)}

    def run(arg: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "takeoverapp", arg],
            env=env,
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=60,
        )

    task_id = run("start").stdout.strip()
    first = run("work")
    assert first.returncode == -signal.SIGKILL, first.stderr
    second = run("work")
    assert second.returncode == 0, second.stderr

    store = open_store(db)
    try:
        record = store.get_task(task_id)
        assert record is not None
        assert record.status is TaskStatus.COMPLETED
        events = store.load_events(task_id)
        claims = [e for e in events if e.kind is EventKind.TASK_CLAIMED]
        assert len(claims) == 2
        assert claims[0].data is not None
        assert claims[1].data is not None
        assert claims[0].data["worker"] != claims[1].data["worker"]
        assert [claims[0].data["epoch"], claims[1].data["epoch"]] == [1, 2]
        # The second worker waited for the dead one's lease to run out. A lease lasts
        # lease_seconds (1.0) from the claim's own clock reading, which is the claim
        # event's timestamp; heartbeats only extend it. (The last event before the kill
        # is no bound: the lease may have been renewed before it, not after.)
        assert claims[1].timestamp - events[-1].timestamp <= 0
        assert claims[1].timestamp >= claims[0].timestamp + 1.0
        last_before = max(e.timestamp for e in events if e.seq < claims[1].seq)
        assert claims[1].timestamp > last_before
        ticks = [int(line.split()[0]) for line in effects.read_text().splitlines()]
        assert sorted(ticks) == [0, 1, 2, 2, 3, 4]  # only the in-doubt idempotent step twice
        assert events[-1].kind is EventKind.TASK_COMPLETED
        assert events[-1].outputs == 10
    finally:
        store.close()


def test_sqlite_takeover_after_lease_expiry(tmp_path: Path) -> None:
    _takeover(str(tmp_path / "tk.db"), tmp_path)


@pytest.mark.postgres
def test_postgres_takeover_after_lease_expiry(tmp_path: Path, pg_url: str) -> None:
    _takeover(pg_url, tmp_path)
