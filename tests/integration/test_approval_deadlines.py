"""Approval deadlines are stored due times: they fire in a process started after the one
that made the request was SIGKILLed (DESIGN.md invariant 8)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from handrail import EventKind, TaskStatus
from handrail.store.url import open_store

HERE = Path(__file__).parent


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_deadlines_fire_after_a_real_restart(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = (
        str(tmp_path / "deadlines.db") if backend == "sqlite" else request.getfixturevalue("pg_url")
    )
    effects = tmp_path / "effects.txt"
    env = {**os.environ, "DL_DB": db, "DL_EFFECTS": str(effects), "PYTHONPATH": str(HERE)}

    def run(arg: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "deadlineapp", arg],
            env=env,
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=60,
        )

    tag_id, close_id = run("start").stdout.split()
    first = run("idle")
    assert first.returncode == -signal.SIGKILL, first.stderr
    assert not effects.exists()
    store = open_store(db)
    try:
        for task_id in (tag_id, close_id):
            record = store.get_task(task_id)
            assert record is not None
            assert record.status is TaskStatus.AWAITING_APPROVAL
            assert record.run_at is not None  # the deadline, stored
        deadline = max(store.get_task(t).run_at for t in (tag_id, close_id))  # type: ignore[union-attr,type-var]
        while time.time() < deadline:  # no process runs while the deadlines pass
            time.sleep(0.05)
        second = run("work")
        assert second.returncode == 0, second.stderr
        tagged = store.get_task(tag_id)
        closed = store.get_task(close_id)
        assert tagged is not None
        assert closed is not None
        assert tagged.status is TaskStatus.COMPLETED
        assert closed.status is TaskStatus.FAILED
        assert effects.read_text().splitlines() == ["tagged a-1"]
        for task_id, actor, reason in (
            (tag_id, "timer:auto_approve_after", "auto_approve_after"),
            (close_id, "timer:auto_deny_after", "timeout_no_response"),
        ):
            (decided,) = [
                e for e in store.load_events(task_id) if e.kind is EventKind.APPROVAL_DECIDED
            ]
            assert decided.actor == actor
            assert decided.data is not None
            assert decided.data["reason"] == reason
            requested = next(
                e for e in store.load_events(task_id) if e.kind is EventKind.APPROVAL_REQUESTED
            )
            assert decided.timestamp >= requested.data["expires_at"]  # type: ignore[index]
    finally:
        store.close()
