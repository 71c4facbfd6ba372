"""Audit records: the compliance part is redacted, the technical part sealed, the leaf
holds commitments and never raw data; the views read them back, erased payloads as
erased."""

from __future__ import annotations

import dataclasses
import json

import pytest

from handrail.audit.leaf import decode_leaf, encode_leaf
from handrail.audit.payloads import MemoryKeyStore, PayloadVault
from handrail.audit.record import (
    AuditRow,
    ErasedPayload,
    Outcome,
    RecordKind,
    StoredRecord,
    audit_entry,
    build_audit_record,
    build_tool_call_record,
    compliance_view,
    from_iso,
    leaf_bytes,
    technical_document,
    technical_view,
    to_iso,
    tool_call_record,
)
from handrail.audit.redact import Redactor

NOW = 1_700_000_000.25
SECRET_EMAIL = "jane.doe@example.com"


@pytest.fixture
def vault() -> PayloadVault:
    return PayloadVault(MemoryKeyStore())


def refund(vault: PayloadVault | None, **overrides: object) -> AuditRow:
    arguments: dict[str, object] = {
        "call_id": "t1:3:1",
        "task_id": "t1",
        "tool_name": "refund",
        "params": {"email": SECRET_EMAIL, "amount": 42, "api_key": "sk-live-123"},
        "started_at": NOW,
        "duration_ms": 12.3456,
        "logged_at": NOW + 1,
        "vault": vault,
        "output": {"refund_id": "r-9", "sent_to": SECRET_EMAIL},
        "describe": "Refund {amount} EUR to {email} with {api_key}",
        "data_accessed": ["customer.email"],
        "data_modified": ["payments.refunds"],
        "agent_id": "support-agent",
        "authorized_by": "carol",
        "approval": "apr-7",
        "step_index": 3,
        "attempt": 1,
    }
    arguments.update(overrides)
    return build_tool_call_record(**arguments)  # type: ignore[arg-type]


def stored(row: AuditRow, leaf_index: int | None = 5) -> StoredRecord:
    leaf_hash = None
    if leaf_index is not None:
        from handrail.audit.merkle import leaf_hash as hash_leaf

        leaf_hash = hash_leaf(leaf_bytes(row.leaf_body, leaf_index))
    return StoredRecord(
        11,
        row.call_id,
        row.task_id,
        row.kind,
        row.created_at,
        row.compliance_json,
        row.technical_json,
        row.leaf_body,
        leaf_index,
        leaf_hash,
    )


def test_the_compliance_part_is_redacted_and_plain(vault: PayloadVault) -> None:
    row = refund(vault)
    view = compliance_view(row)
    assert view["action_description"] == "Refund 42 EUR to [email] with [redacted]"
    assert view["kind"] == RecordKind.TOOL_CALL
    assert view["outcome"] == "success"
    assert view["approval"] == "apr-7"
    assert view["authorized_by"] == "carol"
    assert view["data_accessed"] == ["customer.email"]
    assert view["timestamp"] == "2023-11-14T22:13:20.250000Z"
    assert view["duration_us"] == 12346
    assert (view["step_index"], view["attempt"]) == (3, 1)
    assert SECRET_EMAIL not in row.compliance_json
    assert "sk-live" not in row.compliance_json


def test_the_leaf_holds_commitments_never_raw_data(vault: PayloadVault) -> None:
    row = refund(vault)
    body = json.loads(row.leaf_body)
    assert set(body["commitments"]) == {"raw_input", "raw_output"}
    assert {k: v for k, v in body.items() if k != "commitments"} == json.loads(row.compliance_json)
    assert SECRET_EMAIL not in row.leaf_body
    assert "sk-live" not in row.leaf_body
    assert SECRET_EMAIL not in (row.technical_json or "")  # sealed, not plain
    # The stored body is the record of a canonical leaf, byte for byte.
    leaf = leaf_bytes(row.leaf_body, 7)
    assert leaf == encode_leaf(7, body)
    assert decode_leaf(leaf) == (7, body)


def test_the_technical_view_opens_payloads_that_match_the_commitments(
    vault: PayloadVault,
) -> None:
    row = refund(vault)
    view = technical_view(stored(row), vault)
    assert view["raw_input"] == {"email": SECRET_EMAIL, "amount": 42, "api_key": "sk-live-123"}
    assert view["raw_output"] == {"refund_id": "r-9", "sent_to": SECRET_EMAIL}
    assert view["error"] is None
    assert view["key_id"] == "task:t1"
    assert view["leaf_index"] == 5
    sealed = technical_view(row, None)["raw_input"]
    assert set(sealed) == {"sealed", "commitment"}

    # A payload moved from another record does not open here.
    other = refund(vault, call_id="t1:4:1")
    swapped = json.loads(row.technical_json or "{}")
    swapped["raw_input"] = json.loads(other.technical_json or "{}")["raw_input"]
    moved = dataclasses.replace(stored(row), technical_json=json.dumps(swapped))
    assert technical_view(moved, vault)["raw_input"]["tampered"] is True


def test_erased_payloads_read_as_erased_with_their_tombstone(vault: PayloadVault) -> None:
    row = refund(vault)
    vault.keys.destroy("task:t1", by="dpo@example.com", reason="erasure request")
    view = technical_view(stored(row), vault)
    erased = view["raw_input"]
    assert isinstance(erased, ErasedPayload)
    assert erased.key_id == "task:t1"
    assert erased.tombstone is not None
    assert erased.tombstone.reason == "erasure request"
    document = technical_document(stored(row), vault)
    assert document["raw_output"]["erased"] is True
    assert document["raw_output"]["destroyed_by"] == "dpo@example.com"
    json.dumps(document)  # plain JSON, for sinks

    record = tool_call_record(stored(row), vault)
    assert isinstance(record.raw_input, ErasedPayload)
    assert record.action_description.startswith("Refund 42 EUR")

    # Written after the erasure: nothing raw is kept, and the leaf commits to nothing.
    late = refund(vault, call_id="t1:9:1")
    assert "commitments" not in json.loads(late.leaf_body)
    assert "withheld" in json.loads(late.technical_json or "{}")


def test_failures_keep_the_error_in_the_technical_view_only(vault: PayloadVault) -> None:
    row = refund(
        vault,
        output=None,
        error=PermissionError(f"no access for {SECRET_EMAIL}"),
        failure_class="permission",
    )
    view = compliance_view(row)
    assert (view["outcome"], view["failure_class"]) == ("failure", "permission")
    assert view["error_type"] == "builtins.PermissionError"
    assert SECRET_EMAIL not in row.compliance_json
    error = technical_view(stored(row), vault)["error"]
    assert error["message"] == f"no access for {SECRET_EMAIL}"
    assert error["failure_class"] == "permission"
    body = json.loads(row.leaf_body)
    assert set(body["commitments"]) == {"raw_input", "error"}
    partial = refund(vault, call_id="p", outcome=Outcome.PARTIAL)
    assert compliance_view(partial)["outcome"] == "partial"


def test_a_typed_record_round_trips(vault: PayloadVault) -> None:
    row = refund(vault)
    record = tool_call_record(stored(row), vault)
    assert record.call_id == "t1:3:1"
    assert record.timestamp == pytest.approx(NOW)
    assert record.logged_at == pytest.approx(NOW + 1)
    assert record.duration_ms == pytest.approx(12.346)
    assert record.outcome is Outcome.SUCCESS
    assert record.data_modified == ("payments.refunds",)
    assert record.leaf_index == 5
    assert record.log_hash is not None
    assert len(record.log_hash) == 64
    assert record.raw_output == {"refund_id": "r-9", "sent_to": SECRET_EMAIL}
    assert tool_call_record(stored(row), None).raw_input is None
    assert from_iso(to_iso(NOW)) == pytest.approx(NOW)


def test_other_kinds_are_records_too(vault: PayloadVault) -> None:
    row = build_audit_record(
        RecordKind.APPROVAL_DECIDED,
        call_id="t1:approval:apr-7",
        task_id="t1",
        actor="carol",
        timestamp=NOW,
        logged_at=NOW,
        details={"approval": "apr-7", "decision": "approved", "note": f"ok, {SECRET_EMAIL}"},
        raw={"request": {"email": SECRET_EMAIL}},
        vault=vault,
    )
    entry = audit_entry(stored(row))
    assert entry.kind == "approval_decided"
    assert entry.details == {"approval": "apr-7", "decision": "approved", "note": "ok, [email]"}
    assert SECRET_EMAIL not in row.leaf_body
    assert technical_view(stored(row), vault)["raw_input"] == {"request": {"email": SECRET_EMAIL}}
    with pytest.raises(ValueError, match="key_id"):
        build_audit_record(
            RecordKind.HALT,
            call_id="h",
            task_id=None,
            actor="op",
            timestamp=NOW,
            logged_at=NOW,
            raw={"x": 1},
            vault=vault,
        )


def test_without_a_vault_nothing_raw_is_kept() -> None:
    row = refund(None)
    assert row.technical_json is None
    assert "commitments" not in json.loads(row.leaf_body)


def test_a_custom_redactor_applies_everywhere(vault: PayloadVault) -> None:
    redactor = Redactor(extra_field_patterns=["amount"])
    row = refund(vault, redactor=redactor)
    assert compliance_view(row)["action_description"].startswith("Refund [redacted] EUR")


@pytest.mark.parametrize("describe", [None, "Refund {amount} EUR to {email} with {api_key}"])
@pytest.mark.parametrize("failed", [False, True])
def test_a_facts_draft_seals_to_the_record_the_full_draft_makes(
    vault: PayloadVault, describe: str | None, failed: bool
) -> None:
    """The engine writes a tool call's facts and payloads; sealing builds the compliance
    view from them. It must be the view :func:`draft_tool_call` builds from the same call,
    byte for byte, and the leaf that view plus the payloads' commitments."""
    from handrail import serde
    from handrail.audit.record import FactsEncoder, draft_tool_call, seal_draft, tool_call_facts

    params = {"email": SECRET_EMAIL, "amount": 42, "api_key": "sk-live-123"}
    error = {"type": "app.Declined", "message": f"card of {SECRET_EMAIL} declined"}
    failure = "data_error" if failed else None
    facts = {
        "tool_name": "refund",
        "describe": describe,
        "data_accessed": ["customer.email", SECRET_EMAIL],
        "data_modified": ["payments.refunds"],
        "agent_id": "support-agent +1 415 555 0100",
        "authorized_by": "carol",
        "approval": "apr-7",
        "started_at": NOW,
        "duration_ms": 12.3456,
        "logged_at": NOW + 1,
        "step_index": 3,
        "attempt": 2,
    }
    full = draft_tool_call(
        call_id="t1:3:2",
        task_id="t1",
        params=params,
        output=None if failed else {"refund_id": "r-9"},
        error=error if failed else None,
        failure_class=failure,
        **facts,  # type: ignore[arg-type]
    )
    draft = tool_call_facts(
        call_id="t1:3:2",
        task_id="t1",
        params_json=serde.dumps(params),
        output_json=None if failed else serde.dumps({"refund_id": "r-9"}),
        error=error if failed else None,
        failure_class=failure,
        key_id=None,
        logged_at=NOW + 1,
        facts_json=FactsEncoder().encode(failure_class=failure, **facts),  # type: ignore[arg-type]
    )
    sealed, expected = seal_draft(draft, vault), seal_draft(full, vault)
    assert sealed.compliance_json == expected.compliance_json
    assert SECRET_EMAIL not in sealed.compliance_json
    leaf = json.loads(sealed.leaf_body)
    commitments = leaf.pop("commitments")
    assert leaf == json.loads(sealed.compliance_json)
    assert set(commitments) == set(json.loads(expected.leaf_body)["commitments"])
    assert set(commitments) == ({"raw_input", "error"} if failed else {"raw_input", "raw_output"})
