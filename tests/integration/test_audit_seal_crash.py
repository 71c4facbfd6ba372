"""Sealing audit drafts survives a SIGKILL anywhere: no record is lost, none is written
twice, and the next sealer finishes the job (issue 4, item 1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from handrail import App, TaskContext
from handrail.audit.record import RecordKind, tool_call_record
from handrail.store.url import open_store

HERE = Path(__file__).parent
TASKS, STEPS = 35, 10  # 350 drafts: batches of 100 in the child


@pytest.mark.parametrize("mode", ["sealed", "mid", "after"])
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_sealer_killed_partway_loses_and_repeats_nothing(
    backend: str, mode: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = str(tmp_path / "seal.db") if backend == "sqlite" else request.getfixturevalue("pg_url")
    app = App(url)

    @app.tool(idempotent=True)
    def touch(i: int) -> int:
        return i * 2

    @app.workflow
    def chain(ctx: TaskContext) -> int:
        return sum(touch(i) for i in range(STEPS))

    task_ids = [app.run(chain).task_id for _ in range(TASKS)]
    app.close()
    expected = {f"{t}:{i}:1" for t in task_ids for i in range(STEPS)}

    child = subprocess.run(
        [sys.executable, "-m", "sealapp", url, mode],
        env={**os.environ, "PYTHONPATH": str(HERE)},
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr

    store = open_store(url)
    try:
        log = store.audit_log()
        assert log.pending() == len(expected)  # every draft or record still waits: none lost
        rows = log.records(limit=10_000)  # seals what the killed sealer left
        assert sorted(r.call_id for r in rows) == sorted(expected)  # each exactly once
        assert log.pending() == len(expected)  # sealed, and waiting for the sequencer
        for row in rows:
            assert row.kind == RecordKind.TOOL_CALL
            call = tool_call_record(row, log.vault)
            assert call.raw_output == 2 * call.raw_input["i"]
    finally:
        store.close()
