"""`handrail demo`: a contract-renewal agent meets a flaky service, a concurrent edit,
approval gates, a SIGKILL and a missing permission, and still does every side effect
exactly once.

The story, on a fresh SQLite file:

1. start a ``renew_contract`` task;
2. a worker process drives it. The vendor status service answers 503 once: the step is
   journaled as failed (transient) with a due time for its retry, which the worker waits
   for. The CRM update (low risk) asks for approval; nobody answers, and its request
   approves itself at its deadline, which the worker waits for. A colleague edits the
   contract between the agent's read and its update: the update fails with a version
   conflict (stale data), the tool's refresh hook re-reads the version and the update is
   retried at once. The worker is killed with SIGKILL inside that update, after the CRM
   write reached the disk and before the result is journaled: *in doubt*;
3. a worker restarted with the same identity takes the task back at once, replays the
   journal and re-runs the in-doubt step with its refreshed inputs and the same
   idempotency key, which the CRM recognises as a duplicate. It drafts the notice; sending
   it is irreversible, so the task waits for a named approver;
4. the approver reads the request and approves it by name, for the digest shown;
5. a worker continues: the notice is sent once; then the CRM refuses to log the activity
   (403) and the task waits for a human;
6. an operator reads the intervention, has the permission granted and resolves it (retry);
7. a worker continues the task to the end;
8. the timeline; 9. each story read back from the journal and the systems' files, the
   side-effect counts (:mod:`handrail.demo.findings`);
10. the audit log sealed, exported and verified offline (:mod:`handrail.demo.audit_trail`),
   and the verdict over every story.
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from handrail.cli import render
from handrail.demo import audit_trail, evidence, findings, look_around
from handrail.demo.contract_renewal import APPROVER, APPROVER_ROLE, WORKFLOW, build_app
from handrail.demo.findings import CRASH_TOOL, NOTICE_TOOL, Outcome, Story
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
from handrail.errors import HandrailError
from handrail.journal import Event, EventKind, TaskStatus

__all__ = ["DemoError", "run_demo"]

# The approver of the notice is also the operator who resolves the intervention: one
# principal, ``dana``, shown with her role.
OPERATOR = APPROVER
SHOWN = f"{APPROVER} ({APPROVER_ROLE})"
APPROVAL_COMMENT = (
    f"checked the draft against contract {CONTRACT_ID}: right vendor contact and date"
)


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
        elif event.kind is EventKind.APPROVAL_REQUESTED:
            note(out, "journal: " + approval_requested(data), "magenta")
        elif event.kind is EventKind.APPROVAL_DECIDED:
            note(out, "journal: " + approval_decided(event), "magenta")
        elif event.kind is EventKind.INTERVENTION_RAISED:
            note(
                out,
                f"journal: intervention {data.get('intervention_id')} raised "
                f"({data.get('kind')}); the task waits for a human",
                "magenta",
            )
    return events[-1].seq if events else since


def approval_requested(data: dict[str, Any]) -> str:
    """An APPROVAL_REQUESTED event as one line: what is asked, of whom, until when."""
    head = (
        f"step {data.get('step_index')} {data.get('tool')} asks for approval "
        f"{data.get('request_id')} ({data.get('reversibility')})"
    )
    created, expires = data.get("created_at"), data.get("expires_at")
    if data.get("auto_approve_after") is not None and expires is not None:
        return (
            f"{head}; unanswered, it approves itself at {render.clock_time(float(expires))} "
            f"(+{float(expires) - float(created or expires):.2f}s, auto_approve_after)"
        )
    approvers = ", ".join(data.get("approvers") or []) or "any approver"
    denied = f"; unanswered, it is denied at {render.clock_time(float(expires))}" if expires else ""
    return f"{head}; it waits for {approvers}, no timer may approve it{denied}"


def approval_decided(event: Event) -> str:
    """An APPROVAL_DECIDED event as one line: who decided what, and when."""
    data = event.data or {}
    timer = (event.actor or "").startswith("timer:")
    why = (
        " (its deadline passed)" if timer else f" ({data['reason']})" if data.get("reason") else ""
    )
    comment = f": {data['comment']!r}" if data.get("comment") else ""
    return (
        f"approval {data.get('request_id')} {data.get('decision')} by {event.actor} at "
        f"{render.clock_time(event.timestamp)}{why}{comment}"
    )


def start_task(out: Console, paths: Paths, initiator: str) -> None:
    heading(out, f"1. Start a {WORKFLOW} task for contract {CONTRACT_ID}")
    with build_app(paths.db, paths.systems) as app:
        app.start(WORKFLOW, contract_id=CONTRACT_ID, task_id=TASK_ID, initiator=initiator)
    note(out, f"task {TASK_ID} is pending, started by {initiator}")


def crash(out: Console, paths: Paths, systems: Systems, outcome: Outcome) -> int:
    heading(
        out,
        f"2. A worker ({WORKER_ID}) drives the task: the vendor status service is briefly "
        f"down, the low-risk {CRASH_TOOL} is auto-approved at its deadline, a colleague edits "
        f"the contract mid-task, and the worker is killed inside {CRASH_TOOL}, after the CRM "
        "write reached the disk, before the result is journaled",
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
        f"3. Restart the worker with the same id ({WORKER_ID}): it takes its lease back at once, "
        f"replays the journal, and stops at the approval gate of {NOTICE_TOOL} (irreversible)",
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
    sent = outcome.notices_while_waiting = systems.counts()["notices_sent"]
    note(
        out,
        f"task {TASK_ID} is {view.record.status.value}; the outbox holds {sent} "
        f"notice{'' if sent == 1 else 's'}",
    )
    return seen


def approve(out: Console, paths: Paths, since: int) -> int:
    heading(
        out,
        f"4. The approver, {SHOWN}, reads the request (as `handrail approvals show` prints it) "
        "and approves it by name, for the digest shown",
    )
    with build_app(paths.db, paths.systems) as app:
        pending = [a for a in app.approvals(task_id=TASK_ID) if a.request.tool == NOTICE_TOOL]
        if not pending:
            note(out, f"no pending approval: {NOTICE_TOOL} did not wait for a human", "red")
            return since
        request = pending[0].request
        out.print(render.approval_view(pending[0], now=time.time()))
        note(
            out,
            f"{SHOWN} approves (as `handrail --as {APPROVER} approvals approve "
            f"{request.request_id} --digest {request.digest} --comment ...` does)",
            "magenta",
        )
        try:
            decided = app.approve(
                request.request_id, by=APPROVER, comment=APPROVAL_COMMENT, digest=request.digest
            )
        except HandrailError as exc:
            note(out, f"refused: {exc}", "red")
            return since
    note(
        out,
        f"approval {request.request_id} is {decided.status}; task {TASK_ID} is "
        f"{read_task(paths).record.status.value}",
    )
    return journal_notes(out, read_task(paths).events, since)


def send(out: Console, paths: Paths, outcome: Outcome, since: int) -> int:
    heading(
        out,
        f"5. A worker continues: {NOTICE_TOOL} runs once, approved; then the CRM refuses to "
        "log the activity",
    )
    if continue_task(out, paths):
        outcome.status_after_approval = read_task(paths).record.status
    view = read_task(paths)
    seen = journal_notes(out, view.events, since)
    note(out, f"task {TASK_ID} is {view.record.status.value}")
    return seen


def continue_task(out: Console, paths: Paths) -> bool:
    """Run a worker on the task if it is runnable; say so if it is not."""
    status = read_task(paths).record.status
    if status is not TaskStatus.PENDING:
        note(
            out, f"task {TASK_ID} is {status.value}, not pending; no worker can continue it", "red"
        )
        return False
    run_worker(out, paths)
    return True


def intervene(out: Console, paths: Paths) -> None:
    heading(
        out,
        f"6. An operator, {SHOWN}, reads the intervention (as `handrail interventions list` "
        "prints it), has the permission granted in the CRM, and resolves it",
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
        grants.grant(AGENT_ROLE, ACTIVITY_PERMISSION, by=SHOWN)
        status = app.resolve_intervention(
            item.intervention_id,
            action="retry",
            by=OPERATOR,
            comment=f"granted {ACTIVITY_PERMISSION} to the {AGENT_ROLE} role in the CRM",
        )
    note(
        out,
        f"{SHOWN} resolves {item.intervention_id} with retry (as `handrail --as {OPERATOR} "
        f"interventions resolve {item.intervention_id} --action retry` does): task {TASK_ID} "
        f"is {status.value}",
        "magenta",
    )


def finish(out: Console, paths: Paths, outcome: Outcome, since: int) -> list[Event]:
    heading(out, "7. A worker continues the task: the refused step runs again, now allowed")
    continue_task(out, paths)
    view = read_task(paths)
    outcome.final_status = view.record.status
    journal_notes(out, view.events, since)
    note(out, f"task {TASK_ID} is {view.record.status.value}")
    heading(out, "8. The task's timeline (as `handrail tasks show` prints it)")
    out.print(render.task_view(view, now=time.time()))
    return view.events


def print_story(out: Console, story: Story) -> None:
    note(out, story.title, "bold")
    for fact in story.facts:
        note(out, f"  - {fact}")
    for problem in story.problems:
        note(out, f"  ! {problem}", "red")


def report(
    out: Console,
    events: list[Event],
    systems: Systems,
    outcome: Outcome,
    paths: Paths | None = None,
) -> bool:
    heading(out, "9. What the journal and the systems' files show")
    stories: list[Story] = [
        findings.transient(events, systems),
        findings.approvals(events, systems, outcome, APPROVER),
        findings.stale_data(events, systems, CONTRACT_ID),
        findings.crash(events, systems, outcome),
        findings.permission(events, systems, outcome, OPERATOR),
        findings.effects(systems, outcome),
    ]
    for story in stories:
        print_story(out, story)
    if paths is not None:  # the demo ends by sealing the audit log and verifying it
        stories.append(audit_trail.seal_and_verify(out, paths, events))
        print_story(out, stories[-1])
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
        "back-off, the low-risk CRM update was auto-approved at its deadline, the version "
        "conflict was refreshed and retried with the same key, the irreversible notice waited "
        f"for {APPROVER}'s approval, the permission failure waited for a human and went on once "
        "resolved; killed mid-step and resumed, every side effect happened exactly once and "
        "the notice was sent once; the sealed audit log, with a record of every tool call, "
        "verified against its signed checkpoint",
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
        seen = approve(out, paths, seen)
        seen = send(out, paths, outcome, seen)
        intervene(out, paths)
        events = finish(out, paths, outcome, seen)
        passed = report(out, events, systems, outcome, paths)
        look_around.status(out, paths)
        note(out, f"done in {time.monotonic() - began:.1f}s", "dim")
    finally:
        kept = not (paths.temporary and not keep)
        if paths.db.exists():
            look_around.where_to_look(out, paths, kept=kept)
        if not kept:
            shutil.rmtree(paths.directory, ignore_errors=True)
            note(out, f"removed {paths.directory}", "dim")
        else:
            note(out, f"kept: handrail --db {paths.db} tasks show {TASK_ID}", "dim")
            bundle, key = audit_trail.bundle_path(paths), audit_trail.key_path(paths)
            if bundle.exists():
                note(
                    out,
                    f"      handrail audit verify --bundle {bundle} --public-key {key}.pub",
                    "dim",
                )
    return passed
