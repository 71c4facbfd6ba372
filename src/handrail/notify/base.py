"""What a notifier is told: a :class:`Notification`, the :class:`Notifier` protocol that
delivers batches of them, and :func:`fields_of`, the one labelled view of an approval
request that every format (JSON aside) renders."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from handrail.approvals import APPROVED, DENIED

if TYPE_CHECKING:
    from handrail.approvals import ApprovalRequest

NotificationKind = Literal[
    "approval_requested", "approval_reminder", "approval_queue_full", "approval_decided", "alert"
]

APPROVAL_REQUESTED: Final = "approval_requested"
APPROVAL_REMINDER: Final = "approval_reminder"
APPROVAL_QUEUE_FULL: Final = "approval_queue_full"
APPROVAL_DECIDED: Final = "approval_decided"
ALERT: Final = "alert"

FIELD_LABELS: Final[dict[str, str]] = {
    "request_id": "Request",
    "proposed_action": "Proposed action",
    "action_parameters": "Parameters",
    "agent_reasoning": "Agent's reasoning",
    "expected_outcome": "Expected outcome",
    "reversibility": "Reversibility",
    "context_summary": "Context",
    "requesting_agent": "Requesting agent",
    "initiator": "Initiator",
    "task_id": "Task",
    "tool": "Tool",
    "step_index": "Step",
    "approvers": "Approvers",
    "quorum": "Quorum",
    "group": "Approver group",
    "created_at": "Requested at",
    "expires_at": "Deadline",
    "remind_at": "Reminder at",
    "auto_approve_after": "Auto-approve after",
    "auto_deny_after": "Auto-deny after",
    "supersedes": "Supersedes",
    "digest": "Digest",
}
"""Display labels of the request fields, in display order. A field missing here is still
shown, after these, labelled from its name."""


def _one_line(text: str) -> str:
    # Titles end up in e-mail subjects and Slack headers: no line breaks.
    return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True)
class Notification:
    """One thing to tell approvers or the operator: its kind, a one-line title, the approval
    requests it is about and free facts (``details``: group, cap, queued count, ...)."""

    kind: NotificationKind
    title: str
    requests: tuple[ApprovalRequest, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)

    @classmethod
    def requested(cls, request: ApprovalRequest, *, now: float | None = None) -> Notification:
        """A new request waits for a decision."""
        return cls(
            kind=APPROVAL_REQUESTED,
            title=_one_line(f"Approval needed: {request.proposed_action}"),
            requests=(request,),
            details={"group": request.group, "task_id": request.task_id},
            created_at=time.time() if now is None else now,
        )

    @classmethod
    def reminder(cls, request: ApprovalRequest, *, now: float | None = None) -> Notification:
        """A request is still undecided and its deadline (usually auto-deny) is near."""
        return cls(
            kind=APPROVAL_REMINDER,
            title=_one_line(f"Reminder: approval needed: {request.proposed_action}"),
            requests=(request,),
            details={
                "group": request.group,
                "task_id": request.task_id,
                "expires_at": request.expires_at,
                "deadline_action": request.deadline_action,
            },
            created_at=time.time() if now is None else now,
        )

    @classmethod
    def queue_full(
        cls, group: str, cap: int, queued: int, *, now: float | None = None
    ) -> Notification:
        """An approver group has reached its cap of pending requests (for the operator)."""
        return cls(
            kind=APPROVAL_QUEUE_FULL,
            title=_one_line(f"Approval queue full for group {group}"),
            details={"group": group, "cap": cap, "queued": queued},
            created_at=time.time() if now is None else now,
        )

    def to_dict(self) -> dict[str, Any]:
        """The notification as JSON-ready data, requests as :meth:`ApprovalRequest.to_dict`."""
        return {
            "kind": self.kind,
            "title": self.title,
            "requests": [request.to_dict() for request in self.requests],
            "details": dict(self.details),
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notification:
        """The inverse of :meth:`to_dict`."""
        from handrail.approvals import ApprovalRequest

        return cls(
            kind=data["kind"],
            title=data["title"],
            requests=tuple(ApprovalRequest.from_dict(r) for r in data.get("requests", ())),
            details=dict(data.get("details") or {}),
            created_at=float(data["created_at"]),
        )


class Notifier(Protocol):
    """Delivers a batch of notifications somewhere; ``send`` raises if it could not."""

    name: str

    def send(self, batch: Sequence[Notification]) -> None: ...


_PLURAL: Final[dict[str, str]] = {
    APPROVAL_REQUESTED: "{n} approvals need a decision",
    APPROVAL_REMINDER: "Reminder: {n} approvals need a decision",
    APPROVAL_QUEUE_FULL: "{n} approval queues are full",
    APPROVAL_DECIDED: "{n} approvals decided",
    ALERT: "{n} alerts",
}


def batch_title(batch: Sequence[Notification]) -> str:
    """One line summing up a batch: the title of a lone notification, counts otherwise."""
    by_kind: dict[str, list[Notification]] = {}
    for notification in batch:
        by_kind.setdefault(notification.kind, []).append(notification)
    parts = []
    for kind, group in by_kind.items():
        if len(group) == 1:
            parts.append(group[0].title)
        else:
            parts.append(_PLURAL.get(kind, "{n} " + kind + " notifications").format(n=len(group)))
    return "; ".join(parts) or "No notifications"


def compact_json(value: Any) -> str:
    """``value`` as one line of JSON, keys sorted (anything JSON cannot carry as ``str``)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def iso_utc(timestamp: float) -> str:
    """Epoch seconds as an ISO 8601 UTC time to the second, e.g. ``2025-01-31T09:30:00Z``."""
    moment = datetime.fromtimestamp(timestamp, UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def relative(timestamp: float, now: float) -> str:
    """How far ``timestamp`` is from ``now``, in whole minutes: "in 5 min", "3 min ago"."""
    delta = timestamp - now
    minutes = int(abs(delta) // 60)
    if minutes == 0:
        return "in under 1 min" if delta >= 0 else "under 1 min ago"
    return f"in {minutes} min" if delta >= 0 else f"{minutes} min ago"


def _moment(timestamp: float | None, now: float, *, none: str) -> str:
    if timestamp is None:
        return none
    return f"{iso_utc(timestamp)} ({relative(timestamp, now)})"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 60:
        return f"{seconds:g} s"
    return f"{seconds / 60:g} min"


_DEADLINE_VERB: Final[dict[str, str]] = {APPROVED: "approve", DENIED: "deny"}


def _display(request: ApprovalRequest, name: str, now: float) -> str:
    value = getattr(request, name)
    if name == "action_parameters":
        return compact_json(value)
    if name == "approvers":
        return ", ".join(value) or "any approver"
    if name == "quorum":
        return f"{value} of {len(request.approvers)}" if request.approvers else str(value)
    if name == "created_at":
        return _moment(value, now, none="unknown")
    if name == "expires_at":
        text = _moment(value, now, none="none (waits for a decision)")
        action = _DEADLINE_VERB.get(request.deadline_action or "")
        return f"{text}, then auto-{action}" if action else text
    if name == "remind_at":
        return _moment(value, now, none="none")
    if name in ("auto_approve_after", "auto_deny_after"):
        return _duration(value)
    if value is None or value == "":
        return "-"
    return value if isinstance(value, str) else compact_json(value)


def fields_of(request: ApprovalRequest, *, now: float | None = None) -> list[tuple[str, str]]:
    """Every field of ``request`` as ``(label, display string)``, in :data:`FIELD_LABELS`
    order: times as ISO UTC plus "in N min", durations in minutes, parameters as compact
    JSON."""
    now = time.time() if now is None else now
    names = [f.name for f in dataclasses.fields(request)]
    ordered = [n for n in FIELD_LABELS if n in names] + [n for n in names if n not in FIELD_LABELS]
    return [
        (FIELD_LABELS.get(name, name.replace("_", " ").capitalize()), _display(request, name, now))
        for name in ordered
    ]


def decide_hint(request: ApprovalRequest) -> str:
    """The command an approver runs to decide ``request``."""
    return f"handrail approvals approve {request.request_id}"
