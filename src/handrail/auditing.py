"""The engine's side of the audit log: the records its tool calls and operators' actions
leave, drafted before the transaction that journals them and written in it.

A tool-call attempt's record rides with the journal event that ends the attempt
(``step_completed`` or ``step_failed``): no record without its step, no step without its
record. Approvals, interventions, halts and erasures leave records of their own kinds.
The engine writes drafts (:class:`~handrail.audit.record.AuditDraft`): the redacted
compliance view, final, and the raw payloads, which the store seals (AES-GCM, under the
task's key or the data subject's) before they reach the audit log; see
:mod:`handrail.audit.record`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from handrail import serde

if TYPE_CHECKING:
    from handrail.audit.record import AuditDraft
    from handrail.journal import Event, TaskState
    from handrail.tools import Tool


class Auditor:
    """Drafts audit records; the store writes them into its audit log. Drafting needs
    neither the log nor its keys, so an Auditor opens nothing. Records are redacted with
    the default :class:`~handrail.audit.redact.Redactor`."""

    def __init__(self) -> None:
        from handrail.audit.payloads import subject_key_id
        from handrail.audit.record import FactsEncoder, tool_call_facts

        self._facts = FactsEncoder()
        self._draft = tool_call_facts
        self._subject_key_id = subject_key_id

    def authorized_by(self, state: TaskState, index: int) -> tuple[str, str | None]:
        """Who authorized step ``index``: its approvers (or the timer), else the task's
        initiator, else the policy that let it through. And the approval's id, if any."""
        approval = state.approval_for_step(index)
        if approval is not None and approval.status == "approved":
            return ", ".join(approval.approvers_approving()), approval.request_id
        if state.initiator:
            return state.initiator, None
        return "policy: no approval required", None

    def tool_call(
        self,
        *,
        state: TaskState,
        agent: str,
        tool: Tool,
        index: int,
        attempt: int,
        params: Mapping[str, Any],
        started_at: float,
        duration_ms: float,
        logged_at: float,
        output_json: str | None = None,
        error: Mapping[str, Any] | None = None,
        failure_class: str | None = None,
    ) -> AuditDraft:
        """The draft of one attempt: its facts and raw payloads, the compliance view built
        when the store seals it (:func:`~handrail.audit.record.tool_call_facts`)."""
        authorized_by, approval = self.authorized_by(state, index)
        key_id = None
        if tool.data_subject is not None and params.get(tool.data_subject) is not None:
            key_id = self._subject_key_id(str(params[tool.data_subject]))
        facts = self._facts.encode(
            tool_name=tool.name,
            describe=tool.describe,
            data_accessed=tool.data_accessed,
            data_modified=tool.data_modified,
            agent_id=agent,
            authorized_by=authorized_by,
            approval=approval,
            started_at=started_at,
            duration_ms=duration_ms,
            logged_at=logged_at,
            step_index=index,
            attempt=attempt,
            failure_class=failure_class,
        )
        return self._draft(
            call_id=f"{state.task_id}:{index}:{attempt}",
            task_id=state.task_id,
            params_json=serde.dumps(dict(params), what="audit raw_input"),
            output_json=output_json,
            error=error,
            failure_class=failure_class,
            key_id=key_id,
            logged_at=logged_at,
            facts_json=facts,
        )

    def action(
        self,
        kind: str,
        *,
        call_id: str,
        task_id: str | None,
        actor: str | None,
        timestamp: float,
        details: Mapping[str, Any] | None = None,
    ) -> AuditDraft:
        """The record of a human's (or a timer's) action: an approval requested or decided,
        an intervention, a halt, an erasure."""
        from handrail.audit.record import draft_audit_record

        return draft_audit_record(
            kind,
            call_id=call_id,
            task_id=task_id,
            actor=actor,
            timestamp=timestamp,
            logged_at=timestamp,
            details=details,
        )


_AUDITED_EVENTS = {
    "approval_requested": "approval_requested",
    "approval_decided": "approval_decided",
    "intervention_raised": "intervention_raised",
    "intervention_resolved": "intervention_resolved",
    "task_halted": "halt",
    "task_released": "release",
    "cancel_requested": "cancel",
}


def event_rows(auditor: Auditor | None, events: Sequence[Event]) -> list[AuditDraft]:
    """The audit records of the human (and timer) actions among ``events``: approvals
    requested and decided, interventions raised and resolved, halts, releases, cancels."""
    if auditor is None:
        return []
    rows: list[AuditDraft] = []
    for event in events:
        kind = _AUDITED_EVENTS.get(event.kind.value)
        if kind is None:
            continue
        data = dict(event.data or {})
        details: dict[str, Any] = {"event": event.kind.value, "seq": event.seq}
        if event.step_index is not None:
            details["step_index"] = event.step_index
            details["tool"] = event.step_name
        for name in _DETAIL_FIELDS:
            if data.get(name) is not None:
                details[name] = data[name]
        actor = event.actor
        if event.kind.value == "approval_requested":
            actor = data.get("requesting_agent")
        rows.append(
            auditor.action(
                kind,
                call_id=f"{event.task_id}:event:{event.seq}",
                task_id=event.task_id,
                actor=actor,
                timestamp=event.timestamp,
                details=details,
            )
        )
    return rows


_DETAIL_FIELDS = (
    "request_id",
    "proposed_action",
    "reversibility",
    "approvers",
    "quorum",
    "digest",
    "expires_at",
    "decision",
    "reason",
    "comment",
    "edited_digest",
    "intervention_id",
    "kind",
    "action",
    "halt_id",
    "halt_ids",
    "scope",
    "target",
)
