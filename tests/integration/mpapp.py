"""A small app for multi-process tests: every tool call appends its effect to a file."""

from __future__ import annotations

import os
import sys
import time

from handrail import App, TaskContext, TaskStatus

app = App(os.environ["MP_DB"], lease_seconds=float(os.environ.get("MP_LEASE", "30")))
EFFECTS = os.environ["MP_EFFECTS"]


def _effect(line: str) -> None:
    fd = os.open(EFFECTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


@app.tool
def act(task: str, i: int) -> str:
    _effect(f"{task} {i} {os.getpid()}")
    return f"{task}-{i}"


@app.workflow
def job(ctx: TaskContext, steps: int) -> list[str]:
    return [act(ctx.task_id, i) for i in range(steps)]


def main() -> None:
    """Work until every task is finished."""
    with app.worker(concurrency=int(sys.argv[1]), poll_interval=0.02):
        while app.store.list_tasks(statuses=[TaskStatus.PENDING, TaskStatus.IN_PROGRESS], limit=1):
            time.sleep(0.05)
    app.close()


if __name__ == "__main__":
    main()
