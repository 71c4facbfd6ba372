"""What the demo's journal and systems show, story by story; the verdict is made of it.

Each story is read back from the task's journal (its events, in order) and from the
systems' files, never assumed: a story whose events are missing, of the wrong class or out
of order reports a problem, and any problem fails the verdict.

- transient: ``check_vendor_status`` failed with a 503, was retried after a back-off
  journaled as a due time (no sooner than the service's ``Retry-After``), and succeeded;
- approvals: ``update_renewal_date`` (low risk) asked, and its request was approved by the
  ``auto_approve_after`` timer, no sooner than its deadline and before the step's intent;
  ``send_renewal_notice`` (irreversible) waited until the named approver (not the task's
  initiator, not a timer) approved the digest it was shown, ran after that decision, and
  the notice was sent exactly once;
- stale data: ``update_renewal_date`` hit a version conflict, its ``refresh`` hook re-read
  the version, and the retry with the refreshed inputs (journaled) and the same
  idempotency key succeeded without overwriting the colleague's edit;
- crash: the worker was killed with that write on disk and its result not journaled; the
  restarted worker re-ran the in-doubt step with the journaled refreshed inputs and the
  same key, and the CRM ignored it as a duplicate;
- permission: ``log_crm_activity`` got a 403, the task waited for a human with a
  structured intervention, an operator resolved it with ``retry``, and the step succeeded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TypeVar

from handrail.approvals import AUTO_APPROVE_TIMER, is_machine
from handrail.cli.render import clock_time
from handrail.demo.contract_renewal import AUTO_APPROVE_AFTER, DEMO_RETRY
from handrail.demo.evidence import (
    attempt_of,
    attempts,
    describe_failure,
    first,
    refreshed_inputs,
    step_events,
)
from handrail.demo.systems import Systems
from handrail.journal import Event, EventKind, TaskStatus

VENDOR_TOOL = "check_vendor_status"
UPDATE_TOOL = "update_renewal_date"
NOTICE_TOOL = "send_renewal_notice"
ACTIVITY_TOOL = "log_crm_activity"
CRASH_TOOL = UPDATE_TOOL

T = TypeVar("T")


@dataclass
class Outcome:
    """What the demo saw while it ran, which the final journal alone cannot show."""

    killed: bool = False
    in_doubt_after_crash: list[str] = field(default_factory=list)
    status_after_resume: TaskStatus | None = None
    notices_while_waiting: int | None = None
    status_after_approval: TaskStatus | None = None
    final_status: TaskStatus | None = None


@dataclass
class Story:
    """One thing the demo set out to show: what the evidence says, and what is wrong."""

    title: str
    facts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    checks: int = 0

    def expect(self, ok: bool, problem: str) -> bool:
        """Check one thing; record ``problem`` if it does not hold."""
        self.checks += 1
        if not ok:
            self.problems.append(problem)
        return ok

    def found(self, value: T | None, problem: str) -> T | None:
        """Check that ``value`` exists; record ``problem`` if it does not."""
        self.expect(value is not None, problem)
        return value


# -- shared by the stories -------------------------------------------------------------


def _failure_of(
    story: Story, steps: list[Event], tool: str, cls: str, decision: str
) -> Event | None:
    failed = story.found(first(steps, EventKind.STEP_FAILED), f"{tool} never failed")
    if failed is None:
        return None
    error, data = failed.error or {}, failed.data or {}
    story.expect(
        error.get("failure_class") == cls,
        f"{tool} failed with class {error.get('failure_class')}, not {cls}",
    )
    story.expect(
        data.get("decision") == decision,
        f"handrail decided {data.get('decision')} on {tool}'s failure, not {decision}",
    )
    story.facts.append(describe_failure(failed))
    return failed


# -- the stories -----------------------------------------------------------------------


def transient(events: list[Event], systems: Systems) -> Story:
    story = Story("transient failure, retried after a durable back-off")
    steps = step_events(events, VENDOR_TOOL)
    failed = _failure_of(story, steps, VENDOR_TOOL, "transient", "retry")
    if failed is None:
        return story
    due: float | None = story.found(
        (failed.data or {}).get("retry_at"), "the back-off has no due time in the journal"
    )
    asked = [r.get("retry_after") for r in systems.requests("vendors", "status")]
    wait = float(asked[0]) if asked and asked[0] is not None else 0.0
    if due is not None:
        delay = due - failed.timestamp
        honoured = story.expect(
            delay >= wait - 0.01,
            f"the back-off ({delay:.2f}s) is shorter than the Retry-After ({wait}s)",
        )
        story.facts.append(
            f"the back-off of {delay:.2f}s "
            + ("honours" if honoured else "ignores")
            + f" the service's Retry-After ({wait}s; the policy's own first back-off is "
            f"{DEMO_RETRY.backoff(1):.2f}s)"
        )
    retried = story.found(
        first(steps, EventKind.STEP_RETRIED, after=failed), f"{VENDOR_TOOL} was not retried"
    )
    done = story.found(
        first(steps, EventKind.STEP_COMPLETED, after=retried), f"{VENDOR_TOOL} did not complete"
    )
    if retried is not None and done is not None:
        story.expect(
            due is None or retried.timestamp >= due,
            "the retry started before its due time",
        )
        story.facts.append(
            f"attempt {attempt_of(retried)} at {clock_time(retried.timestamp)}, after the due time "
            f"({(retried.data or {}).get('reason')}): completed; {attempts(steps)} attempts in all"
        )
    answers = systems.outcomes("vendors", "status")
    story.expect(answers == ["503", "200"], f"the vendor service answered {answers}, not 503, 200")
    story.facts.append(f"the vendor status service answered: {', '.join(answers)}")
    return story


def approvals(events: list[Event], systems: Systems, outcome: Outcome, approver: str) -> Story:
    story = Story("approval gates: a low-risk call auto-approved, an irreversible one by a human")
    _auto_approved(story, events)
    _approved_by(story, events, systems, outcome, approver)
    return story


def _gate(story: Story, events: list[Event], tool: str) -> tuple[Event, list[Event]] | None:
    """``tool``'s one approval request and the decisions on it."""
    asked = [e for e in events if e.kind is EventKind.APPROVAL_REQUESTED and e.step_name == tool]
    if not story.expect(len(asked) == 1, f"{tool} asked for approval {len(asked)} times, not once"):
        return None
    rid = (asked[0].data or {}).get("request_id")
    decided = [
        e
        for e in events
        if e.kind is EventKind.APPROVAL_DECIDED and (e.data or {}).get("request_id") == rid
    ]
    if not story.expect(
        len(decided) == 1, f"approval {rid} ({tool}) has {len(decided)} decisions, not 1"
    ):
        return None
    return asked[0], decided


def _intent_after(story: Story, events: list[Event], tool: str, decided: Event) -> Event | None:
    """The step's intent (its first STEP_STARTED), which must follow the decision and name it."""
    started = story.found(
        first(step_events(events, tool), EventKind.STEP_STARTED), f"{tool} never started"
    )
    if started is None:
        return None
    rid = (decided.data or {}).get("request_id")
    story.expect(
        started.seq > decided.seq and started.timestamp >= decided.timestamp,
        f"{tool}'s intent (seq {started.seq}) came before its approval (seq {decided.seq})",
    )
    story.expect(
        (started.data or {}).get("approval") == rid,
        f"{tool}'s intent does not name approval {rid}",
    )
    return started


def _auto_approved(story: Story, events: list[Event]) -> None:
    gate = _gate(story, events, UPDATE_TOOL)
    if gate is None:
        return
    asked, (decided,) = gate
    request, data = asked.data or {}, decided.data or {}
    rid, deadline = request.get("request_id"), request.get("expires_at")
    story.expect(
        request.get("reversibility") != "irreversible"
        and request.get("auto_approve_after") == AUTO_APPROVE_AFTER
        and deadline is not None,
        f"approval {rid} is not a low-risk request that approves itself after "
        f"{AUTO_APPROVE_AFTER}s: {request.get('reversibility')}, auto_approve_after "
        f"{request.get('auto_approve_after')}",
    )
    story.expect(
        decided.actor == AUTO_APPROVE_TIMER and data.get("decision") == "approved",
        f"approval {rid} was {data.get('decision')} by {decided.actor}, not approved by "
        f"{AUTO_APPROVE_TIMER}",
    )
    on_time = deadline is not None and decided.timestamp >= float(deadline)
    story.expect(on_time, f"approval {rid} was auto-approved before its deadline")
    started = _intent_after(story, events, UPDATE_TOOL, decided)
    if deadline is not None:
        story.facts.append(
            f"{UPDATE_TOOL} ({request.get('reversibility')}) asked at "
            f"{clock_time(asked.timestamp)} (approval {rid}); nobody answered; approved by "
            f"{decided.actor} at {clock_time(decided.timestamp)}, "
            + ("not before" if on_time else "BEFORE")
            + f" its deadline {clock_time(float(deadline))} "
            f"(+{float(deadline) - asked.timestamp:.2f}s)"
            + (
                f"; the step's intent was journaled {_relative(started, decided)} it, at "
                f"{clock_time(started.timestamp)}"
                if started
                else ""
            )
        )


def _approved_by(
    story: Story, events: list[Event], systems: Systems, outcome: Outcome, approver: str
) -> None:
    gate = _gate(story, events, NOTICE_TOOL)
    if gate is None:
        return
    asked, (decided,) = gate
    request, data = asked.data or {}, decided.data or {}
    rid = request.get("request_id")
    story.expect(
        request.get("reversibility") == "irreversible"
        and request.get("auto_approve_after") is None
        and request.get("approvers") == [approver],
        f"approval {rid} is not an irreversible request for {approver} alone without "
        f"auto-approval: {request.get('reversibility')}, approvers {request.get('approvers')}, "
        f"auto_approve_after {request.get('auto_approve_after')}",
    )
    waited = outcome.status_after_resume
    story.expect(
        waited is TaskStatus.AWAITING_APPROVAL and outcome.notices_while_waiting == 0,
        f"while the request was open the task was {waited.value if waited else '?'} and the "
        f"outbox held {outcome.notices_while_waiting} notices, not awaiting_approval and 0",
    )
    story.facts.append(
        f"{NOTICE_TOOL} ({request.get('reversibility')}) asked at {clock_time(asked.timestamp)} "
        f"(approval {rid}, approvers: {', '.join(request.get('approvers') or [])}); the task "
        f"waited ({waited.value if waited else '?'}) with {outcome.notices_while_waiting} "
        "notices in the outbox"
    )
    who = decided.actor or ""
    story.expect(
        who == approver and data.get("decision") == "approved",
        f"approval {rid} was {data.get('decision')} by {who!r}, not approved by {approver!r}",
    )
    story.expect(
        who != request.get("initiator") and not is_machine(who),
        f"approval {rid} was decided by {who!r}: the initiator or a machine",
    )
    story.expect(
        data.get("digest") == request.get("digest"),
        f"{who} approved digest {data.get('digest')}, not the request's {request.get('digest')}",
    )
    comment = f" ({data['comment']})" if data.get("comment") else ""
    story.facts.append(
        f"approved by {who} at {clock_time(decided.timestamp)}{comment}, for the request's "
        f"digest {str(request.get('digest'))[:19]}…"
    )
    started = _intent_after(story, events, NOTICE_TOOL, decided)
    done = first(step_events(events, NOTICE_TOOL), EventKind.STEP_COMPLETED, after=started)
    story.expect(done is not None, f"{NOTICE_TOOL} did not complete")
    sent = systems.counts()["notices_sent"]
    story.expect(sent == 1, f"the notice was sent {sent} times, not once")
    if started is not None:
        story.facts.append(
            f"the step started at {clock_time(started.timestamp)}, "
            f"{_relative(started, decided)} the decision"
            + (f", and completed: {_compact(done.outputs_json)}" if done else "")
            + f"; the outbox holds {sent} notice{'s' if sent != 1 else ''}"
        )


def stale_data(events: list[Event], systems: Systems, contract_id: str) -> Story:
    story = Story("stale-data conflict, inputs refreshed")
    steps = step_events(events, UPDATE_TOOL)
    failed = _failure_of(story, steps, UPDATE_TOOL, "stale_data", "refresh")
    if failed is None:
        return story
    retried = story.found(
        first(steps, EventKind.STEP_RETRIED, after=failed), f"{UPDATE_TOOL} was not retried"
    )
    if retried is None or not story.expect(
        retried.inputs_json is not None, "the retry's refreshed inputs were not journaled"
    ):
        return story
    changed = refreshed_inputs(events, retried)
    old, new = changed.get("expected_version", (None, None))
    story.expect(
        list(changed) == ["expected_version"] and old is not None and new is not None,
        f"the refresh changed {changed}, not the expected version alone",
    )
    story.facts.append(
        f"the refresh hook re-read the CRM; attempt {attempt_of(retried)} is journaled with the "
        f"refreshed inputs: expected_version {old} -> {new}"
    )
    requests = systems.requests("crm", "update_end_date")
    first_two = [(r["outcome"], r["version"]) for r in requests[:2]]
    story.expect(
        first_two == [("conflict", old), ("applied", new)],
        f"the CRM saw {first_two}, not a conflict at version {old} then the update at {new}",
    )
    keys = {r["key"] for r in requests}
    story.expect(len(keys) == 1, f"the attempts used different idempotency keys: {keys}")
    story.facts.append(
        f"the CRM refused version {old} (409) and applied version {new}, both with key "
        f"{requests[0]['key'] if requests else '?'}"
    )
    edits = systems.requests("crm", "edit")
    record = systems.crm_record(contract_id, quiet=True)
    kept = False
    if story.expect(len(edits) == 1, f"the CRM saw {len(edits)} edits by a colleague, not 1"):
        kept = all(record.get(k) == v for k, v in edits[0]["fields"].items())
        story.expect(kept, f"{edits[0]['by']}'s edit was overwritten: {record}")
    story.facts.append(
        ("nothing was overwritten: " if kept else "")
        + f"the CRM record has owner {record.get('owner')!r} (the colleague's edit) and end date "
        f"{record.get('end_date')} (the agent's), at version {record.get('version')}"
    )
    return story


def crash(events: list[Event], systems: Systems, outcome: Outcome) -> Story:
    story = Story("SIGKILL mid-step, resumed without repeating an effect")
    story.expect(outcome.killed, "the first worker was not killed mid-task")
    story.expect(
        outcome.in_doubt_after_crash == [CRASH_TOOL],
        f"expected {CRASH_TOOL} in doubt after the crash, found {outcome.in_doubt_after_crash}",
    )
    steps = step_events(events, CRASH_TOOL)
    rerun = story.found(
        next(
            (
                e
                for e in steps
                if e.kind is EventKind.STEP_RETRIED
                and str((e.data or {}).get("reason", "")).startswith("in doubt after a crash")
            ),
            None,
        ),
        f"{CRASH_TOOL} was not re-run after the crash",
    )
    if rerun is not None:
        story.facts.append(
            f"killed after attempt {attempt_of(rerun) - 1}'s CRM write, before its result was "
            f"journaled; after the restart, attempt {attempt_of(rerun)}: "
            f"{(rerun.data or {}).get('reason')}"
        )
    requests = systems.requests("crm", "update_end_date")
    seen = [f"{r['outcome']} (version {r['version']})" for r in requests]
    in_order = story.expect(
        [r["outcome"] for r in requests] == ["conflict", "applied", "duplicate"],
        f"the CRM saw {seen}",
    )
    one_key = story.expect(len({r["key"] for r in requests}) == 1, "the CRM saw different keys")
    refreshed = story.expect(
        len(requests) == 3 and requests[2]["version"] == requests[1]["version"],
        "the re-run did not use the refreshed inputs",
    )
    fact = (
        f"{attempts(steps)} attempts with {'one key' if one_key else 'different keys'}: the CRM "
        f"saw {', '.join(seen)}"
    )
    if in_order and refreshed:
        fact += "; the re-run used the journaled refreshed inputs and was ignored as a duplicate"
    story.facts.append(fact)
    sent = systems.counts()["notices_sent"]
    story.expect(sent == 1, f"the notice was sent {sent} times, not once")
    times = "once" if sent == 1 else f"{sent} times"
    story.facts.append(f"the irreversible renewal notice is in the outbox {times}")
    return story


def permission(events: list[Event], systems: Systems, outcome: Outcome, operator: str) -> Story:
    story = Story("permission failure, raised to a human and resolved")
    steps = step_events(events, ACTIVITY_TOOL)
    failed = _failure_of(story, steps, ACTIVITY_TOOL, "permission", "intervene")
    if failed is None:
        return story
    raised = story.found(
        next(
            (
                e
                for e in events
                if e.kind is EventKind.INTERVENTION_RAISED and e.step_index == failed.step_index
            ),
            None,
        ),
        "no intervention was raised",
    )
    if raised is None:
        return story
    data = raised.data or {}
    iid = data.get("intervention_id")
    story.expect(
        data.get("kind") == "permission"
        and data.get("tool") == ACTIVITY_TOOL
        and bool(data.get("error"))
        and bool(data.get("needed")),
        "the intervention lacks its class, tool, error or what is needed",
    )
    story.expect(
        outcome.status_after_approval is TaskStatus.AWAITING_INTERVENTION,
        "the task did not wait for the intervention",
    )
    waited = outcome.status_after_approval
    story.facts.append(
        f"intervention {iid} raised at {clock_time(raised.timestamp)}: class "
        f"{data.get('failure_class')}, tool {data.get('tool')}; the task waited "
        f"({waited.value if waited else '?'})"
    )
    resolved = story.found(
        next(
            (
                e
                for e in events
                if e.kind is EventKind.INTERVENTION_RESOLVED
                and (e.data or {}).get("intervention_id") == iid
            ),
            None,
        ),
        f"intervention {iid} was not resolved",
    )
    if resolved is None:
        return story
    action = (resolved.data or {}).get("action")
    story.expect(
        resolved.actor == operator and action == "retry",
        f"resolved {action!r} by {resolved.actor!r}, not 'retry' by {operator!r}",
    )
    comment = (resolved.data or {}).get("comment")
    story.facts.append(
        f"resolved {action!r} by {resolved.actor} at {clock_time(resolved.timestamp)}"
        + (f" ({comment})" if comment else "")
    )
    retried = story.found(
        first(steps, EventKind.STEP_RETRIED, after=resolved), f"{ACTIVITY_TOOL} did not re-run"
    )
    done = story.found(
        first(steps, EventKind.STEP_COMPLETED, after=retried), f"{ACTIVITY_TOOL} did not complete"
    )
    if retried is not None and done is not None:
        story.facts.append(
            f"attempt {attempt_of(retried)} ({(retried.data or {}).get('reason')}): completed, "
            f"{_compact(done.outputs_json)}; {attempts(steps)} attempts in all"
        )
    answers = systems.outcomes("crm", "log_activity")
    story.expect(answers == ["403", "logged"], f"the CRM answered {answers}, not 403, logged")
    story.facts.append(f"the CRM answered: {', '.join(answers)}")
    return story


def effects(systems: Systems, outcome: Outcome) -> Story:
    counts = systems.counts()
    story = Story("side effects, counted from the systems' files")
    story.facts.append(
        f"CRM updates: {counts['crm_updates']} (duplicates ignored: {counts['crm_duplicates']}, "
        f"version conflicts: {counts['crm_conflicts']}), notices sent: {counts['notices_sent']}, "
        f"CRM activities logged: {counts['activities_logged']}"
    )
    expected = {"crm_updates": 1, "crm_duplicates": 1, "crm_conflicts": 1}
    expected.update(notices_sent=1, activities_logged=1)
    for name, want in expected.items():
        story.expect(counts[name] == want, f"{name} = {counts[name]}, expected {want}")
    status = outcome.final_status.value if outcome.final_status else "unknown"
    story.expect(outcome.final_status is TaskStatus.COMPLETED, f"the task ended {status}")
    return story


def _relative(event: Event, decision: Event) -> str:
    return "after" if event.seq > decision.seq else "BEFORE"


def _compact(outputs_json: str | None) -> str:
    return json.dumps(json.loads(outputs_json)) if outputs_json else "no output"
