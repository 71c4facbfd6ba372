"""The audit operations check roles before anything else: an auditor reads compliance
views, raw payloads need an engineer, erasure and retention an operator; verification and
export need a reader, and say what is not sealed yet."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from handrail import App, TaskContext
from handrail.audit.checkpoint import SigningKey, generate_signing_key
from handrail.audit.keys import KEY_ENV
from handrail.audit.retention import RetentionPolicy
from handrail.audit.sequencer import Sequencer
from handrail.audit.verify import VerifyCode, verify_bundle
from handrail.audit_ops import (
    LOG_ORIGIN,
    RETENTION_ACTOR,
    AccessDenied,
    AuditRecordNotFound,
    apply_retention,
    erase_payloads,
    export_log,
    list_records,
    load_public_key,
    show_record,
    signing_key_path,
    tasks_finished_before,
    verify_log,
)
from handrail.auth import Principal
from handrail.errors import ConfigurationError, NotFoundError
from handrail.testing import ManualClock, MemoryStore

DAY = 86_400.0
AUDITOR = Principal("eve", frozenset({"auditor"}))
ENGINEER = Principal("ed", frozenset({"engineer"}))
OPERATOR = Principal("olga", frozenset({"operator"}))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_700_000_000.0)


@pytest.fixture
def app(clock: ManualClock) -> App:
    app = App(MemoryStore(), clock=clock)

    @app.tool(describe="Refund {amount} EUR to {email}")
    def refund(email: str, amount: int) -> str:
        return "refunded"

    @app.workflow
    def support(ctx: TaskContext, email: str) -> str:
        return str(refund(email, 20))

    return app


def run(app: App, email: str) -> tuple[str, str]:
    """(task id, the call id of its refund)."""
    handle = app.run("support", email)
    (record,) = app.store.audit_log().records(task_id=handle.task_id)
    return handle.task_id, record.call_id


def seal(app: App) -> SigningKey:
    key = generate_signing_key(LOG_ORIGIN)
    Sequencer(app.store.audit_log(), key, LOG_ORIGIN).flush()
    return key


def _denied(action: Callable[[], object]) -> AccessDenied:
    with pytest.raises(AccessDenied) as denied:
        action()
    return denied.value


def test_readers_see_the_compliance_view_only(app: App) -> None:
    task_id, call_id = run(app, "ann@example.com")
    for reader in (AUDITOR, ENGINEER, {"auditor"}):
        (view,) = list_records(app.store, reader, task_id=task_id)
        assert view["action_description"] == "Refund 20 EUR to [email]"
        assert "raw_input" not in view
        assert show_record(app.store, reader, call_id) == view
    for stranger in (OPERATOR, set[str]()):
        with pytest.raises(AccessDenied) as denied:
            list_records(app.store, stranger)
        assert denied.value.needed == ("auditor", "engineer")
    assert "olga may not read the audit log: it needs the 'auditor' or 'engineer' role" in str(
        _denied(lambda: show_record(app.store, OPERATOR, call_id))
    )
    with pytest.raises(AuditRecordNotFound, match="handrail audit list"):
        show_record(app.store, AUDITOR, "no-such-call")


def test_raw_payloads_need_an_engineer(app: App) -> None:
    _, call_id = run(app, "ann@example.com")
    refused = _denied(lambda: show_record(app.store, AUDITOR, call_id, technical=True))
    assert refused.needed == ("engineer",)
    assert "eve may not see raw payloads" in str(refused)
    technical = show_record(app.store, ENGINEER, call_id, technical=True)["technical"]
    assert technical["raw_input"] == {"email": "ann@example.com", "amount": 20}
    assert technical["raw_output"] == "refunded"


def test_erasure_needs_an_operator_and_is_recorded(app: App, clock: ManualClock) -> None:
    task_id, call_id = run(app, "ann@example.com")
    for reader in (AUDITOR, ENGINEER):
        refused = _denied(
            lambda who=reader: erase_payloads(app.store, who, task_id=task_id, reason="DSR-1")
        )
        assert refused.needed == ("operator",)
    with pytest.raises(NotFoundError):
        erase_payloads(app.store, OPERATOR, task_id="no-such-task", reason="DSR-1")
    done = erase_payloads(app.store, OPERATOR, task_id=task_id, reason="DSR-1", clock=clock)
    assert (done.key_id, done.destroyed) == (f"task:{task_id}", True)
    raw = show_record(app.store, ENGINEER, call_id, technical=True)["technical"]["raw_input"]
    assert (raw["erased"], raw["destroyed_by"], raw["reason"]) == (True, "olga", "DSR-1")
    (erasure,) = list_records(app.store, AUDITOR, kind="erasure")
    assert (erasure["actor"], erasure["details"]["reason"]) == ("olga", "DSR-1")
    subject = erase_payloads(app.store, OPERATOR, subject_id="cust-7", reason="DSR-2")
    assert subject.key_id == "subject:cust-7"


def test_retention_needs_an_operator_and_erases_only_old_tasks(
    app: App, clock: ManualClock
) -> None:
    old, old_call = run(app, "old@example.com")
    clock.advance(40 * DAY)
    new, new_call = run(app, "new@example.com")
    clock.advance(DAY)
    assert tasks_finished_before(app.store, clock.now() - 30 * DAY) == [old]
    policy = RetentionPolicy(raw_payload_days=30)
    assert _denied(lambda: apply_retention(app.store, ENGINEER, policy)).needed == ("operator",)
    report = apply_retention(app.store, OPERATOR, policy, clock=clock)
    assert report.destroyed == (old,)
    technical = {
        task: show_record(app.store, ENGINEER, call, technical=True)["technical"]
        for task, call in ((old, old_call), (new, new_call))
    }
    assert technical[old]["raw_input"]["erased"] is True
    assert technical[new]["raw_input"]["email"] == "new@example.com"
    scheduled = apply_retention(app.store, None, policy, clock=clock)  # the worker's run
    assert (scheduled.destroyed, scheduled.already_erased) == ((), (old,))
    runs = list_records(app.store, AUDITOR, kind="retention_run")
    assert [r["actor"] for r in runs] == ["olga", RETENTION_ACTOR]


def test_verify_and_export_need_a_reader_and_report_what_is_not_sealed(app: App) -> None:
    run(app, "ann@example.com")
    empty = verify_log(app.store, AUDITOR)  # nothing signed yet: nothing to verify
    assert (empty.pending, empty.checkpoint, empty.result, empty.code) == (1, None, None, 0)
    key = seal(app)
    run(app, "bob@example.com")
    found = verify_log(app.store, ENGINEER, public_key=key.public_key)
    assert found.pending == 1
    assert found.checkpoint is not None
    assert found.checkpoint.size == 1
    assert found.ok
    assert found.result is not None
    assert found.result.key_trusted
    other = generate_signing_key(LOG_ORIGIN).public_key
    assert verify_log(app.store, AUDITOR, public_key=other).code is VerifyCode.SIGNATURE_INVALID
    _denied(lambda: verify_log(app.store, OPERATOR, public_key=key.public_key))

    bundle = io.BytesIO()
    summary = export_log(app.store, AUDITOR, bundle, public_key=key.public_key)
    assert (summary.records, summary.checkpoints) == (1, 1)
    assert verify_bundle(bundle.getvalue(), trusted_key=key.public_key).ok
    _denied(lambda: export_log(app.store, OPERATOR, io.BytesIO(), public_key=key.public_key))
    with pytest.raises(ConfigurationError, match="--public-key"):
        verify_log(app.store, AUDITOR)  # a memory store has no key file to find


def test_where_the_key_is_and_how_public_keys_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handrail.store.sqlite import SQLiteStore

    monkeypatch.delenv(KEY_ENV, raising=False)
    memory = MemoryStore()
    sqlite = SQLiteStore(tmp_path / "h.db")
    try:
        assert signing_key_path(memory) is None
        assert signing_key_path(sqlite) == Path(f"{tmp_path / 'h.db'}.audit-key")
        assert signing_key_path(memory, tmp_path / "k") == tmp_path / "k"
        monkeypatch.setenv(KEY_ENV, str(tmp_path / "env-key"))
        assert signing_key_path(sqlite) == tmp_path / "env-key"
        assert signing_key_path(sqlite, "given") == Path("given")
    finally:
        sqlite.close()

    public = generate_signing_key(LOG_ORIGIN).public_key
    vkey_file, pem_file = tmp_path / "key.pub", tmp_path / "key.pem"
    vkey_file.write_text(public.to_vkey() + "\n")
    pem_file.write_bytes(public.to_pem())
    for given in (public.to_vkey(), str(vkey_file), pem_file):
        assert load_public_key(given) == public
    with pytest.raises(ConfigurationError, match="neither a public key file nor a vkey"):
        load_public_key("not-a-key")
