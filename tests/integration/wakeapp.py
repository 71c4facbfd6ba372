"""A small app for wake-up tests on the store at ``$WAKE_DB``: ``python -m wakeapp
start NAME|approve TASK_ID|release`` acts as an operator in another process;
``python -m wakeapp idle`` runs an idle worker for a second and prints the CPU seconds
and voluntary context switches the process spent meanwhile."""

from __future__ import annotations

import os
import sys
import time

from handrail import App, TaskContext

app = App(os.environ["WAKE_DB"])


@app.tool
def greet(name: str) -> str:
    return f"hello {name}"


@app.workflow
def job(ctx: TaskContext, name: str) -> str:
    return greet(name)


@app.tool(approval="always")
def publish(text: str) -> str:
    return f"published {text}"


@app.workflow
def gated(ctx: TaskContext, text: str) -> str:
    return publish(text)


def _idle() -> None:
    import resource

    with app.worker(concurrency=4, poll_interval=60.0):
        time.sleep(0.3)  # started and gone idle
        cpu, usage = time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
        time.sleep(1.0)
        spent = time.process_time() - cpu
        switches = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - usage.ru_nvcsw
    print(f"{spent:.6f} {switches}")


def main() -> None:
    try:
        if sys.argv[1] == "start":
            print(app.start(job, sys.argv[2]).task_id)
        elif sys.argv[1] == "approve":
            (pending,) = app.approvals(task_id=sys.argv[2])
            app.approve(pending.request_id, by="approver")
        elif sys.argv[1] == "release":
            app.release("all", by="operator")
        elif sys.argv[1] == "idle":
            _idle()
        else:
            raise SystemExit(f"unknown command {sys.argv[1]!r}")
    finally:
        app.close()


if __name__ == "__main__":
    main()
