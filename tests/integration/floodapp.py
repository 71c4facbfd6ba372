"""An app for the cross-process flood-cap test: every task lines up until a common moment
(``FLOOD_AT``, seconds since the epoch), then makes a gated call, so several worker
processes gate in one approver group at once. Run as ``python -m floodapp THREADS``: a
worker until no task is pending or in progress."""

from __future__ import annotations

import os
import sys
import time

from handrail import App, TaskContext, TaskStatus

app = App(os.environ["FLOOD_DB"], max_pending_approvals=2)


@app.tool(idempotent=True)
def line_up(vendor: str) -> str:
    time.sleep(max(0.0, float(os.environ["FLOOD_AT"]) - time.time()))
    return vendor


@app.tool(reversibility="irreversible", describe="Send the renewal notice to {vendor}")
def send_notice(vendor: str) -> str:
    return vendor


@app.workflow
def renew(ctx: TaskContext, vendor: str) -> str:
    return send_notice(line_up(vendor))


def main() -> None:
    busy = [TaskStatus.PENDING, TaskStatus.IN_PROGRESS]
    with app.worker(concurrency=int(sys.argv[1]), poll_interval=0.05):
        time.sleep(0.5)
        while app.store.list_tasks(statuses=busy, limit=1):
            time.sleep(0.05)
    app.close()


if __name__ == "__main__":
    main()
