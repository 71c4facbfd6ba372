"""A worker runs the audit log's jobs beside its tasks, on every store: the sequencer seals
records while it runs (and the rest when it stops), delivery sends each sink its view, and
retention erases expired raw payloads when it starts. Without a key the log is not sealed,
with a warning; with a key that did not sign the log the worker refuses to start."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from handrail import App, TaskContext, audit_jobs
from handrail.audit.checkpoint import generate_signing_key
from handrail.audit.keys import KEY_ENV
from handrail.audit.record import RecordKind
from handrail.audit.retention import RetentionPolicy
from handrail.audit.sequencer import Sequencer
from handrail.audit.verify import verify_bundle
from handrail.audit_ops import LOG_ORIGIN, load_public_key
from handrail.errors import ConfigurationError
from handrail.testing import ManualClock, MemoryStore

MakeApp = Callable[..., App]
DAY = 86_400.0
TIMEOUT = 10.0


class ListSink:
    """Keeps what it is sent."""

    def __init__(self, name: str, view: str) -> None:
        self.name = name
        self.view = view
        self.received: list[Mapping[str, Any]] = []
        self.closed = False

    def send(self, document: Mapping[str, Any]) -> None:
        self.received.append(document)

    def close(self) -> None:
        self.closed = True


def build(app: App) -> None:
    @app.tool(describe="Refund {amount} EUR to {email}")
    def refund(email: str, amount: int) -> str:
        return "refunded"

    @app.workflow
    def support(ctx: TaskContext, email: str) -> str:
        return str(refund(email, 20))


def wait_for(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_running_worker_seals_delivers_and_applies_retention(
    make_app: MakeApp, clock: ManualClock, tmp_path: Path
) -> None:
    compliance, technical = ListSink("siem", "compliance"), ListSink("debug", "technical")
    key_file = tmp_path / "audit.key"
    app = make_app(
        audit_key=key_file,
        audit_sinks=[compliance, technical],
        audit_retention=RetentionPolicy(raw_payload_days=1),
    )
    build(app)
    old = app.run("support", "old@example.com")  # finished before the worker starts
    clock.advance(2 * DAY)
    log = app.store.audit_log()
    with app.worker(poll_interval=0.05):
        new = app.start("support", "new@example.com")
        assert new.result(timeout=TIMEOUT) == "refunded"
        # two tool calls and the retention run, sealed and delivered while it runs
        wait_for("the seal", lambda: (c := log.latest_checkpoint()) is not None and c.size == 3)
        wait_for("delivery", lambda: len(compliance.received) == len(technical.received) == 3)
    assert log.pending() == 0
    assert not compliance.closed  # the App owns its sinks

    public = load_public_key(f"{key_file}.pub")
    bundle = io.BytesIO()
    assert log.export_bundle(bundle, public) == 3
    assert verify_bundle(bundle.getvalue(), trusted_key=public).ok

    kinds = {r.call_id: r.kind for r in log.records()}
    (run,) = [r for r in log.records() if r.kind == RecordKind.RETENTION_RUN]
    details = json.loads(run.compliance_json)
    assert (details["actor"], details["details"]["tasks_erased"]) == (
        "system:retention",
        [old.task_id],
    )
    assert [d["leaf_index"] for d in compliance.received] == [0, 1, 2]
    assert [d["call_id"] for d in compliance.received] == list(kinds)
    assert "@example.com" not in json.dumps(compliance.received)
    (opened,) = [d for d in technical.received if d["call_id"].startswith(new.task_id)]
    assert opened["raw_input"] == {"email": "new@example.com", "amount": 20}
    app.close()
    assert compliance.closed
    assert technical.closed


def test_workers_of_one_app_share_one_sequencer(tmp_path: Path) -> None:
    app = App(MemoryStore(), audit_key=tmp_path / "audit.key")
    build(app)
    first, second = app.worker(), app.worker()
    with first, second:
        jobs = audit_jobs._running[id(app)]
        assert jobs.users == 2
        assert jobs.sequencer is not None
        threads = [t.name for t in threading.enumerate()]
        assert threads.count("handrail-audit-sequencer") == 1
        app.start("support", "ann@example.com").result(timeout=TIMEOUT)
    assert id(app) not in audit_jobs._running
    assert app.store.audit_log().pending() == 0  # the last worker out sealed it


def test_without_a_key_the_log_is_not_sealed_and_a_warning_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setattr(audit_jobs, "_warned_unkeyed", False)
    app = App(MemoryStore())  # like PostgreSQL: no file to put the key next to
    build(app)
    with caplog.at_level(logging.WARNING, logger="handrail.audit"):
        for _ in range(2):
            with app.worker():
                app.start("support", "ann@example.com").result(timeout=TIMEOUT)
    warnings = [r.getMessage() for r in caplog.records if "not sealed" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "HANDRAIL_AUDIT_KEY" in warnings[0]
    assert app.store.audit_log().pending() == 2
    assert app.store.audit_log().latest_checkpoint() is None


def test_a_key_that_did_not_sign_the_log_is_refused(tmp_path: Path) -> None:
    app = App(MemoryStore(), audit_key=tmp_path / "new.key")
    build(app)
    app.run("support", "ann@example.com")
    Sequencer(app.store.audit_log(), generate_signing_key(LOG_ORIGIN), LOG_ORIGIN).flush()
    with pytest.raises(ConfigurationError, match="signed with another key"):
        app.worker().start()
    assert id(app) not in audit_jobs._running
