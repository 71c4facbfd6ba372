#!/usr/bin/env python3
"""Flood control under a flood: what reading an approver group's load costs, and how many
re-checks a queue of waiting calls makes.

Run from the repository with the project's environment (no peer has flood control, so
there is nothing to compare it with side by side)::

    .venv/bin/python benchmarks/flood_bench.py                 # 100, 1000, 5000 waiting
    .venv/bin/python benchmarks/flood_bench.py --waiting 2000

For each size it makes that many tasks wait for approval in one group on a fresh SQLite
file (``App(path)``, a worker making the requests), then times
``handrail.approval_load.group_load``, the call every gated call and every re-check of a
queued call makes: the first call in a process (it folds every waiting journal) and the
next ones (only journals that grew are folded again), each the median of ``--repeats``.
It also prints the re-checks per second a queue of that many calls makes with the engine's
back-off (a call N places from a free slot re-checks every 5 x N s, at least once an hour)
next to the 5 s for everyone it replaced, and the worker CPU that costs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from handrail import App, TaskContext, TaskStatus
from handrail.approval_load import group_load

RECHECK, RECHECK_MAX = 5.0, 3600.0


def waiting_app(db: Path, waiting: int) -> App:
    app = App(str(db), max_pending_approvals=None)

    @app.tool(reversibility="irreversible", describe="Send the notice to {vendor}")
    def send(vendor: str) -> str:
        return vendor

    @app.workflow
    def renew(ctx: TaskContext, vendor: str) -> str:
        for i in range(3):
            ctx.step(f"prepare {i}", lambda i=i: i)
        return send(vendor)

    with app.worker(concurrency=8):
        for n in range(waiting):
            app.start(renew, f"v{n}")
        while True:
            rows = app.store.list_tasks(statuses=[TaskStatus.AWAITING_APPROVAL], limit=waiting)
            if len(rows) >= waiting:
                break
            time.sleep(0.1)
    return app


def timed(fn: object, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def rechecks_per_second(queued: int) -> float:
    return sum(1 / min(RECHECK * n, RECHECK_MAX) for n in range(1, queued + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("| waiting | group_load, first (ms) | group_load, next (ms) | re-checks/s, "
          "back-off | re-checks/s, every 5 s | worker CPU, back-off | worker CPU, every 5 s "
          "uncached |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for waiting in args.waiting:
        with tempfile.TemporaryDirectory() as tmp:
            app = waiting_app(Path(tmp) / "flood.db", waiting)
            try:
                t0 = time.perf_counter()
                pending, _ = group_load(app.store, "default")
                first = (time.perf_counter() - t0) * 1000
                assert pending == waiting, pending
                warm = timed(lambda: group_load(app.store, "default"), args.repeats)  # noqa: B023
            finally:
                app.close()
        backoff, flat = rechecks_per_second(waiting), waiting / RECHECK
        print(
            f"| {waiting:,} | {first:.1f} | {warm:.1f} | {backoff:.1f} | {flat:.0f} | "
            f"{backoff * warm / 10:.1f}% | {flat * first / 10:.0f}% |"
        )
    print(
        "\nWorker CPU: re-checks per second x the group_load time, as a share of one core "
        "(the re-check's claim and replay come on top). Before this change every queued "
        "call re-checked every 5 s and every group_load folded every waiting journal: the "
        "last column."
    )


if __name__ == "__main__":
    main()
