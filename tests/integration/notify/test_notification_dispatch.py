"""The dispatcher against real receivers: batching, retries with back-off, giving up, and
a failing or slow notifier never holding up the caller or another notifier."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from notify_support import WAIT, HttpReceiver, http_receiver, make_request

from handrail.errors import ConfigurationError
from handrail.notify import (
    Notification,
    NotificationDispatcher,
    NotifierStats,
    WebhookNotifier,
)
from handrail.notify.dispatcher import backoff_delay

SECRET = "s3cret"
FAST = {"initial_backoff": 0.01, "max_backoff": 0.02}


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    with http_receiver() as receiver:
        yield receiver


@pytest.fixture
def new_http() -> Iterator[Callable[[], HttpReceiver]]:
    """Start more HTTP receivers; all stop at teardown."""
    with ExitStack() as stack:
        yield lambda: stack.enter_context(http_receiver())


@contextmanager
def dispatching(notifiers: Sequence[Any], **options: Any) -> Iterator[NotificationDispatcher]:
    dispatcher = NotificationDispatcher(notifiers, **options)
    try:
        yield dispatcher
    finally:
        dispatcher.close(timeout=WAIT)


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait (polling) for ``predicate``, failing after ``timeout``."""
    done = threading.Event()
    while not predicate():
        if done.wait(0.01) or not timeout > 0:
            pytest.fail("condition not met in time")
        timeout -= 0.01


def notify_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "handrail.notify" and r.levelno == level
    ]


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    low = [backoff_delay(n, initial=1.0, maximum=10.0, rand=lambda: 0.0) for n in range(1, 7)]
    high = [backoff_delay(n, initial=1.0, maximum=10.0, rand=lambda: 1.0) for n in range(1, 7)]
    assert low == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert high == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff_delay(10_000, initial=1.0, maximum=60.0, rand=lambda: 1.0) == 60.0


def test_a_batch_within_the_window_is_one_request(http: HttpReceiver) -> None:
    notifications = [Notification.requested(make_request(n)) for n in range(5)]
    with dispatching([WebhookNotifier(http.url, SECRET)], batch_window=1.0) as dispatcher:
        for notification in notifications:
            dispatcher.submit(notification)
        (delivery,) = http.wait_for(1)
        assert dispatcher.flush(WAIT)
        assert len(http.deliveries) == 1
        sent = delivery.json()["notifications"]
        assert [n["requests"][0]["request_id"] for n in sent] == [f"apr-{n:03d}" for n in range(5)]
        assert dispatcher.stats() == {"webhook": NotifierStats(5, 0, 0, 0)}


def test_max_batch_splits_a_burst(http: HttpReceiver) -> None:
    with dispatching(
        [WebhookNotifier(http.url, SECRET)], batch_window=60.0, max_batch=2
    ) as dispatcher:
        for n in range(5):
            dispatcher.submit(Notification.requested(make_request(n)))
        assert dispatcher.flush(WAIT)  # sends the last, partial batch without waiting 60 s
        sizes = [len(d.json()["notifications"]) for d in http.deliveries]
        assert sizes == [2, 2, 1]


def test_failed_sends_are_retried_and_logged(
    http: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="handrail.notify")
    http.fail(500, 500)
    with dispatching([WebhookNotifier(http.url, SECRET)], batch_window=0, **FAST) as dispatcher:
        dispatcher.submit(Notification.requested(make_request(1)))
        assert dispatcher.flush(WAIT)
        assert dispatcher.stats() == {"webhook": NotifierStats(1, 2, 0, 0)}

    deliveries = http.deliveries
    assert [d.status for d in deliveries] == [500, 500, 200]
    assert len({d.body for d in deliveries}) == 1  # the same batch each time
    warnings = notify_records(caplog, logging.WARNING)
    assert len(warnings) == 2
    for attempt, message in enumerate(warnings, start=1):
        assert message.startswith(
            f"notifier 'webhook' failed to send 1 notification(s) (attempt {attempt} of 8): "
        )
        assert "HTTPStatusError" in message
        assert "500" in message
    assert notify_records(caplog, logging.ERROR) == []
    assert notify_records(caplog, logging.INFO) == [
        "notifier 'webhook' sent 1 notification(s) at attempt 3"
    ]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_unreachable_receiver_is_given_up_and_counted(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = WebhookNotifier(f"http://127.0.0.1:{closed_port}/hook", SECRET, name="down")
    with dispatching([notifier], batch_window=0, max_attempts=3, **FAST) as dispatcher:
        dispatcher.submit(Notification.requested(make_request(1)))
        assert dispatcher.flush(WAIT)
        assert dispatcher.stats() == {"down": NotifierStats(0, 3, 1, 0)}

    warnings = notify_records(caplog, logging.WARNING)
    assert [w.split(":")[0] for w in warnings] == [
        "notifier 'down' failed to send 1 notification(s) (attempt 1 of 3)",
        "notifier 'down' failed to send 1 notification(s) (attempt 2 of 3)",
    ]
    assert all("ConnectError" in w for w in warnings)
    (error,) = notify_records(caplog, logging.ERROR)
    assert error.startswith("notifier 'down' gave up on 1 notification(s) after 3 attempts")


def test_submit_does_not_wait_for_delivery(http: HttpReceiver) -> None:
    http.stall()
    with dispatching([WebhookNotifier(http.url, SECRET)], batch_window=0) as dispatcher:
        dispatcher.submit(Notification.requested(make_request(1)))
        http.wait_for(1)  # the request has arrived and its answer is being held
        dispatcher.submit(Notification.requested(make_request(2)))
        assert dispatcher.stats()["webhook"] == NotifierStats(0, 0, 0, 2)
        assert not dispatcher.flush(0.05)
        http.release()
        assert dispatcher.flush(WAIT)
        assert dispatcher.stats()["webhook"] == NotifierStats(2, 0, 0, 0)


def test_a_failing_or_slow_notifier_does_not_delay_a_healthy_one(
    new_http: Callable[[], HttpReceiver],
) -> None:
    healthy, slow, failing = new_http(), new_http(), new_http()
    slow.stall()
    failing.fail_always(503)
    notifiers = [
        WebhookNotifier(slow.url, SECRET, name="slow"),
        WebhookNotifier(failing.url, SECRET, name="failing"),
        WebhookNotifier(healthy.url, SECRET, name="healthy"),
    ]
    dispatcher = NotificationDispatcher(
        notifiers, batch_window=0, initial_backoff=60.0, max_backoff=60.0
    )
    try:
        dispatcher.submit(Notification.requested(make_request(1)))
        healthy.wait_for(1)
        slow.wait_for(1)
        failing.wait_for(1)
        wait_until(lambda: dispatcher.stats()["failing"].failed_attempts == 1)
        dispatcher.submit(Notification.queue_full("finance", 10, 10))

        assert len(healthy.wait_for(2)) == 2
        wait_until(lambda: dispatcher.stats()["healthy"].sent == 2)
        stats = dispatcher.stats()
        assert stats["slow"] == NotifierStats(0, 0, 0, 2)  # still waiting for its answer
        assert stats["failing"] == NotifierStats(0, 1, 0, 2)  # backing off for a minute
        slow.release()
        wait_until(lambda: dispatcher.stats()["slow"].sent == 2)
    finally:
        slow.release()
        # The failing notifier is in a 60 s back-off: close gives up on it and drops.
        assert not dispatcher.close(timeout=0.2)
    # close() returned; the abandoned thread wakes from its back-off and counts the drop.
    wait_until(lambda: dispatcher.stats()["failing"].backlog == 0)
    assert dispatcher.stats() == {
        "slow": NotifierStats(2, 0, 0, 0),
        "failing": NotifierStats(0, 1, 2, 0),
        "healthy": NotifierStats(2, 0, 0, 0),
    }
    assert stats["healthy"] == NotifierStats(2, 0, 0, 0)


def test_submit_after_close_drops_without_raising(
    http: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    dispatcher = NotificationDispatcher([WebhookNotifier(http.url, SECRET)], batch_window=0)
    dispatcher.submit(Notification.requested(make_request(1)))
    assert dispatcher.close(timeout=WAIT)
    dispatcher.submit(Notification.requested(make_request(2)))
    assert dispatcher.stats()["webhook"] == NotifierStats(1, 0, 1, 0)
    assert len(http.deliveries) == 1
    assert any("is closed" in m for m in notify_records(caplog, logging.WARNING))


class _Raising:
    """A notifier whose send raises something unexpected."""

    name = "broken"

    def __init__(self) -> None:
        self.calls = 0

    def send(self, batch: Sequence[Notification]) -> None:
        self.calls += 1
        raise RuntimeError("template error")


def test_backlog_is_bounded_and_routing_by_name(
    http: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    broken = _Raising()
    with dispatching(
        [broken, WebhookNotifier(http.url, SECRET)],
        batch_window=60.0,
        max_backlog=2,
        max_attempts=1,
    ) as dispatcher:
        for n in range(3):
            dispatcher.submit(Notification.requested(make_request(n)), to=["broken"])
        dispatcher.submit(Notification.queue_full("ops", 1, 1), to=["webhook", "pager"])
        assert dispatcher.flush(WAIT)
        assert dispatcher.stats()["broken"] == NotifierStats(0, 1, 3, 0)
    assert broken.calls == 1
    (delivery,) = http.deliveries
    assert [n["kind"] for n in delivery.json()["notifications"]] == ["approval_queue_full"]
    warnings = notify_records(caplog, logging.WARNING)
    assert any("dropped the oldest, 'Approval needed: send_wire #0'" in w for w in warnings)
    assert any("no notifier named ['pager']" in w for w in warnings)


def test_notifier_names_must_be_unique(http: HttpReceiver) -> None:
    with pytest.raises(ConfigurationError, match="unique"):
        NotificationDispatcher([WebhookNotifier(http.url, SECRET)] * 2)
