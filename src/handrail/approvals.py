"""Approval gates: the policy that says which calls need a human, the structured request a
gate asks, and the rules a decision must pass.

A gated call stops before its intent is journaled. The request (every field of the
article's ``ApprovalRequest``, plus the approver set, quorum, times and the digest of the
tool and its canonical parameters) is journaled as an ``approval_requested`` event; each
decision is an ``approval_decided`` event naming who made it, or which timer. Nothing is
rewritten: a task's approvals are a fold over its journal, like everything else.

The rules are checked twice: when a decision is made (:func:`check_decider`), and again
by the engine before the gated call runs (:func:`approval_holds`), against the policy in
force then. A decision that no longer passes does not count: the engine fails closed.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from handrail import serde
from handrail.errors import ConfigurationError, InvalidOperationError

if TYPE_CHECKING:
    from handrail.tools import Tool

APPROVED = "approved"
DENIED = "denied"
TIMEOUT_NO_RESPONSE = "timeout_no_response"
AUTO_APPROVE_TIMER = "timer:auto_approve_after"
AUTO_DENY_TIMER = "timer:auto_deny_after"
MACHINE_PREFIXES = ("timer:", "policy:", "system:", "agent:")
"""Actors that are not people: none of them may approve an irreversible action."""

IRREVERSIBLE = "irreversible"

Requirement = Literal["always", "never", "irreversible"]


@dataclass(frozen=True, slots=True)
class ProposedAction:
    """A call a policy predicate looks at: the tool, its named parameters, its
    reversibility and who started the task."""

    tool: str
    params: Mapping[str, Any]
    reversibility: str
    task_id: str
    initiator: str | None = None

    @property
    def irreversible(self) -> bool:
        return self.reversibility == IRREVERSIBLE


@dataclass(frozen=True)
class ApprovalPolicy:
    """When a call needs a human's approval, whose, and what happens if nobody answers.

    - ``require``: ``"irreversible"`` (the default), ``"always"``, ``"never"``, or a
      predicate ``(ProposedAction) -> bool`` (an amount over a threshold, an external
      recipient). Whatever it says, an irreversible call always needs approval.
    - ``approvers``: the principals who may decide (empty: any authenticated approver);
    - ``quorum``: how many distinct approvers must approve (one denial denies);
    - ``auto_approve_after``: seconds after which a low-risk request approves itself;
      never for an irreversible call (refused at registration, ignored app-wide);
    - ``auto_deny_after``: seconds after which an unanswered request is denied
      (``timeout_no_response``); ``None`` waits for a human without a deadline;
    - ``remind_before``: seconds before the auto-deny deadline at which approvers are
      reminded;
    - ``expected_outcome``: a template over the parameters (the agent can give one too);
    - ``group``: the approver group whose pending requests are capped (default: the
      approver set, or ``"default"``).
    """

    require: Requirement | Callable[[ProposedAction], bool] = "irreversible"
    approvers: tuple[str, ...] = ()
    quorum: int = 1
    auto_approve_after: float | None = None
    auto_deny_after: float | None = 3600.0
    remind_before: float | None = None
    expected_outcome: str | None = None
    group: str | None = None

    def __post_init__(self) -> None:
        if not callable(self.require) and self.require not in ("always", "never", "irreversible"):
            raise ConfigurationError(
                f"approval require={self.require!r}: use 'always', 'never', 'irreversible' "
                "or a predicate (ProposedAction) -> bool"
            )
        object.__setattr__(self, "approvers", tuple(self.approvers))
        if self.quorum < 1:
            raise ConfigurationError("approval quorum must be at least 1")
        if self.approvers and self.quorum > len(self.approvers):
            raise ConfigurationError(
                f"approval quorum {self.quorum} is more than the {len(self.approvers)} "
                "approvers named; no request could ever be approved"
            )
        for name in ("auto_approve_after", "auto_deny_after", "remind_before"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigurationError(f"approval {name} must be > 0 seconds (or None)")

    @property
    def group_name(self) -> str:
        return self.group or (",".join(sorted(self.approvers)) or "default")

    def requires(self, action: ProposedAction) -> bool:
        """Whether ``action`` must wait for approval. Irreversible actions always do."""
        if action.irreversible:
            return True
        if self.require == "always":
            return True
        if self.require in ("never", "irreversible"):
            return False
        return bool(self.require(action))  # type: ignore[operator]

    def auto_approve_for(self, reversibility: str) -> float | None:
        """The auto-approve delay that applies: never for an irreversible action."""
        return None if reversibility == IRREVERSIBLE else self.auto_approve_after


def coerce_policy(
    value: ApprovalPolicy | str | Callable[..., bool] | None,
) -> ApprovalPolicy | None:
    """A tool's ``approval=`` argument as a policy (``None``: use the app's)."""
    if value is None or isinstance(value, ApprovalPolicy):
        return value
    if isinstance(value, str) or callable(value):
        return ApprovalPolicy(require=value)  # type: ignore[arg-type]
    raise ConfigurationError(
        f"approval={value!r}: pass an ApprovalPolicy, 'always', 'never', 'irreversible' or a "
        "predicate"
    )


def check_tool_policy(tool_name: str, reversibility: str, policy: ApprovalPolicy | None) -> None:
    """Refuse, at registration, a tool policy that would auto-approve an irreversible call."""
    if policy is not None and reversibility == IRREVERSIBLE and policy.auto_approve_after:
        raise ConfigurationError(
            f"tool {tool_name!r} is irreversible and its approval policy sets "
            "auto_approve_after: irreversible actions are never auto-approved; remove it "
            "(auto_deny_after still applies)"
        )


_SIGNATURES: dict[Any, tuple[inspect.Signature, tuple[str, ...] | None]] = {}


def _signature(fn: Callable[..., Any]) -> tuple[inspect.Signature, tuple[str, ...] | None]:
    """The function's signature, and its parameter names when every one is a plain
    positional-or-keyword one without a default (calls bind by zipping)."""
    found = _SIGNATURES.get(fn)
    if found is None:
        signature = inspect.signature(fn)
        plain = all(
            p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and p.default is p.empty
            for p in signature.parameters.values()
        )
        names = tuple(signature.parameters) if plain else None
        found = _SIGNATURES[fn] = (signature, names)
    return found


def named_params(
    tool: Tool, args: tuple[Any, ...], kwargs: Mapping[str, Any], *, as_json: bool = True
) -> dict[str, Any]:
    """The call's parameters by name (defaults filled in), as the approver sees them;
    with ``as_json`` as the journal would give them back (tuples as lists...)."""
    signature, names = _signature(tool.fn)
    if names is not None and not kwargs and len(args) == len(names) and not as_json:
        return dict(zip(names, args, strict=True))
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return {"args": list(args), "kwargs": dict(kwargs)}
    bound.apply_defaults()
    params: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            params.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            params[name] = list(value)
        elif name != "idempotency_key":
            params[name] = value
    if not as_json:
        return params
    return serde.loads(serde.dumps(params, what="input", step=tool.name))  # type: ignore[no-any-return]


def digest(tool: str, params: Mapping[str, Any]) -> str:
    """What an approval binds to: SHA-256 over the tool name and its canonical parameters."""
    text = tool + "\x00" + serde.canonical(dict(params))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def render(template: str | None, params: Mapping[str, Any]) -> str | None:
    """A ``{param}`` template filled from the parameters (left as is if it does not fit)."""
    if template is None:
        return None
    try:
        return template.format(**params)
    except (KeyError, IndexError, TypeError, ValueError):
        return template


@dataclass(frozen=True)
class ApprovalRequest:
    """The structured question a gate asks: every field of the reference design, plus the
    approver set, quorum, times and the digest the approval binds to."""

    request_id: str
    task_id: str
    requesting_agent: str
    proposed_action: str
    action_parameters: dict[str, Any]
    agent_reasoning: str
    expected_outcome: str
    reversibility: str
    auto_approve_after: float | None
    auto_deny_after: float | None
    context_summary: str
    approvers: tuple[str, ...]
    quorum: int
    group: str
    tool: str
    step_index: int
    digest: str
    created_at: float
    expires_at: float | None
    initiator: str | None = None
    remind_at: float | None = None
    supersedes: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["approvers"] = list(self.approvers)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ApprovalRequest:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        values["approvers"] = tuple(values.get("approvers") or ())
        return cls(**values)

    @property
    def deadline_action(self) -> str | None:
        """What the timer does at :attr:`expires_at`: approve, deny, or nothing."""
        if self.expires_at is None:
            return None
        approve = self.auto_approve_after
        if approve is not None and self.reversibility != IRREVERSIBLE:
            return (
                APPROVED
                if self.auto_deny_after is None or approve <= self.auto_deny_after
                else DENIED
            )
        return DENIED


@dataclass(frozen=True)
class Decision:
    """One approver's (or one timer's) answer to a request."""

    request_id: str
    decision: str
    by: str
    at: float
    digest: str
    comment: str | None = None
    reason: str | None = None
    edited_parameters: dict[str, Any] | None = None
    edited_digest: str | None = None

    @property
    def approved(self) -> bool:
        return self.decision == APPROVED

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


ApprovalStatus = Literal["pending", "approved", "denied", "superseded"]


@dataclass
class Approval:
    """A request and the decisions made on it so far, as folded from the journal."""

    request: ApprovalRequest
    decisions: list[Decision] = field(default_factory=list)
    superseded_by: str | None = None
    reminded_at: float | None = None

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def task_id(self) -> str:
        return self.request.task_id

    @property
    def status(self) -> ApprovalStatus:
        if self.superseded_by is not None:
            return "superseded"
        if any(d.decision == DENIED for d in self.decisions):
            return "denied"
        if len(self.approvers_approving()) >= self.request.quorum:
            return "approved"
        return "pending"

    @property
    def open(self) -> bool:
        return self.status == "pending"

    def approvers_approving(self) -> list[str]:
        seen: list[str] = []
        for d in self.decisions:
            if d.approved and d.by not in seen:
                seen.append(d.by)
        return seen

    @property
    def denial(self) -> Decision | None:
        return next((d for d in self.decisions if d.decision == DENIED), None)

    @property
    def edited(self) -> Decision | None:
        """The last approval that edited the parameters, if any."""
        return next((d for d in reversed(self.decisions) if d.edited_parameters is not None), None)


def is_machine(actor: str) -> bool:
    return actor.startswith(MACHINE_PREFIXES)


def check_decider(
    approval: Approval,
    *,
    by: str,
    decision: str,
    now: float,
    digest_seen: str | None,
) -> None:
    """Refuse a decision that breaks a rule, with a message that says which and what to do."""
    request = approval.request
    rid = request.request_id
    if decision not in (APPROVED, DENIED):
        raise InvalidOperationError(f"decision {decision!r}: use 'approved' or 'denied'")
    if not approval.open:
        raise InvalidOperationError(
            f"approval {rid} is {approval.status} already; a decided request cannot be "
            "decided again",
            task_id=request.task_id,
        )
    if request.expires_at is not None and now >= request.expires_at and not by.startswith("timer:"):
        raise InvalidOperationError(
            f"approval {rid} expired at {request.expires_at:.3f}; its deadline decides it "
            f"({request.deadline_action or 'denied'}). Ask the agent to request again.",
            task_id=request.task_id,
        )
    if digest_seen is not None and digest_seen != request.digest:
        raise InvalidOperationError(
            f"approval {rid} is for action digest {request.digest}, not {digest_seen}: the "
            "action changed since you looked at it; show the request again and decide on "
            "what it says now",
            task_id=request.task_id,
        )
    if decision == DENIED:
        return
    if by == request.initiator:
        raise InvalidOperationError(
            f"{by} started task {request.task_id} and cannot approve its own gated actions "
            "(separation of duties); another approver must decide",
            task_id=request.task_id,
        )
    if by == request.requesting_agent or by == f"agent:{request.requesting_agent}":
        raise InvalidOperationError(
            f"{by} is the agent that asked; an agent cannot approve its own request",
            task_id=request.task_id,
        )
    if request.reversibility == IRREVERSIBLE and is_machine(by):
        raise InvalidOperationError(
            f"approval {rid} is for an irreversible action; only a named human approver can "
            f"approve it, not {by}",
            task_id=request.task_id,
        )
    if by.startswith("timer:") and by != AUTO_APPROVE_TIMER:
        raise InvalidOperationError(f"{by} cannot approve")
    if request.approvers and by not in request.approvers and not by.startswith("timer:"):
        raise InvalidOperationError(
            f"{by} is not an approver of {rid} (approvers: {', '.join(request.approvers)})",
            task_id=request.task_id,
        )
    if by in approval.approvers_approving():
        raise InvalidOperationError(
            f"{by} approved {rid} already; the quorum of {request.quorum} needs other approvers",
            task_id=request.task_id,
        )


def approval_holds(
    approval: Approval, *, policy: ApprovalPolicy, current_digest: str, initiator: str | None
) -> str | None:
    """Re-check an approved request before its call runs, against the policy in force now.

    Returns ``None`` if the approval holds, else why it does not (the engine then fails
    closed: the call does not run, and a new request is made)."""
    request = approval.request
    if current_digest != request.digest:
        return "the action's parameters changed since the request was made"
    valid: list[str] = []
    for d in approval.decisions:
        if not d.approved or d.by in valid:
            continue
        if d.by.startswith("timer:"):
            if (
                request.reversibility == IRREVERSIBLE
                or policy.auto_approve_for(request.reversibility) is None
            ):
                return f"{d.by} approved, but the policy in force allows no auto-approval"
            return None
        if d.by == initiator or d.by == request.requesting_agent or is_machine(d.by):
            return f"{d.by} may not approve this action"
        if policy.approvers and d.by not in policy.approvers:
            return f"{d.by} is not in the policy's approver set any more"
        if d.digest != request.digest:
            return f"{d.by} approved a different action digest"
        valid.append(d.by)
    if len(valid) < policy.quorum:
        return f"{len(valid)} valid approval(s); the policy in force needs {policy.quorum}"
    return None
