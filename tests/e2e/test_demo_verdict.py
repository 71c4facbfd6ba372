"""The demo's verdict is read from the journal and the systems' files, not assumed: when
the scripted failures do not happen, the stories say so and the verdict is FAIL."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
from rich.console import Console

from handrail import ops
from handrail.approvals import AUTO_APPROVE_TIMER
from handrail.audit.checkpoint import generate_signing_key
from handrail.audit_ops import LOG_ORIGIN
from handrail.demo import audit_trail, findings, systems
from handrail.demo.contract_renewal import APPROVER
from handrail.demo.findings import NOTICE_TOOL
from handrail.demo.harness import TASK_ID, Paths
from handrail.demo.runner import run_demo
from handrail.journal import Event, EventKind, TaskStatus
from handrail.store.url import open_store


def _run(tmp_path: Path, initiator: str = "test") -> tuple[bool, str]:
    buffer = io.StringIO()
    out = Console(file=buffer, width=250, highlight=False)
    passed = run_demo(out, db=tmp_path / "demo.db", keep=True, initiator=initiator)
    return passed, buffer.getvalue()


def _section(out: str, start: str, end: str) -> str:
    return out[out.index(start) : out.index(end)]


def _timeline_rows(out: str) -> list[list[str]]:
    """The rows of the printed timeline table, each cell's wrapped lines joined."""
    rows: list[list[str]] = []
    for line in _section(out, "8. The task's timeline", "9. What the journal").splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip("│").split("│")]
        if re.match(r"\d\d:\d\d:\d\d\.\d{3}$", cells[0]):
            rows.append(cells)
        elif rows:
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
    return rows


def _events(tmp_path: Path) -> list[Event]:
    store = open_store(str(tmp_path / "demo.db"))
    try:
        return ops.show_task(store, TASK_ID).events
    finally:
        store.close()


def test_the_demo_passes(tmp_path: Path) -> None:
    began = time.monotonic()
    passed, out = _run(tmp_path)
    assert time.monotonic() - began < 15
    assert passed, out
    flat = " ".join(out.split())  # long lines wrap
    assert "verdict: PASS - all" in out
    assert "the low-risk CRM update was auto-approved at its deadline" in flat
    assert f"the irreversible notice waited for {APPROVER}'s approval" in flat
    assert "\n  ! " not in out, "a story reports a problem"
    # the story as it happens: the auto-approval in the first worker, the wait and the
    # named approval after the restart
    assert re.search(
        r"journal: approval \S+ approved by timer:auto_approve_after at [\d:.]+ "
        r"\(its deadline passed\)",
        out,
    )
    assert "send_renewal_notice asks for approval" in out
    assert "task renewal-C-1042 is awaiting_approval; the outbox holds 0 notices" in out
    shown = _section(out, "4. The approver", "5. A worker continues")
    for field in ("expected outcome", "reversibility", "approvers", "digest", "Context summary"):
        assert field in shown
    assert "receives the renewal notice; an e-mail cannot be unsent" in shown
    assert f"handrail --as {APPROVER} approvals approve renewal-C-1042/" in shown
    assert re.search(rf"journal: approval \S+ approved by {APPROVER} at [\d:.]+: 'checked", shown)
    # the timeline: who approved what, and when
    decided = [r for r in _timeline_rows(out) if r[2] == "approval_decided"]
    assert [(r[3], r[6]) for r in decided] == [
        ("5 update_renewal_date", AUTO_APPROVE_TIMER),
        ("9 send_renewal_notice", APPROVER),
    ], decided
    assert "approved by timer:auto_approve_after" in decided[0][7]
    assert f"approved by {APPROVER}: checked the draft" in decided[1][7]
    # the approvals story, read back from the journal
    story = " ".join(_section(out, "approval gates: ", "stale-data conflict").split())
    assert "nobody answered; approved by timer:auto_approve_after at" in story
    assert "not before its deadline" in story
    assert f"approved by {APPROVER} at" in story
    assert "after the decision, and completed" in story
    assert "the outbox holds 1 notice" in story
    # the demo ends by sealing the audit log and verifying it
    sealed = out[out.index("10. The audit log") :]
    assert sealed.index("verified: OK") < sealed.index("verdict: PASS")
    found = re.search(r"sealed: (\d+) records .* the latest signs size (\d+)", sealed)
    assert found, sealed
    assert found.group(1) == found.group(2)
    assert "the sealed audit log, with a record of every tool call, verified" in flat


def test_the_approvals_story_checks_the_journal(tmp_path: Path) -> None:
    passed, out = _run(tmp_path)
    assert passed, out
    events = _events(tmp_path)
    crm = systems.Systems(tmp_path / "demo-systems", log=lambda _: None)
    outcome = findings.Outcome(
        status_after_resume=TaskStatus.AWAITING_APPROVAL, notices_while_waiting=0
    )
    assert findings.approvals(events, crm, outcome, APPROVER).problems == []

    def decisions(tool: str) -> Event:
        return next(
            e for e in events if e.kind is EventKind.APPROVAL_DECIDED and e.step_name == tool
        )

    def problems(old: Event, new: Event, result: findings.Outcome = outcome) -> list[str]:
        changed = [new if e is old else e for e in events]
        return findings.approvals(changed, crm, result, APPROVER).problems

    auto = decisions("update_renewal_date")
    human = decisions("send_renewal_notice")
    early = problems(auto, auto._replace(timestamp=auto.timestamp - 0.25))
    assert any("auto-approved before its deadline" in p for p in early), early
    by_a_timer = problems(human, human._replace(actor=AUTO_APPROVE_TIMER))
    assert any(f"not approved by '{APPROVER}'" in p for p in by_a_timer), by_a_timer
    assert any("the initiator or a machine" in p for p in by_a_timer), by_a_timer
    late = problems(human, human._replace(seq=human.seq + 10_000))
    assert any("came before its approval" in p for p in late), late
    other = problems(human, human._replace(data={**(human.data or {}), "digest": "sha256:0"}))
    assert any("not the request's" in p for p in other), other
    sent_early = findings.Outcome(
        status_after_resume=TaskStatus.AWAITING_APPROVAL, notices_while_waiting=1
    )
    assert problems(human, human, sent_early), "a notice sent before the approval went unseen"


def test_the_audit_story_checks_the_sealed_log(tmp_path: Path) -> None:
    passed, _ = _run(tmp_path)
    assert passed
    events = _events(tmp_path)
    paths = Paths(tmp_path / "demo.db", tmp_path / "demo-systems", tmp_path, False)
    quiet = Console(file=io.StringIO())
    assert audit_trail.seal_and_verify(quiet, paths, events).problems == []
    # a tool call the journal ended without a record
    extra = next(
        e for e in events if e.kind is EventKind.STEP_COMPLETED and e.step_name == NOTICE_TOOL
    )
    story = audit_trail.seal_and_verify(quiet, paths, [*events, extra._replace(seq=10_000)])
    assert any("tool-call records for" in p for p in story.problems), story.problems
    # verified against a key that did not sign the log
    public = Path(f"{audit_trail.key_path(paths)}.pub")
    public.write_text(generate_signing_key(LOG_ORIGIN).public_key.to_vkey() + "\n")
    story = audit_trail.seal_and_verify(quiet, paths, events)
    assert any("SIGNATURE_INVALID" in p for p in story.problems), story.problems


def test_the_initiator_cannot_approve_the_notice(tmp_path: Path) -> None:
    passed, out = _run(tmp_path, initiator=APPROVER)
    assert not passed
    assert "cannot approve its own gated actions" in out
    assert "(send_renewal_notice) has 0 decisions, not 1" in out
    assert "verdict: FAIL" in out


def test_without_the_scripted_faults_the_verdict_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(systems, "SEED_FAULTS", {})
    passed, out = _run(tmp_path)
    assert not passed
    assert "verdict: FAIL" in out
    assert "check_vendor_status never failed" in out
    assert "update_renewal_date never failed" in out


def test_with_the_permission_granted_up_front_the_verdict_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(systems, "AGENT_GRANTS", (*systems.AGENT_GRANTS, "activities:write"))
    passed, out = _run(tmp_path)
    assert not passed
    assert "no open intervention: the task did not wait for a human" in out
    assert "log_crm_activity never failed" in out
    assert "verdict: FAIL" in out
