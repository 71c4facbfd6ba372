"""Approval gates on every store: structured requests, policies, deadlines, decisions,
suspension and flood control (issue 3; DESIGN.md invariants 4, 5, 8, 9)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

import handrail
from handrail import (
    App,
    ApprovalDenied,
    ApprovalPolicy,
    ApprovalRequest,
    ConfigurationError,
    EventKind,
    InvalidOperationError,
    TaskContext,
    TaskFailedError,
    TaskStatus,
)
from handrail.journal import Event
from handrail.testing import ManualClock

MakeApp = Callable[..., App]

REQUEST_FIELDS = (
    "request_id",
    "task_id",
    "requesting_agent",
    "proposed_action",
    "action_parameters",
    "agent_reasoning",
    "expected_outcome",
    "reversibility",
    "auto_approve_after",
    "auto_deny_after",
    "context_summary",
    "approvers",
    "created_at",
    "expires_at",
    "digest",
)


class Sent:
    """Where the tools' effects land."""

    def __init__(self) -> None:
        self.notices: list[tuple[str, int]] = []
        self.notes: list[str] = []


def renewal_app(
    make_app: MakeApp,
    sent: Sent,
    *,
    notice_policy: ApprovalPolicy | str | None = None,
    note_policy: ApprovalPolicy | str | None = None,
    **app_kwargs: Any,
) -> tuple[App, Any]:
    app = make_app(**app_kwargs)

    @app.tool(idempotent=True)
    def lookup(vendor: str) -> dict[str, Any]:
        return {"vendor": vendor, "amount": 1200}

    @app.tool(
        reversibility="fully_reversible",
        describe="Add a note to the contract of {vendor}",
        approval=note_policy,
    )
    def add_note(vendor: str, text: str) -> str:
        sent.notes.append(text)
        return "noted"

    @app.tool(
        reversibility="irreversible",
        describe="Send the renewal notice to {vendor} for {amount} EUR",
        expected_outcome="{vendor} receives the notice and renews for {amount} EUR",
        approval=notice_policy,
    )
    def send_notice(vendor: str, amount: int) -> str:
        sent.notices.append((vendor, amount))
        return f"sent to {vendor}"

    @app.workflow(agent="renewal-bot")
    def renew(ctx: TaskContext, vendor: str) -> str:
        info = lookup(vendor)
        ctx.reason("the contract ends in 30 days and the vendor's price is unchanged")
        add_note(vendor, "renewal planned")
        ctx.reason("the renewal needs the vendor to be told in writing")
        return str(send_notice(vendor, info["amount"]))

    return app, renew


def pending(app: App, task_id: str) -> handrail.Approval:
    (item,) = app.approvals(task_id=task_id)
    return item


def test_irreversible_call_waits_with_a_complete_structured_request(make_app: MakeApp) -> None:
    sent = Sent()
    app, renew = renewal_app(make_app, sent)
    handle = app.start(renew, "acme", initiator="carol")
    app.execute(handle.task_id)
    assert handle.status() is TaskStatus.AWAITING_APPROVAL
    assert sent.notices == []
    approval = pending(app, handle.task_id)
    request = approval.request
    assert isinstance(request, ApprovalRequest)
    for name in REQUEST_FIELDS:
        assert hasattr(request, name), name
    assert request.task_id == handle.task_id
    assert request.requesting_agent == "renewal-bot"
    assert request.proposed_action == "Send the renewal notice to acme for 1200 EUR"
    assert request.action_parameters == {"vendor": "acme", "amount": 1200}
    assert request.agent_reasoning == "the renewal needs the vendor to be told in writing"
    assert request.expected_outcome == "acme receives the notice and renews for 1200 EUR"
    assert request.reversibility == "irreversible"
    assert request.auto_approve_after is None
    assert request.auto_deny_after == 3600.0
    assert request.expires_at == request.created_at + 3600.0
    assert "add_note" in request.context_summary
    assert request.initiator == "carol"
    assert request.digest.startswith("sha256:")
    assert request.digest == handrail.approvals.digest(
        "send_notice", {"vendor": "acme", "amount": 1200}
    )
    event = next(
        e for e in app.store.load_events(handle.task_id) if e.kind is EventKind.APPROVAL_REQUESTED
    )
    assert event.requires_human_approval
    # the reversible note needed no approval under the default policy
    assert sent.notes == ["renewal planned"]


def test_approval_runs_the_call_once_and_records_who(make_app: MakeApp) -> None:
    sent = Sent()
    app, renew = renewal_app(make_app, sent)
    handle = app.start(renew, "acme", initiator="carol")
    app.execute(handle.task_id)
    request = pending(app, handle.task_id).request
    after = app.approve(
        request.request_id, by="dana", comment="price checked", digest=request.digest
    )
    assert after.status == "approved"
    app.execute(handle.task_id)
    assert handle.result() == "sent to acme"
    assert sent.notices == [("acme", 1200)]
    events = app.store.load_events(handle.task_id)
    decided = next(e for e in events if e.kind is EventKind.APPROVAL_DECIDED)
    assert decided.actor == "dana"
    assert decided.data is not None
    assert decided.data["comment"] == "price checked"
    started = [e for e in events if e.kind is EventKind.STEP_STARTED]
    assert started[-1].data == {"approval": request.request_id}
    assert started[-1].requires_human_approval


def test_resumption_appends_and_never_rewrites(make_app: MakeApp) -> None:
    sent = Sent()
    app, renew = renewal_app(make_app, sent)
    handle = app.start(renew, "acme")
    app.execute(handle.task_id)
    before = app.store.load_events(handle.task_id)
    app.approve(pending(app, handle.task_id).request_id, by="dana")
    app.execute(handle.task_id)
    after = app.store.load_events(handle.task_id)
    assert after[: len(before)] == before
    assert [e.seq for e in after] == list(range(len(after)))


def test_denial_fails_the_task_and_the_call_never_runs(make_app: MakeApp) -> None:
    sent = Sent()
    app, renew = renewal_app(make_app, sent)
    handle = app.start(renew, "acme")
    app.execute(handle.task_id)
    app.deny(pending(app, handle.task_id).request_id, by="dana", comment="wrong price")
    app.execute(handle.task_id)
    with pytest.raises(TaskFailedError) as info:
        handle.result()
    assert info.value.error is not None
    assert info.value.error["type"] == "ApprovalDenied"
    assert "dana" in info.value.error["message"]
    assert "wrong price" in info.value.error["message"]
    assert sent.notices == []


def test_a_workflow_can_catch_a_denial_and_replay_sees_it_again(make_app: MakeApp) -> None:
    app = make_app()
    runs: list[str] = []

    @app.tool(approval="always", reversibility="fully_reversible")
    def publish(text: str) -> str:
        runs.append(text)
        return "published"

    @app.tool(idempotent=True)
    def draft(text: str) -> str:
        return "drafted"

    @app.workflow
    def wf(ctx: TaskContext) -> str:
        try:
            return str(publish("v1"))
        except ApprovalDenied as denied:
            draft(denied.denied_by)
            ctx.now()
            return "kept as draft"

    handle = app.start(wf)
    app.execute(handle.task_id)
    app.deny(pending(app, handle.task_id).request_id, by="dana")
    app.execute(handle.task_id)
    assert handle.result() == "kept as draft"
    assert runs == []


@pytest.mark.parametrize(
    ("policy", "params", "needed"),
    [
        ("always", ("acme", "x"), True),
        ("never", ("acme", "x"), False),
        ("irreversible", ("acme", "x"), False),
        (ApprovalPolicy(require=lambda a: a.params["vendor"] != "acme"), ("acme", "x"), False),
        (ApprovalPolicy(require=lambda a: a.params["vendor"] != "acme"), ("evil", "x"), True),
    ],
    ids=["always", "never", "irreversible-only", "predicate-no", "predicate-yes"],
)
def test_policies_decide_which_reversible_calls_wait(
    make_app: MakeApp, policy: Any, params: tuple[str, str], needed: bool
) -> None:
    app = make_app()
    calls: list[str] = []

    @app.tool(reversibility="partially_reversible", approval=policy)
    def update(vendor: str, text: str) -> str:
        calls.append(vendor)
        return "ok"

    @app.workflow
    def wf(ctx: TaskContext) -> str:
        return str(update(*params))

    handle = app.run(wf)
    if needed:
        assert handle.status() is TaskStatus.AWAITING_APPROVAL
        assert calls == []
    else:
        assert handle.result() == "ok"


def test_app_wide_policy_with_an_amount_threshold(make_app: MakeApp) -> None:
    over = ApprovalPolicy(require=lambda a: a.params.get("amount", 0) > 1000, approvers=("dana",))
    app = make_app(approval_policy=over)

    @app.tool
    def refund(amount: int) -> int:
        return amount

    @app.workflow
    def wf(ctx: TaskContext, amount: int) -> int:
        return int(refund(amount))

    assert app.run(wf, 50).result() == 50
    big = app.run(wf, 5000)
    assert big.status() is TaskStatus.AWAITING_APPROVAL
    assert pending(app, big.task_id).request.approvers == ("dana",)


# -- invariant 4: irreversible actions are never auto-approved --------------------------


def test_a_never_policy_does_not_exempt_an_irreversible_call(make_app: MakeApp) -> None:
    sent = Sent()
    app, renew = renewal_app(make_app, sent, notice_policy="never")
    handle = app.run(renew, "acme")
    assert handle.status() is TaskStatus.AWAITING_APPROVAL
    assert sent.notices == []


def test_a_tool_policy_auto_approving_an_irreversible_call_is_refused(make_app: MakeApp) -> None:
    app = make_app()
    with pytest.raises(ConfigurationError, match="never auto-approved"):

        @app.tool(reversibility="irreversible", approval=ApprovalPolicy(auto_approve_after=10))
        def wire(amount: int) -> None: ...


def test_an_app_wide_auto_approve_timeout_denies_an_irreversible_call(
    make_app: MakeApp, clock: ManualClock
) -> None:
    sent = Sent()
    policy = ApprovalPolicy(auto_approve_after=60, auto_deny_after=None)
    app, renew = renewal_app(make_app, sent, approval_policy=policy)
    handle = app.run(renew, "acme")
    request = pending(app, handle.task_id).request
    assert request.auto_approve_after is None
    assert request.expires_at == request.created_at + 60
    clock.advance(61)
    app.execute(handle.task_id)
    assert handle.status() is TaskStatus.FAILED
    assert sent.notices == []
    decided = [
        e for e in app.store.load_events(handle.task_id) if e.kind is EventKind.APPROVAL_DECIDED
    ]
    assert decided[-1].actor == "timer:auto_deny_after"
    assert decided[-1].data is not None
    assert decided[-1].data["reason"] == "timeout_no_response"


@pytest.mark.parametrize(
    "actor", ["timer:auto_approve_after", "policy:default", "system:scheduler", "renewal-bot"]
)
def test_an_api_call_cannot_auto_approve_an_irreversible_call(
    make_app: MakeApp, actor: str
) -> None:
    sent = Sent()
    app, renew = renewal_app(make_app, sent)
    handle = app.run(renew, "acme")
    with pytest.raises(InvalidOperationError):
        app.approve(pending(app, handle.task_id).request_id, by=actor)
    assert pending(app, handle.task_id).status == "pending"


def test_an_approval_forged_into_the_journal_fails_closed(make_app: MakeApp) -> None:
    """Whatever reaches the store, the engine re-checks before an irreversible call runs."""
    sent = Sent()
    app, renew = renewal_app(make_app, sent)
    handle = app.run(renew, "acme")
    request = pending(app, handle.task_id).request
    events = app.store.load_events(handle.task_id)
    forged = Event(
        task_id=handle.task_id,
        seq=events[-1].seq + 1,
        kind=EventKind.APPROVAL_DECIDED,
        timestamp=app.clock.now(),
        step_index=request.step_index,
        step_name=request.tool,
        actor="timer:auto_approve_after",
        data={"request_id": request.request_id, "decision": "approved", "digest": request.digest},
    )
    app.store.append_unleased(
        handle.task_id,
        [forged],
        expect_seq=events[-1].seq,
        now=app.clock.now(),
        status=TaskStatus.PENDING,
        run_at=app.clock.now(),
    )
    app.execute(handle.task_id)
    assert sent.notices == []
    assert handle.status() is TaskStatus.AWAITING_APPROVAL
    fresh = pending(app, handle.task_id).request
    assert fresh.supersedes == request.request_id


# -- deadlines ----------------------------------------------------------------------------


def test_a_low_risk_request_auto_approves_on_its_deadline_on_another_worker(
    make_app: MakeApp, clock: ManualClock
) -> None:
    sent = Sent()
    policy = ApprovalPolicy(require="always", auto_approve_after=120, auto_deny_after=None)
    app, renew = renewal_app(make_app, sent, note_policy=policy)
    handle = app.run(renew, "acme")
    request = pending(app, handle.task_id).request
    assert request.tool == "add_note"
    assert request.auto_approve_after == 120
    record = app.store.get_task(handle.task_id)
    assert record is not None
    assert record.run_at == request.expires_at  # a stored due time, not a sleeping thread
    assert record.lease_owner is None
    # before the deadline nothing happens
    clock.advance(60)
    other, _ = renewal_app(make_app, sent, note_policy=policy)
    assert other.store.claim_task("w2", now=clock.now(), lease_seconds=30) is None
    clock.advance(61)
    other.execute(handle.task_id)
    assert sent.notes == ["renewal planned"]
    decided = next(
        e for e in other.store.load_events(handle.task_id) if e.kind is EventKind.APPROVAL_DECIDED
    )
    assert decided.actor == "timer:auto_approve_after"
    # and the irreversible notice after it still waits for a human
    assert handle.status() is TaskStatus.AWAITING_APPROVAL
    assert pending(other, handle.task_id).request.tool == "send_notice"


def test_no_response_by_the_deadline_means_deny(make_app: MakeApp, clock: ManualClock) -> None:
    sent = Sent()
    app, renew = renewal_app(make_app, sent, notice_policy=ApprovalPolicy(auto_deny_after=300))
    handle = app.run(renew, "acme")
    request = pending(app, handle.task_id).request
    clock.advance(301)
    with pytest.raises(InvalidOperationError, match="expired"):
        app.approve(request.request_id, by="dana")
    app.execute(handle.task_id)
    assert handle.status() is TaskStatus.FAILED
    approval = app.approval(request.request_id)
    assert approval.status == "denied"
    assert approval.denial is not None
    assert approval.denial.reason == "timeout_no_response"
    assert approval.denial.by == "timer:auto_deny_after"


def test_a_reminder_goes_out_once_before_the_auto_deny(
    make_app: MakeApp, clock: ManualClock
) -> None:
    seen = RecordingNotifier()
    sent = Sent()
    policy = ApprovalPolicy(auto_deny_after=600, remind_before=120)
    app, renew = renewal_app(make_app, sent, notice_policy=policy, notifiers=[seen])
    handle = app.run(renew, "acme")
    request = pending(app, handle.task_id).request
    assert request.remind_at == request.expires_at - 120  # type: ignore[operator]
    clock.advance(490)
    app.execute(handle.task_id)
    assert handle.status() is TaskStatus.AWAITING_APPROVAL
    kinds = [e.kind for e in app.store.load_events(handle.task_id)]
    assert kinds.count(EventKind.APPROVAL_REMINDED) == 1
    assert app.notifications.flush(10)
    assert [n.kind for n in seen.received] == ["approval_requested", "approval_reminder"]
    app.close()


# -- decisions: who may decide what --------------------------------------------------------


def test_resume_does_not_bypass_a_pending_approval(make_app: MakeApp) -> None:
    sent = Sent()
    app, renew = renewal_app(make_app, sent)
    handle = app.run(renew, "acme")
    with pytest.raises(InvalidOperationError, match="approvals approve"):
        app.resume(handle.task_id, by="olga")
    assert handle.status() is TaskStatus.AWAITING_APPROVAL
    assert sent.notices == []


def test_the_initiator_cannot_approve_but_can_deny(make_app: MakeApp) -> None:
    app, renew = renewal_app(make_app, Sent())
    handle = app.run(renew, "acme", initiator="carol")
    rid = pending(app, handle.task_id).request_id
    with pytest.raises(InvalidOperationError, match="separation of duties"):
        app.approve(rid, by="carol")
    app.deny(rid, by="carol", comment="changed my mind")
    assert app.approval(rid).status == "denied"


def test_the_agent_cannot_approve_its_own_request(make_app: MakeApp) -> None:
    app, renew = renewal_app(make_app, Sent())
    handle = app.run(renew, "acme")
    with pytest.raises(InvalidOperationError, match="agent"):
        app.approve(pending(app, handle.task_id).request_id, by="renewal-bot")


def test_the_approver_must_be_in_the_set_and_a_quorum_counts_distinct_people(
    make_app: MakeApp,
) -> None:
    sent = Sent()
    policy = ApprovalPolicy(approvers=("dana", "erin", "frank"), quorum=2)
    app, renew = renewal_app(make_app, sent, notice_policy=policy)
    handle = app.run(renew, "acme")
    rid = pending(app, handle.task_id).request_id
    with pytest.raises(InvalidOperationError, match="not an approver"):
        app.approve(rid, by="mallory")
    assert app.approve(rid, by="dana").status == "pending"
    with pytest.raises(InvalidOperationError, match="already"):
        app.approve(rid, by="dana")
    with pytest.raises(InvalidOperationError, match="not runnable"):
        app.execute(handle.task_id)  # one of two approvals: still waiting
    assert sent.notices == []
    assert app.approve(rid, by="erin").status == "approved"
    app.execute(handle.task_id)
    assert sent.notices == [("acme", 1200)]


def test_a_decision_on_a_changed_digest_or_a_decided_request_is_refused(
    make_app: MakeApp,
) -> None:
    app, renew = renewal_app(make_app, Sent())
    handle = app.run(renew, "acme")
    request = pending(app, handle.task_id).request
    with pytest.raises(InvalidOperationError, match="digest"):
        app.approve(request.request_id, by="dana", digest="sha256:" + "0" * 64)
    app.approve(request.request_id, by="dana", digest=request.digest)
    with pytest.raises(InvalidOperationError, match="approved already"):
        app.deny(request.request_id, by="erin")


def test_approve_with_edited_parameters_records_both_digests_and_runs_the_edit(
    make_app: MakeApp,
) -> None:
    sent = Sent()
    app, renew = renewal_app(make_app, sent)
    handle = app.run(renew, "acme")
    request = pending(app, handle.task_id).request
    with pytest.raises(InvalidOperationError, match="cannot edit"):
        app.approve(request.request_id, by="dana", edit={"bcc": "me"})
    after = app.approve(request.request_id, by="dana", edit={"amount": 1100})
    (decision,) = after.decisions
    assert decision.digest == request.digest
    assert decision.edited_digest == handrail.approvals.digest(
        "send_notice", {"vendor": "acme", "amount": 1100}
    )
    app.execute(handle.task_id)
    assert sent.notices == [("acme", 1100)]
    started = [e for e in app.store.load_events(handle.task_id) if e.kind is EventKind.STEP_STARTED]
    assert started[-1].inputs == {"args": ["acme", 1100], "kwargs": {}}


def test_on_resume_the_policy_in_force_is_rechecked(make_app: MakeApp) -> None:
    sent = Sent()
    app, renew = renewal_app(make_app, sent, notice_policy=ApprovalPolicy(approvers=("dana",)))
    handle = app.run(renew, "acme")
    old = pending(app, handle.task_id).request
    app.approve(old.request_id, by="dana")
    # the next worker runs with a stricter policy: dana is no longer an approver
    stricter, _ = renewal_app(make_app, sent, notice_policy=ApprovalPolicy(approvers=("erin",)))
    stricter.execute(handle.task_id)
    assert sent.notices == []
    fresh = pending(stricter, handle.task_id).request
    assert fresh.supersedes == old.request_id
    assert fresh.approvers == ("erin",)
    stricter.approve(fresh.request_id, by="erin")
    stricter.execute(handle.task_id)
    assert sent.notices == [("acme", 1200)]


# -- suspension ---------------------------------------------------------------------------


def test_a_waiting_task_holds_no_worker_and_wakes_on_any(make_app: MakeApp) -> None:
    sent = Sent()
    app, renew = renewal_app(make_app, sent)
    waiting = app.run(renew, "acme")
    record = app.store.get_task(waiting.task_id)
    assert record is not None
    assert record.status is TaskStatus.AWAITING_APPROVAL
    assert record.lease_owner is None
    # a second worker process decides nothing but runs the task after the decision
    other, _ = renewal_app(make_app, sent)
    other.approve(pending(other, waiting.task_id).request_id, by="dana")
    claim = other.store.claim_task("other", now=other.clock.now(), lease_seconds=30)
    assert claim is not None
    other.run_claim(claim)
    assert waiting.result() == "sent to acme"


# -- flood control ------------------------------------------------------------------------


def test_past_the_cap_gated_calls_queue_and_the_operator_is_told(
    make_app: MakeApp, clock: ManualClock
) -> None:
    seen = RecordingNotifier()
    sent = Sent()
    app, renew = renewal_app(
        make_app, sent, max_pending_approvals=2, notifiers=[seen], max_inline_wait=0
    )  # the re-checks are due in 5 s on a clock that moves only when told
    handles = []
    for vendor in ("a", "b", "c", "d"):
        handles.append(app.run(renew, vendor))
        clock.advance(1)
    requested = [len(app.approvals(task_id=h.task_id)) for h in handles]
    assert requested == [1, 1, 0, 0]
    assert all(h.status() is TaskStatus.AWAITING_APPROVAL for h in handles)
    queued = [
        e for e in app.store.load_events(handles[2].task_id) if e.kind is EventKind.APPROVAL_QUEUED
    ]
    assert queued[0].data is not None
    assert queued[0].data["cap"] == 2
    # a slot frees: the oldest queued call gets its request at its next re-check
    app.approve(pending(app, handles[0].task_id).request_id, by="dana")
    app.execute(handles[0].task_id)
    clock.advance(10)
    app.execute(handles[3].task_id)  # the younger one re-checks first and stays queued
    app.execute(handles[2].task_id)
    assert len(app.approvals(task_id=handles[2].task_id)) == 1
    assert app.approvals(task_id=handles[3].task_id) == []
    assert app.notifications.flush(10)
    kinds = [n.kind for n in seen.received]
    assert kinds.count("approval_queue_full") == 2  # once per queued call, not per re-check
    app.close()


def test_queued_calls_recheck_less_often_the_further_back_they_wait(
    make_app: MakeApp, clock: ManualClock
) -> None:
    import dataclasses

    sent = Sent()
    app, renew = renewal_app(make_app, sent, max_pending_approvals=1, max_inline_wait=0)
    app.gate_settings = dataclasses.replace(app.gate_settings, queue_recheck_max=12.0)
    t0 = clock.now()
    due = []
    for vendor in ("a", "b", "c", "d"):
        handle = app.run(renew, vendor)
        record = app.store.get_task(handle.task_id)
        assert record is not None
        due.append(record.run_at)
        clock.advance(1)
    # a got the slot; b, c and d wait one, two and three places from it: they re-check
    # in 5 s, 10 s, then the cap (12 s)
    assert due[1:] == [t0 + 1 + 5.0, t0 + 2 + 10.0, t0 + 3 + 12.0]
    app.close()


def test_the_group_load_follows_every_journal_that_moved(
    make_app: MakeApp, clock: ManualClock
) -> None:
    from handrail.approval_load import group_load

    sent = Sent()
    app, renew = renewal_app(make_app, sent, max_pending_approvals=1, max_inline_wait=0)
    a = app.run(renew, "a")
    clock.advance(1)
    b = app.run(renew, "b")
    group = pending(app, a.task_id).request.group
    load = group_load(app.store, group)
    assert (load[0], [t for _, t in load[1]]) == (1, [b.task_id])
    # a's request is approved and b, re-checking in another process (its own store
    # object), gets its own request. This process never saw b's task leave "awaiting
    # approval": only b's journal's last sequence number tells that its share changed.
    other, _ = renewal_app(make_app, sent, max_pending_approvals=1, max_inline_wait=0)
    other.approve(pending(other, a.task_id).request_id, by="dana")
    other.execute(a.task_id)
    clock.advance(10)
    other.execute(b.task_id)
    assert b.status() is TaskStatus.AWAITING_APPROVAL
    assert group_load(app.store, group) == (1, [])
    assert group_load(app.store, group, exclude_task=b.task_id) == (0, [])
    assert app.store.last_seqs([TaskStatus.AWAITING_APPROVAL]) == {
        b.task_id: app.store.load_events(b.task_id)[-1].seq
    }
    assert app.store.last_seqs([TaskStatus.COMPLETED, TaskStatus.AWAITING_APPROVAL]) == {
        a.task_id: app.store.load_events(a.task_id)[-1].seq,
        b.task_id: app.store.load_events(b.task_id)[-1].seq,
    }
    assert app.store.last_seqs([]) == {}
    other.close()
    app.close()


def test_workers_gating_together_never_pass_the_cap(make_app: MakeApp) -> None:
    import threading

    app = make_app(max_pending_approvals=2)
    app.clock = handrail.SystemClock()
    together = threading.Barrier(6, timeout=30)

    @app.tool(idempotent=True)
    def line_up(vendor: str) -> str:
        together.wait()  # six worker threads reach the gate at the same moment
        return vendor

    @app.tool(reversibility="irreversible", describe="Send the renewal notice to {vendor}")
    def send_notice(vendor: str) -> str:
        return vendor

    @app.workflow
    def renew(ctx: TaskContext, vendor: str) -> str:
        return send_notice(line_up(vendor))

    handles = [app.start(renew, f"v{n}") for n in range(6)]
    with app.worker(concurrency=6, poll_interval=0.05):
        deadline = time.monotonic() + 30
        while any(h.status() is not TaskStatus.AWAITING_APPROVAL for h in handles):
            assert time.monotonic() < deadline
            time.sleep(0.02)
    requests = sum(len(app.approvals(task_id=h.task_id)) for h in handles)
    assert requests == 2  # the other four are queued
    app.close()


class RecordingNotifier:
    """A notifier that keeps what it is sent (the real ones are tested in integration)."""

    name = "recording"

    def __init__(self) -> None:
        self.received: list[Any] = []

    def send(self, batch: Sequence[Any]) -> None:
        self.received.extend(batch)


def test_a_notifier_that_cannot_deliver_never_blocks_or_fails_the_task(
    make_app: MakeApp,
) -> None:
    import socket

    from handrail.notify import WebhookNotifier

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = WebhookNotifier(f"http://127.0.0.1:{port}/hook", "secret")
    sent = Sent()
    app, renew = renewal_app(make_app, sent, notifiers=[down])
    handle = app.run(renew, "acme")
    assert handle.status() is TaskStatus.AWAITING_APPROVAL
    app.approve(pending(app, handle.task_id).request_id, by="dana")
    app.execute(handle.task_id)
    assert handle.result() == "sent to acme"
    stats = app.notifications.dispatcher.stats()  # type: ignore[union-attr]
    assert stats["webhook"].sent == 0
    app.notifications.close(timeout=0.1)
