"""`handrail worker`: run the app's workflows from its store until stopped."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType

import click

from handrail.cli.runtime import runtime
from handrail.worker import Worker


@click.command("worker")
@click.option(
    "--concurrency",
    default=4,
    show_default=True,
    type=click.IntRange(min=1),
    help="Tasks driven at once (threads).",
)
@click.option(
    "--queue",
    "queues",
    multiple=True,
    metavar="QUEUE",
    help="Only take tasks from this queue; repeat for several (default: every queue).",
)
@click.option(
    "--poll-interval",
    default=0.5,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="How often to look for new tasks when idle.",
)
@click.option(
    "--worker-id",
    metavar="ID",
    help="A fixed identity for this worker. A worker restarted with the same id takes back "
    "the tasks its dead predecessor held at once, instead of after their lease expires. "
    "Never run two live workers with one id.",
)
def worker(
    concurrency: int, queues: tuple[str, ...], poll_interval: float, worker_id: str | None
) -> None:
    """Run tasks of the --app's workflows until SIGINT or SIGTERM (needs --app).

    On a signal the worker stops claiming; running tasks stop at their next step boundary
    and go back to the store for any worker to continue. A second Ctrl-C quits at once.
    """
    rt = runtime()
    app = rt.app("worker")
    if worker_id is not None:
        app.adopt_worker_id(worker_id)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    runner = Worker(
        app, concurrency=concurrency, queues=list(queues) or None, poll_interval=poll_interval
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        runner.start()
        click.echo(
            f"worker {app.worker_id} running {', '.join(sorted(app.workflows))} "
            f"(queues: {', '.join(queues) or 'all'}; concurrency {concurrency}); Ctrl-C stops it",
            err=True,
        )
        while not stop.wait(0.2):
            pass
        click.echo(
            "stopping: running tasks stop at their next step boundary (Ctrl-C again quits at once)",
            err=True,
        )
        runner.stop()
    except KeyboardInterrupt:
        again = (
            f" (at once on a worker restarted with --worker-id {worker_id})" if worker_id else ""
        )
        click.echo(
            f"quit at once; the tasks this worker held continue once their lease expires{again}",
            err=True,
        )
        sys.stderr.flush()
        # The task threads are mid-step; the journal is durable, so leave without joining.
        os._exit(130)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    click.echo(f"worker {app.worker_id} stopped after {runner.completed} task run(s)", err=True)
