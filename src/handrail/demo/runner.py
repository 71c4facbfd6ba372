"""`handrail demo`: a contract-renewal agent killed mid-task, resumed, and checked.

The story, on a fresh SQLite file:

1. start a ``renew_contract`` task;
2. a worker process drives it and is killed with SIGKILL inside ``update_renewal_date``,
   after the CRM write reached the disk and before handrail journaled the result, so the
   step is *in doubt*;
3. a worker restarted with the same identity takes the task back at once, replays the
   journal (recorded steps are not run again) and re-runs the in-doubt step with the same
   idempotency key, which the CRM recognises as a duplicate;
4. the timeline, the side-effect counts read from the systems' files, and a verdict.

Each phase is a function, so later features (approvals, audit) add phases.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.text import Text

import handrail
from handrail import ops
from handrail.cli import render
from handrail.demo.contract_renewal import WORKFLOW, build_app
from handrail.demo.systems import Systems
from handrail.journal import EventKind, TaskStatus
from handrail.store.url import open_store

TASK_ID = "renewal-C-1042"
CONTRACT_ID = "C-1042"
WORKER_ID = "demo-worker"
CRASH_TOOL = "update_renewal_date"
CHILD_TIMEOUT = 60.0


class DemoError(Exception):
    """The demo could not run (not: ran and found a problem; that is the verdict)."""


@dataclass
class Paths:
    db: Path
    systems: Path
    directory: Path
    temporary: bool


@dataclass
class Outcome:
    """What the demo observed; the verdict is computed from it."""

    killed: bool = False
    in_doubt_after_crash: list[str] = field(default_factory=list)
    final_status: TaskStatus | None = None
    retried: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    update_keys: list[str] = field(default_factory=list)

    def failures(self) -> list[str]:
        problems = []
        if not self.killed:
            problems.append("the first worker was not killed mid-task")
        if self.in_doubt_after_crash != [CRASH_TOOL]:
            problems.append(f"expected {CRASH_TOOL} in doubt, found {self.in_doubt_after_crash}")
        if self.final_status is not TaskStatus.COMPLETED:
            status = self.final_status.value if self.final_status else "unknown"
            problems.append(f"the task ended {status}, not completed")
        if CRASH_TOOL not in self.retried:
            problems.append(f"{CRASH_TOOL} was not re-run")
        expected = {"crm_updates": 1, "crm_duplicates": 1, "notices_sent": 1}
        expected["activities_logged"] = 1
        for name, want in expected.items():
            if self.counts.get(name) != want:
                problems.append(f"{name} = {self.counts.get(name)}, expected {want}")
        if len(set(self.update_keys)) != 1:
            problems.append(f"the CRM saw different keys: {self.update_keys}")
        return problems


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


def _heading(out: Console, text: str) -> None:
    out.print()
    out.print(Text(text, style="bold"))


def _note(out: Console, text: str, style: str = "") -> None:
    out.print(Text(text, style=style))


def _run_worker(out: Console, paths: Paths, *, crash_after: str | None) -> int:
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


def start_task(out: Console, paths: Paths, initiator: str) -> None:
    _heading(out, f"1. Start a {WORKFLOW} task for contract {CONTRACT_ID}")
    with build_app(paths.db, paths.systems) as app:
        app.start(WORKFLOW, contract_id=CONTRACT_ID, task_id=TASK_ID, initiator=initiator)
    _note(out, f"task {TASK_ID} is pending, started by {initiator}")


def crash(out: Console, paths: Paths, systems: Systems, outcome: Outcome) -> None:
    _heading(
        out,
        f"2. A worker ({WORKER_ID}) drives the task and is killed inside {CRASH_TOOL}, after "
        "the CRM write reached the disk, before the result is journaled",
    )
    code = _run_worker(out, paths, crash_after=CRASH_TOOL)
    outcome.killed = code == -signal.SIGKILL
    _note(
        out,
        f"worker process exit status {code} (killed by SIGKILL)"
        if outcome.killed
        else f"worker process exited with {code}; it was meant to be killed",
        "red" if not outcome.killed else "",
    )
    store = open_store(str(paths.db))
    try:
        view = ops.show_task(store, TASK_ID)
    finally:
        store.close()
    doubt = [s for s in view.state.steps.values() if s.in_doubt]
    outcome.in_doubt_after_crash = [s.name for s in doubt]
    for step in doubt:
        _note(
            out,
            f"journal: step {step.index} {step.name}: intent recorded, no result -> in doubt "
            f"(task {view.record.status.value}, lease held by the dead {view.record.lease_owner})",
            "yellow",
        )
    counts = systems.counts()
    _note(
        out,
        f"CRM file: {counts['crm_updates']} update applied. The effect happened; the journal "
        "cannot know it. Re-running a plain write would apply it twice.",
        "yellow",
    )


def resume(out: Console, paths: Paths, systems: Systems, outcome: Outcome) -> None:
    _heading(
        out,
        f"3. Restart the worker with the same id ({WORKER_ID}): it takes its lease back at once "
        "and replays the journal",
    )
    _run_worker(out, paths, crash_after=None)
    store = open_store(str(paths.db))
    try:
        view = ops.show_task(store, TASK_ID)
    finally:
        store.close()
    outcome.final_status = view.record.status
    for event in view.events:
        if event.kind is EventKind.STEP_RETRIED and event.step_name:
            outcome.retried.append(event.step_name)
            reason = (event.data or {}).get("reason", "")
            _note(out, f"journal: step {event.step_index} {event.step_name} re-run: {reason}")
    outcome.update_keys = systems.update_keys()
    if outcome.update_keys:
        same = len(set(outcome.update_keys)) == 1
        _note(
            out,
            f"CRM saw key {outcome.update_keys[0]} {len(outcome.update_keys)} times "
            + (
                "(the same key on both attempts): applied once, then ignored as a duplicate"
                if same
                else f"but with different keys: {outcome.update_keys}"
            ),
        )
    _heading(out, "4. The task's timeline (as `handrail tasks show` prints it)")
    out.print(render.task_view(view, now=time.time()))


def report(out: Console, systems: Systems, outcome: Outcome) -> bool:
    outcome.counts = counts = systems.counts()
    _heading(out, "5. Side effects, counted from the systems' files")
    _note(
        out,
        f"CRM updates: {counts['crm_updates']} (duplicates ignored: {counts['crm_duplicates']}), "
        f"notices sent: {counts['notices_sent']}, "
        f"CRM activities logged: {counts['activities_logged']}",
    )
    problems = outcome.failures()
    out.print()
    if problems:
        _note(out, "verdict: FAIL - " + "; ".join(problems), "bold red")
        return False
    _note(
        out,
        "verdict: PASS - killed mid-step, resumed, and every side effect happened exactly once: "
        f"the in-doubt {CRASH_TOOL} re-ran with the same idempotency key and the CRM "
        "deduplicated it; the notice was sent once",
        "bold green",
    )
    return True


def run_demo(out: Console, *, db: Path | None, keep: bool, initiator: str) -> bool:
    """Run the whole demo; ``True`` if the verdict is PASS."""
    if not hasattr(signal, "SIGKILL"):
        raise DemoError("the demo kills a worker with SIGKILL, which this platform lacks")
    began = time.monotonic()
    paths = prepare(db)
    passed = False
    try:
        out.print(
            Text(
                "handrail demo: a contract-renewal agent with a scripted planner "
                "(no LLM, no network)",
                style="bold",
            )
        )
        _note(out, f"store:   {paths.db} (fresh SQLite file)")
        _note(out, f"systems: {paths.systems} (contracts, CRM, outbox, activity log)")
        systems = Systems(paths.systems)
        systems.seed()
        outcome = Outcome()
        start_task(out, paths, initiator)
        crash(out, paths, systems, outcome)
        resume(out, paths, systems, outcome)
        passed = report(out, systems, outcome)
        _note(out, f"done in {time.monotonic() - began:.1f}s", "dim")
    finally:
        if paths.temporary and not keep:
            shutil.rmtree(paths.directory, ignore_errors=True)
            _note(out, f"removed {paths.directory} (pass --keep to look around)", "dim")
        else:
            _note(out, f"kept: handrail --db {paths.db} tasks show {TASK_ID}", "dim")
    return passed
