"""An app whose worker process dies mid-task once (for lease takeover tests)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from handrail import App, TaskContext, TaskStatus

app = App(os.environ["TK_DB"], lease_seconds=1.0)
EFFECTS = Path(os.environ["TK_EFFECTS"])
MARKER = EFFECTS.with_suffix(".killed")


@app.tool(idempotent=True)
def tick(i: int) -> int:
    with EFFECTS.open("a") as f:
        f.write(f"{i} {os.getpid()}\n")
        f.flush()
        os.fsync(f.fileno())
    if i == 2 and not MARKER.exists():
        MARKER.write_text("x")
        os.kill(os.getpid(), signal.SIGKILL)
    return i


@app.workflow
def count(ctx: TaskContext, n: int) -> int:
    return sum(tick(i) for i in range(n))


def main() -> None:
    if sys.argv[1] == "start":
        print(app.start(count, 5).task_id)
        return
    with app.worker(concurrency=1, poll_interval=0.05):
        while app.store.list_tasks(statuses=[TaskStatus.PENDING, TaskStatus.IN_PROGRESS], limit=1):
            time.sleep(0.05)


if __name__ == "__main__":
    main()
