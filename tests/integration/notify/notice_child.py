"""A process for the durable-notification tests: ``gate`` runs a task to its approval gate
and is SIGKILLed before its notifier could send; ``work`` runs a worker until the outbox
has nothing queued, and prints the outbox's counts as JSON.

Usage: ``python notice_child.py gate|work DB URL``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from handrail import App, TaskContext
from handrail.notify import WebhookNotifier

SECRET = "s3cret"


def make_app(db: str, url: str) -> App:
    app = App(db, notifiers=[WebhookNotifier(url, SECRET)])

    @app.tool(reversibility="irreversible", describe="Send the renewal notice to {vendor}")
    def send_notice(vendor: str) -> str:
        return f"sent to {vendor}"

    @app.workflow
    def renew(ctx: TaskContext, vendor: str) -> str:
        return send_notice(vendor)

    return app


def main() -> None:
    mode, db, url = sys.argv[1:4]
    app = make_app(db, url)
    if mode == "gate":
        # The notice is held by this process for a second, and its dispatcher would wait
        # a minute to batch it: it dies with the notice kept and unsent.
        app.notifications.hold_seconds = 1.0
        app.notifications.dispatcher_options = {"batch_window": 60.0}
        handle = app.run("renew", "acme")
        print(handle.task_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    app.notifications.recover_every = 0.05
    outbox = app.store.notice_outbox()
    deadline = time.monotonic() + 30
    with app.worker():
        while time.monotonic() < deadline:
            counts = outbox.counts()
            if counts and all(c.queued == 0 for c in counts.values()):
                break
            time.sleep(0.05)
    counts = outbox.counts()
    app.close()
    print(json.dumps({name: c.sent for name, c in counts.items()}), flush=True)


if __name__ == "__main__":
    main()
