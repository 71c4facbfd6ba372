"""The heartbeat renews held leases, and warns only when a lease went to another claim,
not when its task simply finished between two renewals."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from handrail import App
from handrail.store.base import Lease
from handrail.testing import ManualClock

MakeApp = Callable[..., App]


def _claimed(app: Any) -> Lease:
    @app.workflow
    def wait(ctx: Any) -> None:
        return None

    handle = app.start(wait)
    claim = app.store.claim_task(
        "w1", now=app.clock.now(), lease_seconds=30.0, task_id=handle.task_id
    )
    assert claim is not None
    return claim.lease


def test_a_lease_released_by_its_finished_task_is_dropped_quietly(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    lease = _claimed(app)
    app.heartbeat.stop()  # no thread: renewals are driven by hand
    app.heartbeat.add(lease)  # drive renewals by hand
    app.store.release_worker("w1")  # what finishing or suspending the task does to it
    with caplog.at_level(logging.WARNING, logger="handrail.lease"):
        app.heartbeat.renew_all()
    assert "taken over" not in caplog.text
    app.heartbeat.renew_all()  # the lease is no longer held: nothing is renewed
    assert app.store.get_task(lease.task_id).lease_owner is None


def test_a_lease_claimed_by_another_worker_is_reported(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    lease = _claimed(app)
    app.heartbeat.stop()  # no thread: renewals are driven by hand
    app.heartbeat.add(lease)
    app.store.release_worker("w1")
    again = app.store.claim_task(
        "w2", now=app.clock.now(), lease_seconds=30.0, task_id=lease.task_id
    )
    assert again is not None
    assert again.lease.epoch != lease.epoch
    with caplog.at_level(logging.WARNING, logger="handrail.lease"):
        app.heartbeat.renew_all()
    assert f"lease of task {lease.task_id} was taken over" in caplog.text


def test_a_held_lease_is_renewed(make_app: MakeApp, clock: ManualClock) -> None:
    app = make_app()
    lease = _claimed(app)
    before = app.store.get_task(lease.task_id).lease_expires_at
    app.heartbeat.stop()  # no thread: renewals are driven by hand
    app.heartbeat.add(lease)
    clock.advance(5.0)
    app.heartbeat.renew_all()
    after = app.store.get_task(lease.task_id).lease_expires_at
    assert before is not None
    assert after == before + 5.0
