"""`handrail demo`: a contract-renewal agent meets a flaky service, a concurrent edit, a
SIGKILL and a missing permission, and still does every side effect exactly once.

The story, on a fresh SQLite file:

1. start a ``renew_contract`` task;
2. a worker process drives it. The vendor status service answers 503 once: the step is
   journaled as failed (transient) with a due time for its retry, which the worker waits
   for. A colleague edits the contract between the agent's read and its update: the update
   fails with a version conflict (stale data), the tool's refresh hook re-reads the version
   and the update is retried at once. The worker is killed with SIGKILL inside that update,
   after the CRM write reached the disk and before the result is journaled: *in doubt*;
3. a worker restarted with the same identity takes the task back at once, replays the
   journal and re-runs the in-doubt step with its refreshed inputs and the same idempotency
   key, which the CRM recognises as a duplicate. It sends the notice; then the CRM refuses
   to log the activity (403) and the task waits for a human;
4. an operator reads the intervention, has the permission granted and resolves it (retry);
5. a worker continues the task to the end;
6. the timeline; 7. each story read back from the journal and the systems' files, the
   side-effect counts, and a verdict (:mod:`handrail.demo.findings`).
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

from rich.console import Console
from rich.text import Text

from handrail.cli import render
from handrail.demo import evidence, findings
from handrail.demo.contract_renewal import WORKFLOW, build_app
from handrail.demo.findings import CRASH_TOOL, Outcome, Story
from handrail.demo.harness import (
    CONTRACT_ID,
    TASK_ID,
    WORKER_ID,
    DemoError,
    Paths,
    heading,
    note,
    prepare,
    read_task,
    run_worker,
)
from handrail.demo.systems import ACTIVITY_PERMISSION, AGENT_ROLE, Systems
from handrail.journal import Event, EventKind, TaskStatus

__all__ = ["DemoError", "run_demo"]

OPERATOR = "dana (CRM admin)"


def journal_notes(out: Console, events: list[Event], since: int) -> int:
    """Print the failure handling the journal recorded after ``since``; the last seq."""
    for event in events:
        if event.seq <= since:
            continue
        data = event.data or {}
        if event.kind is EventKind.STEP_FAILED:
            note(out, "journal: " + evidence.describe_failure(event), "yellow")
        elif event.kind is EventKind.STEP_RETRIED:
            changed = ""
            if event.inputs_json is not None:
                changes = evidence.refreshed_inputs(events, event)
                changed = " (" + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changes.items()) + ")"
            note(
                out,
                f"journal: step {event.step_index} {event.step_name} attempt "
                f"{data.get('attempt', '?')}: {data.get('reason', '')}{changed}",
            )
        elif event.kind is EventKind.INTERVENTION_RAISED:
            note(
                out,
                f"journal: intervention {data.get('intervention_id')} raised "
                f"({data.get('kind')}); the task waits for a human",
                "magenta",
            )
    return events[-1].seq if events else since


def start_task(out: Console, paths: Paths, initiator: str) -> None:
    heading(out, f"1. Start a {WORKFLOW} task for contract {CONTRACT_ID}")
    with build_app(paths.db, paths.systems) as app:
        app.start(WORKFLOW, contract_id=CONTRACT_ID, task_id=TASK_ID, initiator=initiator)
    note(out, f"task {TASK_ID} is pending, started by {initiator}")


def crash(out: Console, paths: Paths, systems: Systems, outcome: Outcome) -> int:
    heading(
        out,
        f"2. A worker ({WORKER_ID}) drives the task: the vendor status service is briefly "
        "down, a colleague edits the contract mid-task, and the worker is killed inside "
        f"{CRASH_TOOL}, after the CRM write reached the disk, before the result is journaled",
    )
    code = run_worker(out, paths, crash_after=CRASH_TOOL)
    outcome.killed = code == -signal.SIGKILL
    note(
        out,
        f"worker process exit status {code} (killed by SIGKILL)"
        if outcome.killed
        else f"worker process exited with {code}; it was meant to be killed",
        "red" if not outcome.killed else "",
    )
    view = read_task(paths)
    seen = journal_notes(out, view.events, since=-1)
    doubt = [s for s in view.state.steps.values() if s.in_doubt]
    outcome.in_doubt_after_crash = [s.name for s in doubt]
    for step in doubt:
        note(
            out,
            f"journal: step {step.index} {step.name}: intent recorded, no result -> in doubt "
            f"(task {view.record.status.value}, lease held by the dead {view.record.lease_owner})",
            "yellow",
        )
    counts = systems.counts()
    note(
        out,
        f"CRM file: {counts['crm_updates']} update applied. The effect happened; the journal "
        "cannot know it. Re-running a plain write would apply it twice.",
        "yellow",
    )
    return seen


def resume(out: Console, paths: Paths, systems: Systems, outcome: Outcome, since: int) -> int:
    heading(
        out,
        f"3. Restart the worker with the same id ({WORKER_ID}): it takes its lease back at once "
        "and replays the journal",
    )
    run_worker(out, paths)
    view = read_task(paths)
    outcome.status_after_resume = view.record.status
    seen = journal_notes(out, view.events, since)
    keys = systems.update_keys()
    if keys:
        same = len(set(keys)) == 1
        note(
            out,
            f"CRM saw key {keys[0]} {len(keys)} times "
            + (
                "(the same key on every attempt): refused at the stale version, applied once, "
                "then ignored as a duplicate"
                if same
                else f"but with different keys: {keys}"
            ),
        )
    note(out, f"task {TASK_ID} is {view.record.status.value}")
    return seen


def intervene(out: Console, paths: Paths) -> None:
    heading(
        out,
        "4. An operator reads the intervention (as `handrail interventions list` prints it), "
        "has the permission granted in the CRM, and resolves it",
    )
    with build_app(paths.db, paths.systems) as app:
        items = app.interventions(task_id=TASK_ID)
        if not items:
            note(out, "no open intervention: the task did not wait for a human", "red")
            return
        out.print(render.interventions_table(items))
        item = items[0]
        details = item.details
        error = details.get("error") or {}
        for label, value in (
            ("class", details.get("failure_class")),
            ("tool", details.get("tool")),
            ("error", f"{error.get('type')}: {error.get('message')}"),
            ("needed", details.get("needed")),
            ("options", ", ".join(details.get("options") or [])),
        ):
            note(out, f"  {label + ':':9}{value}")
        grants = Systems(paths.systems, log=lambda message: note(out, message))
        grants.grant(AGENT_ROLE, ACTIVITY_PERMISSION, by=OPERATOR)
        status = app.resolve_intervention(
            item.intervention_id,
            action="retry",
            by=OPERATOR,
            comment=f"granted {ACTIVITY_PERMISSION} to the {AGENT_ROLE} role in the CRM",
        )
    note(
        out,
        f"{OPERATOR} resolves {item.intervention_id} with retry (as `handrail --as NAME "
        f"interventions resolve {item.intervention_id} --action retry` does): task {TASK_ID} "
        f"is {status.value}",
        "magenta",
    )


def finish(out: Console, paths: Paths, outcome: Outcome, since: int) -> list[Event]:
    heading(out, "5. A worker continues the task: the refused step runs again, now allowed")
    status = read_task(paths).record.status
    if status is TaskStatus.PENDING:
        run_worker(out, paths)
    else:
        note(
            out, f"task {TASK_ID} is {status.value}, not pending; no worker can continue it", "red"
        )
    view = read_task(paths)
    outcome.final_status = view.record.status
    journal_notes(out, view.events, since)
    heading(out, "6. The task's timeline (as `handrail tasks show` prints it)")
    out.print(render.task_view(view, now=time.time()))
    return view.events


def report(out: Console, events: list[Event], systems: Systems, outcome: Outcome) -> bool:
    heading(out, "7. What the journal and the systems' files show")
    stories: list[Story] = [
        findings.transient(events, systems),
        findings.stale_data(events, systems, CONTRACT_ID),
        findings.crash(events, systems, outcome),
        findings.permission(events, systems, outcome, OPERATOR),
        findings.effects(systems, outcome),
    ]
    for story in stories:
        note(out, story.title, "bold")
        for fact in story.facts:
            note(out, f"  - {fact}")
        for problem in story.problems:
            note(out, f"  ! {problem}", "red")
    problems = [p for s in stories for p in s.problems]
    checks = sum(s.checks for s in stories)
    out.print()
    if problems:
        note(
            out,
            f"verdict: FAIL - {len(problems)} of {checks} checks failed: " + "; ".join(problems),
            "bold red",
        )
        return False
    note(
        out,
        f"verdict: PASS - all {checks} checks hold: the 503 was retried after a durable "
        "back-off, the version conflict was refreshed and retried with the same key, the "
        "permission failure waited for a human and went on once resolved; killed mid-step and "
        "resumed, every side effect happened exactly once and the notice was sent once",
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
        note(out, f"store:   {paths.db} (fresh SQLite file)")
        note(
            out,
            f"systems: {paths.systems} (contracts, vendor status, CRM, outbox; one 503 and one "
            "concurrent edit scripted, and the agent's CRM role may not write activities)",
        )
        systems = Systems(paths.systems)
        systems.seed()
        outcome = Outcome()
        start_task(out, paths, initiator)
        seen = crash(out, paths, systems, outcome)
        seen = resume(out, paths, systems, outcome, seen)
        intervene(out, paths)
        events = finish(out, paths, outcome, seen)
        passed = report(out, events, systems, outcome)
        note(out, f"done in {time.monotonic() - began:.1f}s", "dim")
    finally:
        if paths.temporary and not keep:
            shutil.rmtree(paths.directory, ignore_errors=True)
            note(out, f"removed {paths.directory} (pass --keep to look around)", "dim")
        else:
            note(out, f"kept: handrail --db {paths.db} tasks show {TASK_ID}", "dim")
    return passed
