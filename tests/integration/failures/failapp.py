"""A worker process for the restart test: one tool that reads a record from the vendor CRM.

``python -m failapp start`` enqueues a task and prints its id; ``python -m failapp work
TASK_ID`` runs a worker until that task is finished (the test may SIGKILL it before).
Environment: ``FA_DB`` (the store), ``FA_URL`` (the vendor CRM).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import httpx

from handrail import App, TaskContext
from handrail.failures import RetryPolicy

app = App(os.environ["FA_DB"], lease_seconds=30.0, max_inline_wait=0)
URL = os.environ["FA_URL"]


@app.tool(idempotent=True, retry=RetryPolicy(max_attempts=3, initial_delay=0.05, jitter=False))
def fetch_record(record_id: str) -> dict[str, Any]:
    response = httpx.get(f"{URL}/records/{record_id}", timeout=5.0)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


@app.workflow
def read_record(ctx: TaskContext, record_id: str) -> dict[str, Any]:
    return fetch_record(record_id)


def main() -> int:
    if sys.argv[1] == "start":
        print(app.start(read_record, sys.argv[2]).task_id, flush=True)
        app.close()
        return 0
    task_id = sys.argv[2]
    deadline = time.monotonic() + 30
    with app.worker(concurrency=1, poll_interval=0.02):
        print("working", flush=True)
        while not app.handle(task_id).status().terminal:
            if time.monotonic() > deadline:
                return 3
            time.sleep(0.02)
    app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
