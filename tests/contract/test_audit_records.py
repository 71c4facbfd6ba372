"""Every tool-call attempt leaves a ToolCallRecord in the same transaction as the journal
event that ends it; approvals, interventions and halts leave records too (issue 4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from handrail import App, EventKind, TaskContext, ToolCallRecord
from handrail.audit.record import RecordKind, audit_entry, tool_call_record
from handrail.testing import ManualClock

MakeApp = Callable[..., App]


def records(app: App, task_id: str) -> list[Any]:
    log = app.store.audit_log()
    out: list[Any] = []
    for row in log.records(task_id=task_id, limit=1000):
        if row.kind == RecordKind.TOOL_CALL:
            out.append(tool_call_record(row, log.vault))
        else:
            out.append(audit_entry(row))
    return out


def tool_calls(app: App, task_id: str) -> list[ToolCallRecord]:
    return [r for r in records(app, task_id) if isinstance(r, ToolCallRecord)]


def test_each_attempt_has_one_record_and_each_record_its_step(
    make_app: MakeApp, clock: ManualClock
) -> None:
    app = make_app(max_inline_wait=0)
    failures = [ConnectionResetError("reset")]

    @app.tool(
        idempotent=True,
        describe="Read the contract of {email}",
        data_accessed=["crm.contracts"],
    )
    def lookup(email: str) -> dict[str, Any]:
        if failures:
            raise failures.pop()
        return {"owner": email, "iban": "DE89 3704 0044 0532 0130 00"}

    @app.tool(describe="Update the renewal date of {contract}", data_modified=["crm.end_date"])
    def update(contract: str, date: str) -> str:
        return "ok"

    @app.workflow(agent="renewal-bot")
    def wf(ctx: TaskContext) -> str:
        ctx.now()  # a built-in step: journaled, not a tool call
        lookup("ann@example.com")
        return str(update("C-1", "2027-01-01"))

    handle = app.run(wf, initiator="carol")
    clock.advance(60)
    app.execute(handle.task_id)
    assert handle.result() == "ok"
    calls = tool_calls(app, handle.task_id)
    events = app.store.load_events(handle.task_id)
    ended = [
        e
        for e in events
        if e.kind in (EventKind.STEP_COMPLETED, EventKind.STEP_FAILED)
        and e.step_name in ("lookup", "update")
    ]
    assert len(calls) == len(ended) == 3  # lookup failed once, then lookup and update
    first, second, third = calls
    assert (first.tool_name, first.outcome.value, first.failure_class) == (
        "lookup",
        "failure",
        "transient",
    )
    assert first.error["type"] == "ConnectionResetError"
    assert (second.outcome.value, second.attempt) == ("success", 2)
    assert second.raw_input == {"email": "ann@example.com"}
    assert second.raw_output["iban"] == "DE89 3704 0044 0532 0130 00"
    # the compliance view is redacted; the raw payloads are only in the sealed view
    assert "ann@example.com" not in second.action_description
    assert second.action_description.startswith("Read the contract of ")
    assert second.data_accessed == ("crm.contracts",)
    assert third.data_modified == ("crm.end_date",)
    assert third.action_description == "Update the renewal date of C-1"
    for record in calls:
        assert record.task_id == handle.task_id
        assert record.agent_id == "renewal-bot"
        assert record.authorized_by == "carol"  # no approval: the initiating principal
        assert record.duration_ms >= 0
        assert record.logged_at >= record.timestamp
    assert {r.call_id for r in calls} == {
        f"{handle.task_id}:1:1",
        f"{handle.task_id}:1:2",
        f"{handle.task_id}:2:1",
    }


def test_an_approved_call_is_authorized_by_its_approver(make_app: MakeApp) -> None:
    app = make_app()

    @app.tool(reversibility="irreversible", describe="Wire {amount} EUR")
    def wire(amount: int) -> str:
        return "sent"

    @app.workflow
    def wf(ctx: TaskContext) -> str:
        return str(wire(900))

    handle = app.run(wf, initiator="carol")
    (pending,) = app.approvals(task_id=handle.task_id)
    app.approve(pending.request_id, by="dana", comment="invoice 7 checked")
    app.execute(handle.task_id)
    (call,) = tool_calls(app, handle.task_id)
    assert call.authorized_by == "dana"
    assert call.approval == pending.request_id
    kinds = [
        (r.kind, r.actor) for r in records(app, handle.task_id) if not isinstance(r, ToolCallRecord)
    ]
    assert ("approval_requested", wf.name) in kinds
    assert ("approval_decided", "dana") in kinds


def test_interventions_and_halts_are_audited(make_app: MakeApp) -> None:
    app = make_app()

    @app.tool
    def write(note: str) -> str:
        raise PermissionError("no write access")

    @app.workflow
    def wf(ctx: TaskContext) -> str:
        return str(write("x"))

    handle = app.run(wf)
    (item,) = app.interventions(task_id=handle.task_id)
    app.resolve_intervention(item.intervention_id, action="fail", by="erin", comment="wrong")
    halt = app.halt("tool", "write", by="olga", reason="incident")
    app.release("tool", "write", by="olga")
    kinds = [
        (r.kind, r.actor) for r in records(app, handle.task_id) if not isinstance(r, ToolCallRecord)
    ]
    assert ("intervention_raised", None) in kinds
    assert ("intervention_resolved", "erin") in kinds
    log = app.store.audit_log()
    controls = [audit_entry(r) for r in log.records(kind="halt", limit=10)]
    controls += [audit_entry(r) for r in log.records(kind="release", limit=10)]
    assert {(c.kind, c.actor, c.details["halt_id"]) for c in controls} == {
        ("halt", "olga", halt.halt_id),
        ("release", "olga", halt.halt_id),
    }


def test_no_record_without_its_step(make_app: MakeApp, clock: ManualClock) -> None:
    """A worker whose journal write is refused (its lease was lost) leaves no record."""
    app = make_app()
    ran: list[str] = []

    @app.tool
    def effect(x: str) -> str:
        ran.append(x)
        # another worker takes the task over while this call runs
        clock.advance(app.lease_seconds + 1)
        app.store.claim_task("thief", now=clock.now(), lease_seconds=30, task_id=ctx_task[0])
        return "done"

    ctx_task: list[str] = []

    @app.workflow
    def wf(ctx: TaskContext) -> str:
        return str(effect("x"))

    handle = app.start(wf)
    ctx_task.append(handle.task_id)
    claim = app.store.claim_task("w1", now=clock.now(), lease_seconds=30, task_id=handle.task_id)
    assert claim is not None
    app.run_claim(claim)
    assert ran == ["x"]
    assert tool_calls(app, handle.task_id) == []
    completed = [
        e for e in app.store.load_events(handle.task_id) if e.kind is EventKind.STEP_COMPLETED
    ]
    assert completed == []  # the refused write (LeaseLost) took its record with it


@pytest.mark.parametrize("subject", [True, False], ids=["per-subject", "per-task"])
def test_erasure_makes_raw_payloads_unreadable_and_leaves_the_record(
    make_app: MakeApp, subject: bool
) -> None:
    from handrail.audit.payloads import subject_key_id, task_key_id
    from handrail.audit.record import ErasedPayload

    app = make_app()

    @app.tool(data_subject="customer" if subject else None)
    def note(customer: str, text: str) -> str:
        return f"noted for {customer}"

    @app.workflow
    def wf(ctx: TaskContext) -> str:
        return str(note("cust-9", "prefers e-mail"))

    handle = app.run(wf)
    log = app.store.audit_log()
    key = subject_key_id("cust-9") if subject else task_key_id(handle.task_id)
    assert log.keys.destroy(key, by="dpo")
    (call,) = tool_calls(app, handle.task_id)
    assert isinstance(call.raw_input, ErasedPayload)
    assert isinstance(call.raw_output, ErasedPayload)
    assert call.action_description == "Called note"
    assert call.outcome.value == "success"
