"""Several worker processes on one store share the work; each task runs on one at a time."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from handrail import App, TaskStatus

HERE = Path(__file__).parent


def _run_workers(db: str, effects: Path, processes: int, threads: int) -> None:
    env = {**os.environ, "MP_DB": db, "MP_EFFECTS": str(effects), "PYTHONPATH": str(HERE)}
    procs = [
        subprocess.Popen([sys.executable, "-m", "mpapp", str(threads)], env=env, cwd=HERE)
        for _ in range(processes)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0


def _check(db: str, effects: Path, tasks: int, steps: int, processes: int) -> None:
    os.environ["MP_DB"], os.environ["MP_EFFECTS"] = db, str(effects)
    sys.path.insert(0, str(HERE))
    try:
        import mpapp
    finally:
        sys.path.remove(str(HERE))
    app: App = mpapp.app
    try:
        records = app.store.list_tasks(limit=1000)
        assert len(records) == tasks
        assert {r.status for r in records} == {TaskStatus.COMPLETED}
        lines = effects.read_text().splitlines()
        counts = Counter(" ".join(line.split()[:2]) for line in lines)
        assert len(counts) == tasks * steps
        assert set(counts.values()) == {1}, "some step ran twice"
        pids = {line.split()[2] for line in lines}
        assert len(pids) >= 2, "the work was not shared between processes"
        for r in records:
            assert app.handle(r.task_id).result() == [f"{r.task_id}-{i}" for i in range(steps)]
    finally:
        app.close()
        sys.modules.pop("mpapp", None)


def _start(db: str, effects: Path, tasks: int, steps: int) -> None:
    os.environ["MP_DB"], os.environ["MP_EFFECTS"] = db, str(effects)
    sys.path.insert(0, str(HERE))
    try:
        import mpapp
    finally:
        sys.path.remove(str(HERE))
    for _ in range(tasks):
        mpapp.app.start(mpapp.job, steps)
    mpapp.app.close()
    sys.modules.pop("mpapp", None)


def test_sqlite_workers_in_several_processes(tmp_path: Path) -> None:
    db, effects = str(tmp_path / "mp.db"), tmp_path / "effects.txt"
    _start(db, effects, tasks=60, steps=4)
    _run_workers(db, effects, processes=3, threads=3)
    _check(db, effects, tasks=60, steps=4, processes=3)


@pytest.mark.postgres
def test_postgres_workers_in_several_processes(tmp_path: Path, pg_url: str) -> None:
    effects = tmp_path / "effects.txt"
    _start(pg_url, effects, tasks=60, steps=4)
    _run_workers(pg_url, effects, processes=3, threads=3)
    _check(pg_url, effects, tasks=60, steps=4, processes=3)


def test_many_processes_opening_a_new_sqlite_store_at_once(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    code = (
        "import sys; from handrail.store.sqlite import SQLiteStore; "
        "SQLiteStore(sys.argv[1]).close()"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db)]) for _ in range(8)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
