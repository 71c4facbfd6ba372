"""The demo's plumbing: where its files go, how it prints, and its worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.text import Text

import handrail
from handrail import ops
from handrail.store.url import open_store

TASK_ID = "renewal-C-1042"
CONTRACT_ID = "C-1042"
WORKER_ID = "demo-worker"
CHILD_TIMEOUT = 60.0


class DemoError(Exception):
    """The demo could not run (not: ran and found a problem; that is the verdict)."""


@dataclass
class Paths:
    db: Path
    systems: Path
    directory: Path
    temporary: bool


def prepare(db: Path | None) -> Paths:
    """A fresh store and systems directory: a new temporary directory, or next to ``db``."""
    if db is None:
        directory = Path(tempfile.mkdtemp(prefix="handrail-demo-"))
        return Paths(directory / "handrail.db", directory / "systems", directory, True)
    db = db.resolve()
    systems = db.with_name(db.stem + "-systems")
    taken = [p for p in (db, systems) if p.exists()]
    if taken:
        raise DemoError(
            f"the demo needs a fresh store: {', '.join(map(str, taken))} exists already; "
            "pass a new --db path or delete it"
        )
    db.parent.mkdir(parents=True, exist_ok=True)
    return Paths(db, systems, db.parent, False)


def heading(out: Console, text: str) -> None:
    out.print()
    out.print(Text(text, style="bold"))


def note(out: Console, text: str, style: str = "") -> None:
    out.print(Text(text, style=style))


def read_task(paths: Paths) -> ops.TaskView:
    """The task's row, state and journal as they are on disk now."""
    store = open_store(str(paths.db))
    try:
        return ops.show_task(store, TASK_ID)
    finally:
        store.close()


def run_worker(out: Console, paths: Paths, *, crash_after: str | None = None) -> int:
    """Drive the task in a child process; echo what it did; return its exit code."""
    command = [
        sys.executable,
        "-m",
        "handrail.demo.driver",
        "--db",
        str(paths.db),
        "--systems",
        str(paths.systems),
        "--task",
        TASK_ID,
        "--worker-id",
        WORKER_ID,
    ]
    if crash_after:
        command += ["--crash-after", crash_after]
    package_root = str(Path(handrail.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    try:
        child = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=CHILD_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise DemoError(f"the worker process did not finish within {CHILD_TIMEOUT:.0f}s") from exc
    for line in child.stdout.splitlines():
        out.print(Text("  worker | ", style="dim") + Text(line))
    if child.returncode not in (0, -signal.SIGKILL):
        raise DemoError(f"the worker process failed (exit {child.returncode}):\n{child.stderr}")
    return child.returncode
