"""Audit records: what one tool call (or approval, intervention, halt, erasure, retention
run) leaves in the audit log, and the two views of it.

A record is first an :class:`AuditDraft`, which the step's transaction writes: its
compliance part final, its raw payloads not encrypted yet. Sealing it (:func:`seal_draft`,
which may need to create the data key, a write of its own) makes the :class:`AuditRow` the
audit log stores, of three parts:

compliance
    plain-language JSON for auditors: who did what to which data, on whose authority,
    with what outcome. Everything copied into it from the call goes through a
    :class:`~handrail.audit.redact.Redactor` (the ``describe`` template is filled with the
    *redacted* parameters, so field rules apply to it too).
technical
    the raw input, output and error, each sealed with AES-GCM under the task's data key
    (``task:<id>``, or a per-subject key) by a :class:`~handrail.audit.payloads.PayloadVault`.
    Destroying that key erases them.
leaf body
    the compliance fields plus a salted commitment to each raw payload, never raw data. It
    becomes the Merkle leaf (:func:`handrail.audit.leaf.encode_leaf`) once the sequencer
    gives the record its index, so erasing the payloads leaves every proof intact.

Times in the JSON are ISO 8601 UTC strings with microseconds and durations are integer
microseconds (``duration_us``): integers and strings hash the same in every language.
:func:`compliance_view` and :func:`technical_view` read a stored record back; the
technical view reports an erased payload as erased, with its tombstone, not as an error.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import functools
import json
import math
import operator
import time
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any, Protocol

from handrail import serde
from handrail.audit.leaf import canonical_json
from handrail.audit.merkle import leaf_hash as _leaf_hash
from handrail.audit.payloads import (
    PayloadErased,
    PayloadError,
    PayloadTampered,
    PayloadVault,
    Tombstone,
    envelope_key_id,
    task_key_id,
    verify_commitment,
)
from handrail.audit.redact import Redactor

__all__ = [
    "PAYLOAD_FIELDS",
    "AuditDraft",
    "AuditEntry",
    "AuditRow",
    "ErasedPayload",
    "FactsEncoder",
    "Outcome",
    "RecordKind",
    "StoredRecord",
    "ToolCallRecord",
    "audit_entry",
    "build_audit_record",
    "build_tool_call_record",
    "compliance_view",
    "draft_audit_record",
    "draft_tool_call",
    "from_iso",
    "leaf_bytes",
    "seal_draft",
    "seal_drafts",
    "stored_leaf_hash",
    "technical_document",
    "technical_view",
    "to_iso",
    "tool_call_facts",
    "tool_call_record",
]

PAYLOAD_FIELDS: tuple[str, ...] = ("raw_input", "raw_output", "error")
"""The raw payloads a record may carry, sealed in the technical part."""

_DEFAULT_REDACTOR = Redactor()


class RecordKind(StrEnum):
    """What an audit record is about."""

    TOOL_CALL = "tool_call"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_DECIDED = "approval_decided"
    INTERVENTION_RAISED = "intervention_raised"
    INTERVENTION_RESOLVED = "intervention_resolved"
    HALT = "halt"
    RELEASE = "release"
    ERASURE = "erasure"
    RETENTION_RUN = "retention_run"


class Outcome(StrEnum):
    """How a tool call ended."""

    SUCCESS = "success"
    FAILURE = "failure"
    PARTIAL = "partial"


_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def to_iso(seconds: float) -> str:
    """Seconds since the epoch as ``2025-01-31T12:00:00.000000Z``."""
    global _last_second
    whole = math.floor(seconds)
    micros = round((seconds - whole) * 1_000_000)
    if micros == 1_000_000:
        whole, micros = whole + 1, 0
    cached_second, prefix = _last_second  # one tuple: safe to read from any thread
    if cached_second != whole:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _last_second = (whole, prefix)
    return f"{prefix}.{micros:06d}Z"


def from_iso(text: str) -> float:
    """The inverse of :func:`to_iso`."""
    return _dt.datetime.fromisoformat(text).timestamp()


# --- rows ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class AuditRow:
    """A record ready to insert: the columns of ``handrail_audit_records`` but its id.

    ``call_id`` is unique in the log (inserting it again does nothing); ``leaf_body`` is
    the canonical JSON that becomes the Merkle leaf's ``record``.
    """

    call_id: str
    task_id: str | None
    kind: str
    created_at: float
    compliance_json: str
    technical_json: str | None
    leaf_body: str


@dataclasses.dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record read back from the log. ``leaf_index`` and ``leaf_hash`` are ``None``
    until the sequencer has integrated it."""

    record_id: int
    call_id: str
    task_id: str | None
    kind: str
    created_at: float
    compliance_json: str
    technical_json: str | None
    leaf_body: str
    leaf_index: int | None = None
    leaf_hash: bytes | None = None

    def leaf(self) -> bytes | None:
        """The canonical leaf bytes, once sequenced."""
        return None if self.leaf_index is None else leaf_bytes(self.leaf_body, self.leaf_index)


class _Row(Protocol):
    @property
    def call_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def compliance_json(self) -> str: ...
    @property
    def technical_json(self) -> str | None: ...
    @property
    def leaf_body(self) -> str: ...


def leaf_bytes(leaf_body: str, leaf_index: int) -> bytes:
    """The canonical leaf of a record at ``leaf_index``: exactly
    ``encode_leaf(leaf_index, json.loads(leaf_body))``, without parsing the body (the
    body is canonical JSON and ``"record"`` sorts before ``"seq"``)."""
    if leaf_index < 0:
        raise ValueError(f"a leaf index is not negative: {leaf_index}")
    return b'{"record":' + leaf_body.encode("utf-8") + b',"seq":%d}' % leaf_index


def stored_leaf_hash(leaf_body: str, leaf_index: int) -> bytes:
    """The RFC 6962 leaf hash of a record at ``leaf_index``."""
    return _leaf_hash(leaf_bytes(leaf_body, leaf_index))


# --- building -----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """``value`` as plain JSON data (handrail's tagged types become their tagged dicts)."""
    return json.loads(serde.dumps(value, what="audit value"))


def _aad(call_id: str, field: str) -> bytes:
    return f"handrail.audit:{call_id}:{field}".encode()


def _error_dict(
    error: BaseException | Mapping[str, Any], failure_class: str | None
) -> dict[str, Any]:
    if isinstance(error, BaseException):
        kind = type(error)
        found: dict[str, Any] = {"type": f"{kind.__module__}.{kind.__qualname__}"}
        found["message"] = str(error)
    else:
        found = dict(error)
    if failure_class is not None:
        found.setdefault("failure_class", failure_class)
    return found


def _describe(template: str | None, tool_name: str, params: Mapping[str, Any]) -> str:
    if template is None:
        return f"Called {tool_name}"
    try:
        return template.format(**params)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return template


def _seal(
    vault: PayloadVault | None,
    key_id: str,
    call_id: str,
    payloads: Mapping[str, str | None],
    key: Any = None,
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """(technical part, commitments) for the payloads (JSON texts) that are not ``None``,
    sealed under ``key`` if given (its bytes or cipher; a :class:`Tombstone`: the key was
    destroyed), else the vault's key ``key_id``."""
    present = {name: text for name, text in payloads.items() if text is not None}
    if vault is None or not present:
        return None, {}
    technical: dict[str, Any] = {"key_id": key_id}
    commitments: dict[str, str] = {}
    try:
        if isinstance(key, Tombstone):
            raise PayloadErased(key_id, key)
        values = [(text.encode("utf-8"), _aad(call_id, name)) for name, text in present.items()]
        sealed_all = vault.seal_committed_all(key_id, values, key=key)
        for name, sealed in zip(present, sealed_all, strict=True):
            technical[name] = base64.b64encode(sealed.envelope).decode("ascii")
            commitments[name] = sealed.commitment
    except PayloadErased as exc:
        # The task (or subject) was erased already: write nothing raw for it, ever.
        tomb = exc.tombstone
        return {
            "key_id": key_id,
            "withheld": "the data key was destroyed before this record was sealed",
            "destroyed_at": None if tomb is None else tomb.destroyed_at,
        }, {}
    return technical, commitments


@dataclasses.dataclass(frozen=True, slots=True)
class AuditDraft:
    """A record as the step's transaction writes it: the compliance view final (redacted,
    canonical JSON) and the raw payloads as JSON text, not sealed yet.

    Sealing (:func:`seal_draft`: AES-GCM under the data key, salted commitments, the leaf
    body) needs the key store and costs most of a record's CPU, so the SQL stores keep
    the draft and seal it later, off the step's path (before any read of the log, and in
    every sequencer round); the in-memory store seals it at once. Either way the draft
    commits with its step: no record without its step, no step without its record.
    """

    call_id: str
    task_id: str | None
    kind: str
    created_at: float
    compliance_json: str
    key_id: str | None = None
    raw_input: str | None = None
    raw_output: str | None = None
    error: str | None = None
    facts: str | None = None
    """A tool call's facts as JSON (see :func:`tool_call_facts`), when the compliance view
    is still to be built (``compliance_json`` is then empty)."""


DRAFT_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(AuditDraft))
"""The columns of ``handrail_audit_drafts`` after its id, in the order of
:class:`AuditDraft`'s fields (``AuditDraft(*row)`` reads a row back)."""

draft_values: Callable[[AuditDraft], tuple[Any, ...]] = operator.attrgetter(*DRAFT_COLUMNS)
"""A draft's values in :data:`DRAFT_COLUMNS` order, for an insert."""


def _has_payloads(draft: AuditDraft) -> bool:
    return draft.raw_input is not None or draft.raw_output is not None or draft.error is not None


def _key_id(draft: AuditDraft) -> str:
    return draft.key_id or task_key_id(draft.task_id or "")


def seal_draft(draft: AuditDraft, vault: PayloadVault | None, key: Any = None) -> AuditRow:
    """The row of ``draft``: its raw payloads sealed with ``vault`` (none kept without one)
    under its key (default the task's; ``key``, if given, is that key, its cipher or its
    tombstone), and the leaf body with their commitments."""
    compliance: dict[str, Any] | None = None
    if draft.facts is not None and draft.task_id is not None:
        compliance = _facts_compliance(draft)
        compliance_json = canonical_json(compliance).decode("utf-8")
    else:  # a finished draft: its compliance view is final text
        compliance_json = draft.compliance_json
    technical: dict[str, Any] | None = None
    commitments: dict[str, str] = {}
    if _has_payloads(draft):
        payloads = {
            "raw_input": draft.raw_input,
            "raw_output": draft.raw_output,
            "error": draft.error,
        }
        technical, commitments = _seal(vault, _key_id(draft), draft.call_id, payloads, key)
    leaf_body = compliance_json
    if commitments:
        body = json.loads(compliance_json) if compliance is None else compliance
        leaf_body = canonical_json({**body, "commitments": commitments}).decode("utf-8")
    return AuditRow(
        call_id=draft.call_id,
        task_id=draft.task_id,
        kind=draft.kind,
        created_at=draft.created_at,
        compliance_json=compliance_json,
        technical_json=None if technical is None else canonical_json(technical).decode("utf-8"),
        leaf_body=leaf_body,
    )


def seal_drafts(drafts: Sequence[AuditDraft], vault: PayloadVault | None) -> list[AuditRow]:
    """:func:`seal_draft` for each of ``drafts``, reading (or making) each data key once."""
    if vault is None:
        return [seal_draft(draft, None) for draft in drafts]
    keys: dict[str, Any] = vault.keys_for({_key_id(d) for d in drafts if _has_payloads(d)})
    for key_id, key in keys.items():
        if isinstance(key, bytes):
            keys[key_id] = vault.cipher(key)  # one cipher per key for the whole batch
    return [
        seal_draft(d, vault, keys.get(_key_id(d)) if _has_payloads(d) else None) for d in drafts
    ]


def _payload(value: Any, name: str) -> str | None:
    return None if value is None else serde.dumps(value, what=f"audit {name}")


def draft_tool_call(
    *,
    call_id: str,
    task_id: str,
    tool_name: str,
    params: Mapping[str, Any],
    started_at: float,
    duration_ms: float,
    logged_at: float,
    output: Any = None,
    output_json: str | None = None,
    input_json: str | None = None,
    error: BaseException | Mapping[str, Any] | None = None,
    error_json: str | None = None,
    failure_class: str | None = None,
    outcome: Outcome | str | None = None,
    describe: str | None = None,
    data_accessed: Sequence[str] = (),
    data_modified: Sequence[str] = (),
    agent_id: str | None = None,
    authorized_by: str | None = None,
    approval: str | None = None,
    step_index: int | None = None,
    attempt: int | None = None,
    redactor: Redactor | None = None,
    key_id: str | None = None,
) -> AuditDraft:
    """The draft for one tool-call attempt (see :class:`AuditDraft`).

    ``params`` are the call's named parameters (they fill the ``describe`` template, after
    redaction, and are the raw input; ``input_json``, if given, is their JSON text);
    ``output`` (or its JSON text, ``output_json``) or ``error`` (with, if given, the JSON
    text of its raw payload, ``error_json``) its result. ``outcome`` defaults to failure
    when there is an error, success otherwise. Raw payloads are sealed under ``key_id``
    (default ``task:<task_id>``). ``call_id`` must be unique per attempt, e.g.
    ``f"{task_id}:{step_index}:{attempt}"``.
    """
    if outcome is None:
        outcome = Outcome.FAILURE if error is not None else Outcome.SUCCESS
    error_info = None if error is None else _error_dict(error, failure_class)
    compliance = _tool_call_compliance(
        call_id=call_id,
        task_id=task_id,
        tool_name=tool_name,
        params=params,
        started_at=started_at,
        duration_ms=duration_ms,
        logged_at=logged_at,
        error_info=error_info,
        failure_class=failure_class,
        outcome=outcome,
        describe=describe,
        data_accessed=data_accessed,
        data_modified=data_modified,
        agent_id=agent_id,
        authorized_by=authorized_by,
        approval=approval,
        step_index=step_index,
        attempt=attempt,
        redactor=redactor,
    )
    return AuditDraft(
        call_id=call_id,
        task_id=task_id,
        kind=RecordKind.TOOL_CALL.value,
        created_at=logged_at,
        compliance_json=canonical_json(compliance).decode("utf-8"),
        key_id=key_id,
        raw_input=input_json if input_json is not None else _payload(dict(params), "raw_input"),
        raw_output=output_json if output_json is not None else _payload(output, "raw_output"),
        error=error_json if error_json is not None else _payload(error_info, "error"),
    )


@functools.lru_cache(maxsize=4096)
def _redact_default(text: str) -> str:
    """The default redactor's :meth:`~Redactor.redact_text`, remembered: the texts it sees
    on every record (agent ids, authorities, data names) repeat."""
    return _DEFAULT_REDACTOR.redact_text(text)


def _tool_call_compliance(
    *,
    call_id: str,
    task_id: str,
    tool_name: str,
    params: Mapping[str, Any],
    started_at: float,
    duration_ms: float,
    logged_at: float,
    error_info: Mapping[str, Any] | None,
    failure_class: str | None,
    outcome: Outcome | str,
    describe: str | None,
    data_accessed: Sequence[str],
    data_modified: Sequence[str],
    agent_id: str | None,
    authorized_by: str | None,
    approval: str | None,
    step_index: int | None,
    attempt: int | None,
    redactor: Redactor | None,
) -> dict[str, Any]:
    """The compliance view of one tool-call attempt (see :func:`draft_tool_call`)."""
    text: Callable[[str], str]
    if redactor is None or redactor is _DEFAULT_REDACTOR:
        redactor, text = _DEFAULT_REDACTOR, _redact_default
    else:
        text = redactor.redact_text
    if describe is None:
        description = f"Called {tool_name}"
    else:
        redacted_params = redactor.redact_value(_plain(dict(params)))
        description = redactor.redact_text(_describe(describe, tool_name, redacted_params))
    compliance: dict[str, Any] = {
        "kind": RecordKind.TOOL_CALL.value,
        "call_id": call_id,
        "task_id": task_id,
        "agent_id": None if agent_id is None else text(agent_id),
        "tool_name": tool_name,
        "timestamp": to_iso(started_at),
        "duration_us": round(duration_ms * 1000),
        "action_description": description,
        "data_accessed": [text(str(d)) for d in data_accessed],
        "data_modified": [text(str(d)) for d in data_modified],
        "authorized_by": None if authorized_by is None else text(authorized_by),
        "approval": approval,
        "outcome": Outcome(outcome).value,
        "failure_class": failure_class,
        # The error's type only: its message is free text, kept in the technical view.
        "error_type": None if error_info is None else error_info.get("type"),
        "logged_at": to_iso(logged_at),
    }
    if step_index is not None:
        compliance["step_index"] = step_index
    if attempt is not None:
        compliance["attempt"] = attempt
    return compliance


def tool_call_facts(
    *,
    call_id: str,
    task_id: str,
    params_json: str,
    output_json: str | None,
    error: Mapping[str, Any] | None,
    failure_class: str | None,
    key_id: str | None,
    logged_at: float,
    facts_json: str,
) -> AuditDraft:
    """The draft of one tool-call attempt as the engine writes it on the step's path: the
    raw payloads and the attempt's facts (``facts_json``, from :class:`FactsEncoder`),
    and no compliance view yet. :func:`seal_draft` builds the view (redaction, the
    ``describe`` template, canonical JSON) when it seals the draft, so the step pays for
    none of it."""
    error_info = None if error is None else _error_dict(error, failure_class)
    return AuditDraft(
        call_id=call_id,
        task_id=task_id,
        kind=RecordKind.TOOL_CALL.value,
        created_at=logged_at,
        compliance_json="",
        key_id=key_id,
        raw_input=params_json,
        raw_output=output_json,
        error=None if error_info is None else serde.dumps(error_info, what="audit error"),
        facts=facts_json,
    )


class FactsEncoder:
    """Encodes a tool-call attempt's facts (the keyword arguments of
    :func:`draft_tool_call` other than the call's ids and payloads) as JSON, reusing the
    part that is the same for every attempt of one tool on one authority."""

    _LIMIT = 1024  # cached prefixes (tool, agent, authority); cleared when full

    def __init__(self) -> None:
        self._prefixes: dict[tuple[Any, ...], str] = {}

    def encode(
        self,
        *,
        tool_name: str,
        describe: str | None,
        data_accessed: Sequence[str],
        data_modified: Sequence[str],
        agent_id: str | None,
        authorized_by: str | None,
        approval: str | None,
        started_at: float,
        duration_ms: float,
        logged_at: float,
        step_index: int,
        attempt: int,
        failure_class: str | None,
    ) -> str:
        key = (tool_name, describe, tuple(data_accessed), tuple(data_modified), agent_id,
               authorized_by, approval)  # fmt: skip
        prefix = self._prefixes.get(key)
        if prefix is None:
            if len(self._prefixes) >= self._LIMIT:
                self._prefixes.clear()
            constant = {
                "tool_name": tool_name,
                "describe": describe,
                "data_accessed": list(data_accessed),
                "data_modified": list(data_modified),
                "agent_id": agent_id,
                "authorized_by": authorized_by,
                "approval": approval,
            }
            prefix = self._prefixes[key] = json.dumps(constant)[:-1]
        # Floats and ints are valid JSON as Python writes them (times are never NaN).
        return (
            f'{prefix},"started_at":{started_at!r},"duration_ms":{duration_ms!r},'
            f'"logged_at":{logged_at!r},"step_index":{step_index:d},"attempt":{attempt:d},'
            f'"failure_class":{"null" if failure_class is None else json.dumps(failure_class)}}}'
        )


def _facts_compliance(draft: AuditDraft) -> dict[str, Any]:
    """The compliance view of a :func:`tool_call_facts` draft (built as
    :func:`draft_tool_call` builds it from the same facts)."""
    assert draft.facts is not None
    assert draft.task_id is not None
    facts = json.loads(draft.facts)
    # The parameters fill the describe template; the raw input is their JSON as it is.
    templated = facts.get("describe") is not None and draft.raw_input is not None
    error = None if draft.error is None else serde.loads(draft.error)
    failure_class = facts.pop("failure_class", None)
    return _tool_call_compliance(
        call_id=draft.call_id,
        task_id=draft.task_id,
        params=serde.loads(draft.raw_input) if templated else {},
        error_info=None if error is None else _error_dict(error, failure_class),
        failure_class=failure_class,
        outcome=Outcome.FAILURE if error is not None else Outcome.SUCCESS,
        redactor=None,
        **facts,
    )


def build_tool_call_record(*, vault: PayloadVault | None, **fields: Any) -> AuditRow:
    """The sealed row for one tool-call attempt: :func:`draft_tool_call` with ``fields``,
    sealed with ``vault`` (without one no raw payload is kept)."""
    return seal_draft(draft_tool_call(**fields), vault)


def draft_audit_record(
    kind: RecordKind | str,
    *,
    call_id: str,
    task_id: str | None,
    actor: str | None,
    timestamp: float,
    logged_at: float,
    details: Mapping[str, Any] | None = None,
    raw: Any = None,
    redactor: Redactor | None = None,
    key_id: str | None = None,
) -> AuditDraft:
    """The draft for an auditable event other than a tool call (approval requested or
    decided, intervention raised or resolved, halt, release, erasure, retention run).

    ``details`` go into the compliance view, redacted; ``raw`` (optional) is sealed like
    a tool call's raw input, under ``key_id`` (default the task's key).
    """
    redactor = redactor or _DEFAULT_REDACTOR
    compliance: dict[str, Any] = {
        "kind": str(kind),
        "call_id": call_id,
        "task_id": task_id,
        "actor": None if actor is None else redactor.redact_text(actor),
        "timestamp": to_iso(timestamp),
        "details": redactor.redact_value(_plain(dict(details or {}))),
        "logged_at": to_iso(logged_at),
    }
    if raw is not None and key_id is None and task_id is None:
        raise ValueError("a raw payload needs a key_id (or a task_id for the task's key)")
    return AuditDraft(
        call_id=call_id,
        task_id=task_id,
        kind=str(kind),
        created_at=logged_at,
        compliance_json=canonical_json(compliance).decode("utf-8"),
        key_id=key_id,
        raw_input=_payload(raw, "raw_input"),
    )


def build_audit_record(
    kind: RecordKind | str, *, vault: PayloadVault | None = None, **fields: Any
) -> AuditRow:
    """The sealed row for an auditable event other than a tool call:
    :func:`draft_audit_record` with ``fields``, sealed with ``vault``."""
    return seal_draft(draft_audit_record(kind, **fields), vault)


# --- views --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ErasedPayload:
    """A raw payload whose data key was destroyed: it is gone, and this says when and by
    whom (``tombstone``; ``None`` if the key store kept none)."""

    key_id: str
    tombstone: Tombstone | None

    def to_json(self) -> dict[str, Any]:
        tomb = self.tombstone
        return {
            "erased": True,
            "key_id": self.key_id,
            "destroyed_at": None if tomb is None else tomb.destroyed_at,
            "destroyed_by": None if tomb is None else tomb.destroyed_by,
            "reason": None if tomb is None else tomb.reason,
        }


def _meta(row: _Row) -> dict[str, Any]:
    if isinstance(row, StoredRecord):
        return {
            "record_id": row.record_id,
            "leaf_index": row.leaf_index,
            "log_hash": None if row.leaf_hash is None else row.leaf_hash.hex(),
        }
    return {}


def compliance_view(row: AuditRow | StoredRecord) -> dict[str, Any]:
    """The compliance view: the redacted fields, plus the record's place in the log
    (``record_id``, ``leaf_index``, ``log_hash``) once stored and sequenced."""
    view: dict[str, Any] = json.loads(row.compliance_json)
    view.update(_meta(row))
    return view


def _open(
    vault: PayloadVault, row: _Row, name: str, envelope_b64: str, commitment: str | None
) -> Any:
    envelope = base64.b64decode(envelope_b64)
    try:
        opened = vault.open_committed(envelope, _aad(row.call_id, name))
    except PayloadErased as exc:
        return ErasedPayload(exc.key_id or envelope_key_id(envelope), exc.tombstone)
    except PayloadTampered as exc:
        return {"tampered": True, "message": str(exc)}
    if commitment is not None and not verify_commitment(opened.value, opened.salt, commitment):
        return {"tampered": True, "message": "the payload does not match the log's commitment"}
    return serde.loads(opened.value.decode("utf-8"))


def technical_view(row: AuditRow | StoredRecord, vault: PayloadVault | None) -> dict[str, Any]:
    """The technical view: the raw payloads, opened with ``vault`` and checked against the
    leaf's commitments. An erased payload is an :class:`ErasedPayload` (its tombstone), a
    payload that does not authenticate is ``{"tampered": True, ...}``. Without a vault the
    sealed envelopes are returned as they are (base64)."""
    view: dict[str, Any] = {"call_id": row.call_id, "kind": row.kind, **_meta(row)}
    technical: dict[str, Any] = json.loads(row.technical_json) if row.technical_json else {}
    commitments: dict[str, str] = json.loads(row.leaf_body).get("commitments", {})
    view["key_id"] = technical.get("key_id")
    if "withheld" in technical:
        view["withheld"] = technical["withheld"]
    for name in PAYLOAD_FIELDS:
        sealed = technical.get(name)
        if sealed is None:
            view[name] = None
        elif vault is None:
            view[name] = {"sealed": sealed, "commitment": commitments.get(name)}
        else:
            try:
                view[name] = _open(vault, row, name, sealed, commitments.get(name))
            except PayloadError as exc:  # the wrong key store, or a lost key
                view[name] = {"unavailable": True, "message": str(exc)}
    return view


def technical_document(row: AuditRow | StoredRecord, vault: PayloadVault | None) -> dict[str, Any]:
    """:func:`technical_view` as plain JSON (erased payloads as their tombstone dict)."""
    view = technical_view(row, vault)
    for name in PAYLOAD_FIELDS:
        if isinstance(view.get(name), ErasedPayload):
            view[name] = view[name].to_json()
    return _plain(view)  # type: ignore[no-any-return]


# --- typed records ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One tool-call attempt, as the audit log holds it.

    ``raw_input``, ``raw_output`` and ``error`` are the opened raw payloads (an
    :class:`ErasedPayload` once erased, ``None`` if not kept or not opened);
    ``log_hash`` is the hex leaf hash and ``leaf_index`` the place in the Merkle log, both
    ``None`` until sequenced. Times are seconds since the epoch.
    """

    call_id: str
    task_id: str
    agent_id: str | None
    tool_name: str
    timestamp: float
    duration_ms: float
    raw_input: Any
    raw_output: Any
    error: Any
    action_description: str
    data_accessed: tuple[str, ...]
    data_modified: tuple[str, ...]
    authorized_by: str | None
    outcome: Outcome
    logged_at: float
    log_hash: str | None
    failure_class: str | None = None
    approval: str | None = None
    step_index: int | None = None
    attempt: int | None = None
    leaf_index: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class AuditEntry:
    """An audit record of another kind than a tool call (see :class:`RecordKind`)."""

    kind: str
    call_id: str
    task_id: str | None
    actor: str | None
    timestamp: float
    details: dict[str, Any]
    logged_at: float
    log_hash: str | None
    leaf_index: int | None = None


def tool_call_record(row: StoredRecord, vault: PayloadVault | None) -> ToolCallRecord:
    """A stored tool-call record as a :class:`ToolCallRecord` (payloads opened with
    ``vault`` if given)."""
    if row.kind != RecordKind.TOOL_CALL:
        raise ValueError(f"record {row.call_id!r} is a {row.kind} record, not a tool call")
    c = json.loads(row.compliance_json)
    raw: dict[str, Any] = dict.fromkeys(PAYLOAD_FIELDS)
    if vault is not None:
        tech = technical_view(row, vault)
        raw = {name: tech[name] for name in PAYLOAD_FIELDS}
    return ToolCallRecord(
        call_id=c["call_id"],
        task_id=c["task_id"],
        agent_id=c["agent_id"],
        tool_name=c["tool_name"],
        timestamp=from_iso(c["timestamp"]),
        duration_ms=c["duration_us"] / 1000,
        raw_input=raw["raw_input"],
        raw_output=raw["raw_output"],
        error=raw["error"],
        action_description=c["action_description"],
        data_accessed=tuple(c["data_accessed"]),
        data_modified=tuple(c["data_modified"]),
        authorized_by=c["authorized_by"],
        outcome=Outcome(c["outcome"]),
        logged_at=from_iso(c["logged_at"]),
        log_hash=None if row.leaf_hash is None else row.leaf_hash.hex(),
        failure_class=c["failure_class"],
        approval=c["approval"],
        step_index=c.get("step_index"),
        attempt=c.get("attempt"),
        leaf_index=row.leaf_index,
    )


def audit_entry(row: StoredRecord) -> AuditEntry:
    """A stored record of another kind as an :class:`AuditEntry`."""
    c = json.loads(row.compliance_json)
    return AuditEntry(
        kind=c["kind"],
        call_id=c["call_id"],
        task_id=c["task_id"],
        actor=c.get("actor"),
        timestamp=from_iso(c["timestamp"]),
        details=c.get("details", {}),
        logged_at=from_iso(c["logged_at"]),
        log_hash=None if row.leaf_hash is None else row.leaf_hash.hex(),
        leaf_index=row.leaf_index,
    )
