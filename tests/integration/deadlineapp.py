"""An app whose approval deadlines must fire in a later process (deadline restart tests).

``start`` enqueues two tasks; ``idle`` runs a worker until both wait for approval, then
SIGKILLs itself; ``work`` runs a fresh worker until both tasks are finished.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from handrail import App, ApprovalPolicy, TaskContext, TaskStatus

app = App(os.environ["DL_DB"], lease_seconds=2.0)
EFFECTS = Path(os.environ["DL_EFFECTS"])
DEADLINE = 1.0


def _effect(line: str) -> None:
    with EFFECTS.open("a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


@app.tool(
    reversibility="fully_reversible",
    approval=ApprovalPolicy(require="always", auto_approve_after=DEADLINE, auto_deny_after=None),
)
def tag_account(account: str) -> str:
    _effect(f"tagged {account}")
    return "tagged"


@app.tool(reversibility="irreversible", approval=ApprovalPolicy(auto_deny_after=DEADLINE))
def close_account(account: str) -> str:
    _effect(f"closed {account}")
    return "closed"


@app.workflow
def tag(ctx: TaskContext, account: str) -> str:
    return str(tag_account(account))


@app.workflow
def close(ctx: TaskContext, account: str) -> str:
    return str(close_account(account))


def _tasks(statuses: list[TaskStatus]) -> int:
    return len(app.store.list_tasks(statuses=statuses, limit=10))


def main() -> None:
    if sys.argv[1] == "start":
        print(app.start(tag, "a-1").task_id, app.start(close, "a-2").task_id)
        return
    waiting = [TaskStatus.PENDING, TaskStatus.IN_PROGRESS]
    with app.worker(concurrency=2, poll_interval=0.05):
        if sys.argv[1] == "idle":
            while _tasks([TaskStatus.AWAITING_APPROVAL]) < 2:
                time.sleep(0.02)
            os.kill(os.getpid(), signal.SIGKILL)
        while _tasks([*waiting, TaskStatus.AWAITING_APPROVAL]):
            time.sleep(0.05)


if __name__ == "__main__":
    main()
