"""The app's side of notifications: the engine hands over facts, the notifiers deliver.

The engine calls :meth:`Notifications.notify` after the journal holds what it announces
(a request, a reminder, a full approval queue). Delivery runs on the dispatcher's own
threads, with retries and batching; it never blocks or fails a task.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from handrail.notify import NotificationDispatcher, Notifier
else:
    Notifier = Any

log = logging.getLogger("handrail.notify")


class Notifications:
    """The notifiers an app was given, started on first use."""

    def __init__(self, notifiers: Sequence[Notifier] = ()):
        self.notifiers = list(notifiers)
        self._dispatcher: NotificationDispatcher | None = None
        self._lock = threading.Lock()

    @property
    def dispatcher(self) -> NotificationDispatcher | None:
        if not self.notifiers:
            return None
        with self._lock:
            if self._dispatcher is None:
                from handrail.notify import NotificationDispatcher

                self._dispatcher = NotificationDispatcher(self.notifiers)
            return self._dispatcher

    def notify(self, kind: str, facts: dict[str, Any]) -> None:
        """Queue a notification of ``kind``; never raises."""
        dispatcher = self.dispatcher
        if dispatcher is None:
            return
        try:
            from handrail.notify import Notification

            if kind == "approval_requested":
                note = Notification.requested(facts["request"])
            elif kind == "approval_reminder":
                note = Notification.reminder(facts["request"])
            elif kind == "approval_queue_full":
                note = Notification.queue_full(facts["group"], facts["cap"], facts["queued"])
            else:
                raise ValueError(f"unknown notification kind {kind!r}")
            dispatcher.submit(note)
        except Exception:
            log.exception("could not queue a %s notification", kind)

    def alert(self, title: str, details: dict[str, Any], *, now: float | None = None) -> None:
        """Queue an ``alert`` notification (an alert rule fired or resolved); never raises."""
        dispatcher = self.dispatcher
        if dispatcher is None:
            return
        try:
            from handrail.notify import Notification

            note = Notification(kind="alert", title=title, details=details)
            if now is not None:  # the clock of the rules' snapshot, not the wall clock
                note = dataclasses.replace(note, created_at=now)
            dispatcher.submit(note)
        except Exception:
            log.exception("could not queue an alert notification")

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued notification was delivered or given up."""
        return True if self._dispatcher is None else self._dispatcher.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        if self._dispatcher is not None:
            self._dispatcher.close(timeout)
            self._dispatcher = None
