"""Notifications kept in the store's outbox: nothing is lost when the process that should
have sent one dies, a request journaled without its notice is swept, and a notice sent
is not sent again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from notify_support import WAIT, HttpReceiver, http_receiver

from handrail import App, TaskContext, TaskStatus
from handrail.notify import WebhookNotifier
from handrail.store.url import open_store

HERE = Path(__file__).parent
SECRET = "s3cret"


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    with http_receiver() as receiver:
        yield receiver


def renewal_app(db: str, *notifiers: Any) -> App:
    app = App(db, notifiers=list(notifiers))

    @app.tool(reversibility="irreversible", describe="Send the renewal notice to {vendor}")
    def send_notice(vendor: str) -> str:
        return f"sent to {vendor}"

    @app.workflow
    def renew(ctx: TaskContext, vendor: str) -> str:
        return send_notice(vendor)

    return app


def request_ids(receiver: HttpReceiver) -> list[str]:
    return [
        request["request_id"]
        for delivery in receiver.deliveries
        for note in delivery.json()["notifications"]
        for request in note["requests"]
    ]


def child(mode: str, db: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HERE / "notice_child.py"), mode, db, url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(HERE)},
    )


def test_a_notice_whose_process_died_unsent_is_sent_by_the_next_worker(
    tmp_path: Path, http: HttpReceiver
) -> None:
    db = str(tmp_path / "h.db")
    gate = child("gate", db, http.url)
    assert gate.returncode == -signal.SIGKILL, gate.stderr
    task_id = gate.stdout.strip()
    store = open_store(db)
    try:
        record = store.get_task(task_id)
        assert record is not None
        assert record.status is TaskStatus.AWAITING_APPROVAL
        (counts,) = store.notice_outbox().counts().values()
        assert (counts.queued, counts.sent) == (1, 0)  # kept, and the dead process sent nothing
    finally:
        store.close()
    assert http.deliveries == []

    work = child("work", db, http.url)
    assert work.returncode == 0, work.stderr
    assert json.loads(work.stdout.strip().splitlines()[-1]) == {"webhook": 1}
    (delivery,) = http.wait_for(1)
    (note,) = delivery.json()["notifications"]
    assert note["kind"] == "approval_requested"
    assert note["requests"][0]["task_id"] == task_id
    assert note["requests"][0]["proposed_action"] == "Send the renewal notice to acme"


def test_a_request_journaled_without_its_notice_is_swept_once(
    tmp_path: Path, http: HttpReceiver
) -> None:
    db = str(tmp_path / "h.db")
    # The state a crash between the journal write and the enqueue leaves (here: the
    # request was made by an app without notifiers).
    quiet = renewal_app(db)
    handle = quiet.run("renew", "acme")
    assert handle.status() is TaskStatus.AWAITING_APPROVAL
    quiet.close()

    app = renewal_app(db, WebhookNotifier(http.url, SECRET))
    app.notifications.dispatcher_options = {"batch_window": 0.0}
    try:
        with app.worker():
            http.wait_for(1)
        assert app.notifications.flush(WAIT)
        assert app.notifications.recover() == 0  # swept again: nothing new
        assert app.notifications.flush(WAIT)
        (counts,) = app.store.notice_outbox().counts().values()
        assert (counts.queued, counts.sent) == (0, 1)
    finally:
        app.close()
    (rid,) = request_ids(http)
    assert rid.startswith(handle.task_id + "/")


def test_a_sent_notice_is_not_sent_again_by_another_worker(
    tmp_path: Path, http: HttpReceiver
) -> None:
    db = str(tmp_path / "h.db")
    first = renewal_app(db, WebhookNotifier(http.url, SECRET))
    first.notifications.dispatcher_options = {"batch_window": 0.0}
    handle = first.run("renew", "acme")
    http.wait_for(1)
    assert first.notifications.flush(WAIT)
    first.close()

    second = renewal_app(db, WebhookNotifier(http.url, SECRET))
    try:
        assert second.notifications.recover() == 0
        assert second.notifications.flush(WAIT)
    finally:
        second.close()
    assert request_ids(http) == [r for r in request_ids(http) if r.startswith(handle.task_id)]
    assert len(http.deliveries) == 1


def test_a_notice_given_up_is_kept_with_its_error_and_one_abandoned_is_handed_back(
    tmp_path: Path, http: HttpReceiver
) -> None:
    db = str(tmp_path / "h.db")
    http.fail_always(503)
    app = renewal_app(db, WebhookNotifier(http.url, SECRET))
    app.notifications.dispatcher_options = {
        "batch_window": 0.0, "max_attempts": 2, "initial_backoff": 0.01, "max_backoff": 0.02,
    }  # fmt: skip
    try:
        app.run("renew", "acme")
        http.wait_for(2)
        assert app.notifications.flush(WAIT)
        (counts,) = app.store.notice_outbox().counts().values()
        assert (counts.queued, counts.dropped) == (0, 1)
        # a notifier that hangs: closing the app hands the notice back at once
        http.fail_always(0)  # (answers 200, once it answers)
        http.stall()
        app.notifications.dispatcher_options = {"batch_window": 0.0}
        app.notifications.close(timeout=0.1)
        app.run("renew", "globex")
        http.wait_for(3)
        app.notifications.close(timeout=0.1)
    finally:
        http.release()
        app.close()
    store = open_store(db)
    try:
        outbox = store.notice_outbox()
        (counts,) = outbox.counts().values()
        assert counts.queued == 1
        # nobody holds it: the next claim (any process, any time) takes it
        now = time.time()
        (notice,) = outbox.claim(["webhook"], holder="next", now=now, hold_until=now + 1)
        assert "globex" in notice.body
    finally:
        store.close()


def test_a_live_holder_keeps_renewing_its_hold_until_its_notifier_answers(
    tmp_path: Path, http: HttpReceiver
) -> None:
    db = str(tmp_path / "h.db")
    http.stall()  # the notifier hangs: the dispatcher keeps the notice in flight
    app = renewal_app(db, WebhookNotifier(http.url, SECRET))
    app.notifications.hold_seconds = 1.0
    app.notifications.recover_every = 0.05
    app.notifications.dispatcher_options = {"batch_window": 0.0}
    other = open_store(db)
    try:
        app.run("renew", "acme")
        http.wait_for(1)
        outbox = other.notice_outbox()
        deadline = time.monotonic() + 2.5  # longer than two holds
        while time.monotonic() < deadline:
            now = time.time()
            assert outbox.claim(["webhook"], holder="other", now=now, hold_until=now + 60) == []
            time.sleep(0.05)
        http.release()
        assert app.notifications.flush(WAIT)
        (counts,) = outbox.counts().values()
        assert (counts.queued, counts.sent) == (0, 1)
    finally:
        http.release()
        app.close()
        other.close()
    assert len(http.deliveries) == 1


def test_a_given_up_notice_retried_by_an_operator_is_sent_by_a_worker(
    tmp_path: Path, http: HttpReceiver
) -> None:
    db = str(tmp_path / "h.db")
    http.fail_always(503)
    app = renewal_app(db, WebhookNotifier(http.url, SECRET))
    app.notifications.recover_every = 0.05
    app.notifications.dispatcher_options = {"batch_window": 0.0, "max_attempts": 1}
    try:
        app.run("renew", "acme")
        http.wait_for(1)
        assert app.notifications.flush(WAIT)
        outbox = app.store.notice_outbox()
        (counts,) = outbox.counts().values()
        assert (counts.queued, counts.dropped) == (0, 1)
        http.fail_always(0)  # the endpoint is fixed: it answers 200
        assert outbox.requeue(None) == 1
        with app.worker():
            http.wait_for(2)
            assert app.notifications.flush(WAIT)
        (counts,) = outbox.counts().values()
        assert (counts.queued, counts.sent, counts.dropped) == (0, 1, 0)
    finally:
        app.close()
    assert [d.status for d in http.deliveries] == [503, 200]
