"""The app's side of notifications: the engine hands over facts, the notifiers deliver.

The engine calls :meth:`Notifications.notify` after the journal holds what it announces
(a request, a reminder, a full approval queue). Delivery runs on the dispatcher's own
threads, with retries and batching; it never blocks or fails a task.

Nothing is lost on a crash. ``notify`` first puts one notice per notifier in the store's
outbox (:mod:`handrail.notify.outbox`), held by this process while its dispatcher sends
it (the hold is short, and renewed every few seconds while the dispatcher has it); the
dispatcher's outcome marks it sent, given up, or handed back. A worker runs
:meth:`Notifications.recover` when it starts and then every few seconds: it takes over
notices whose holder died (their hold ran out) or handed them back, and it *sweeps* the
journal for open approval requests (and sent reminders) that have no notice yet, which is
what a crash between the journal write and the enqueue leaves. A notice is sent at least
once: twice only if a process died after its notifier took it and before it was marked.
Alerts (from alert rules) are not kept: their incidents live in the process.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from handrail.clock import Clock
    from handrail.notify import Notification, NotificationDispatcher, Notifier
    from handrail.notify.dispatcher import Outcome
    from handrail.notify.outbox import Notice, NoticeOutbox
    from handrail.store.base import Store
else:
    Notifier = Any

log = logging.getLogger("handrail.notify")

HOLD_SECONDS = 30.0
"""How long a hold on a notice lasts from its last renewal: a live holder renews its
notices every ``RECOVER_EVERY`` seconds until its dispatcher settles them, so this is
about how long a dead holder's notices wait before another process sends them."""

RECOVER_EVERY = 5.0
"""Seconds between two renewals of this process's holds, and between two claims of
orphaned notices by a worker."""

CLAIM_ROUNDS = 10
"""At most this many claims of 100 notices per recovery round: a backlog far larger than
the dispatcher's queue is taken over a round at a time, not in one spin."""

SWEEP_EVERY = 60.0
"""Seconds between two sweeps of the journal for open requests without a notice."""


class Notifications:
    """The notifiers an app was given, started on first use, with the store's outbox
    behind them (none for an app without notifiers)."""

    def __init__(
        self,
        notifiers: Sequence[Notifier] = (),
        *,
        store: Store | None = None,
        clock: Clock | None = None,
        holder: Callable[[], str] | None = None,
        hold_seconds: float = HOLD_SECONDS,
        recover_every: float = RECOVER_EVERY,
        sweep_every: float = SWEEP_EVERY,
        dispatcher_options: dict[str, Any] | None = None,
    ):
        self.notifiers = list(notifiers)
        self.store = store
        self._clock = clock
        self._holder = holder or (lambda: "handrail")
        self.hold_seconds = hold_seconds
        self.recover_every = recover_every
        self.sweep_every = sweep_every
        self.dispatcher_options = dict(dispatcher_options or {})
        """Keyword arguments for the :class:`~handrail.notify.NotificationDispatcher`
        (batch window, back-off, attempts), read when it starts on first use."""
        self._dispatcher: NotificationDispatcher | None = None
        self._lock = threading.Lock()
        self._held: set[int] = set()  # kept notices handed to the dispatcher, not settled
        self._users = 0  # workers that asked for recovery (start/stop)
        self._stop = threading.Event()
        self._wake = threading.Event()  # ends the notices thread's wait early
        self._thread: threading.Thread | None = None

    @property
    def dispatcher(self) -> NotificationDispatcher | None:
        if not self.notifiers:
            return None
        with self._lock:
            if self._dispatcher is None:
                from handrail.notify import NotificationDispatcher

                self._dispatcher = NotificationDispatcher(
                    self.notifiers,
                    on_settled=None if self.store is None else self._settled,
                    **self.dispatcher_options,
                )
            return self._dispatcher

    def _now(self) -> float:
        return time.time() if self._clock is None else self._clock.now()

    def _outbox(self) -> NoticeOutbox | None:
        if self.store is None:
            return None
        return self.store.notice_outbox()

    # -- announcing ----------------------------------------------------------------------

    def notify(self, kind: str, facts: dict[str, Any]) -> None:
        """Queue a notification of ``kind`` for every notifier; never raises."""
        dispatcher = self.dispatcher
        if dispatcher is None:
            return
        try:
            note, key = _notification(kind, facts, self._now())
        except Exception:
            log.exception("could not make a %s notification", kind)
            return
        self._announce(dispatcher, [(note, key)])

    def _announce(
        self, dispatcher: NotificationDispatcher, notes: Sequence[tuple[Notification, str]]
    ) -> int:
        """Enqueue each notification under its key, one notice per notifier, in one
        transaction, and hand the new notices to the dispatcher (a key already there was
        announced before, or swept); without an outbox, or if the store fails, hand the
        notifications over unkept. Returns how many notices were handed over."""
        outbox = self._outbox()
        if outbox is not None:
            from handrail.notify.outbox import NewNotice

            now = self._now()
            by_key = {key: note for note, key in notes}
            notices = []
            for note, key in notes:
                body = json.dumps(note.to_dict(), separators=(",", ":"))
                notices += [NewNotice(n.name, key, note.kind, body, now) for n in self.notifiers]
            try:
                added = outbox.enqueue(
                    notices, holder=self._holder(), hold_until=now + self.hold_seconds
                )
            except Exception:
                log.exception("could not keep %d notification(s) in the store; sending "
                              "them unkept", len(notes))  # fmt: skip
            else:
                self._hold([n.notice_id for n in added])
                for notice in added:
                    dispatcher.submit(
                        by_key[notice.key], to=[notice.notifier], token=notice.notice_id
                    )
                return len(added)
        for note, _ in notes:
            dispatcher.submit(note)
        return len(notes) * len(self.notifiers)

    def alert(self, title: str, details: dict[str, Any], *, now: float | None = None) -> None:
        """Queue an ``alert`` notification (an alert rule fired or resolved); never raises.
        Alerts are not kept in the outbox: a restarted worker evaluates its rules anew."""
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

    def _settled(
        self, name: str, tokens: list[Any], outcome: Outcome, attempts: int, error: str | None
    ) -> None:
        """The dispatcher's report on kept notices: mark them, or hand them back."""
        with self._lock:
            self._held.difference_update(tokens)
        outbox = self._outbox()
        if outbox is None:
            return
        now = self._now()
        if outcome == "abandoned":
            outbox.release(tokens, now=now)
        else:
            outbox.settle(tokens, now=now, sent=outcome == "sent", attempts=attempts, error=error)

    # -- recovery (run by workers) -------------------------------------------------------

    def recover(self, *, sweep: bool = True) -> int:
        """Take over the notices nobody holds (their holder died or handed them back) and,
        with ``sweep``, enqueue a notice for every open approval request (and sent
        reminder) that has none; returns how many notices were handed to the dispatcher."""
        dispatcher = self.dispatcher
        outbox = self._outbox()
        if dispatcher is None or outbox is None:
            return 0
        handed = self._sweep(dispatcher) if sweep else 0
        names = [n.name for n in self.notifiers]
        for _ in range(CLAIM_ROUNDS):  # the rest waits for the next round
            now = self._now()
            notices = outbox.claim(
                names, holder=self._holder(), now=now, hold_until=now + self.hold_seconds
            )
            self._hold([n.notice_id for n in notices])
            for notice in notices:
                self._resubmit(dispatcher, notice)
            handed += len(notices)
            if len(notices) < 100:
                break
        return handed

    def _resubmit(self, dispatcher: NotificationDispatcher, notice: Notice) -> None:
        from handrail.notify import Notification

        try:
            note = Notification.from_dict(json.loads(notice.body))
        except Exception as exc:  # a body this version cannot read: give it up, visibly
            log.exception("notice %s (%s) cannot be read; giving it up",
                          notice.notice_id, notice.key)  # fmt: skip
            outbox = self._outbox()
            if outbox is not None:
                outbox.settle(
                    [notice.notice_id],
                    now=self._now(),
                    sent=False,
                    attempts=notice.attempts,
                    error=f"unreadable body: {type(exc).__name__}: {exc}",
                )
            return
        dispatcher.submit(note, to=[notice.notifier], token=notice.notice_id)

    def _sweep(self, dispatcher: NotificationDispatcher) -> int:
        """Enqueue what the journal says should have been announced and has no notice."""
        from handrail.decisions import list_approvals
        from handrail.notify import Notification

        assert self.store is not None
        notes: list[tuple[Notification, str]] = []
        for approval in list_approvals(self.store):
            request = approval.request
            rid = request.request_id
            notes.append((Notification.requested(request, now=request.created_at),
                          f"approval_requested:{rid}"))  # fmt: skip
            if approval.reminded_at is not None:
                notes.append((Notification.reminder(request, now=approval.reminded_at),
                              f"approval_reminder:{rid}"))  # fmt: skip
        return self._announce(dispatcher, notes) if notes else 0

    def _hold(self, notice_ids: list[int]) -> None:
        """Remember notices this process holds, and keep renewing their holds."""
        if not notice_ids:
            return
        with self._lock:
            self._held.update(notice_ids)
            self._ensure_loop()

    def renew(self) -> int:
        """Extend the holds on the notices the dispatcher has not settled yet (by
        ``hold_seconds`` from now); returns how many were renewed."""
        outbox = self._outbox()
        with self._lock:
            held = sorted(self._held)
        if outbox is None or not held:
            return 0
        until = self._now() + self.hold_seconds
        return outbox.renew(held, holder=self._holder(), hold_until=until)

    def start(self) -> None:
        """Run :meth:`recover` now and every ``recover_every`` seconds (sweeping every
        ``sweep_every``) on the notices thread, once for every :meth:`start` not
        stopped (workers call it)."""
        if self.dispatcher is None or self.store is None:
            return
        with self._lock:
            self._users += 1
            self._ensure_loop()
        self._wake.set()  # recover now, not at the next tick

    def stop(self) -> None:
        """Stop recovering once every :meth:`start` has its ``stop`` (holds this process
        has are still renewed until :meth:`close`)."""
        with self._lock:
            self._users = max(0, self._users - 1)

    def _ensure_loop(self) -> None:
        """Start the notices thread if it is not running (call with the lock held)."""
        if self._thread is None:
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="handrail-notices", daemon=True
            )
            self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        next_sweep = 0.0
        while not stop.is_set():
            try:
                self.renew()
                if self._users > 0:
                    sweep = time.monotonic() >= next_sweep
                    self.recover(sweep=sweep)
                    if sweep:
                        next_sweep = time.monotonic() + self.sweep_every
            except Exception:
                log.exception("keeping notifications failed; next try in %s s",
                              self.recover_every)  # fmt: skip
            self._wake.wait(self.recover_every)
            self._wake.clear()

    # -- shutdown ------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued notification was delivered or given up."""
        return True if self._dispatcher is None else self._dispatcher.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the notices thread and the dispatcher; what it could not send in
        ``timeout`` seconds is handed back to the outbox for another process (or the next
        start)."""
        with self._lock:
            self._users = 0
            thread, self._thread = self._thread, None
            self._stop.set()
            self._wake.set()
        if thread is not None:
            thread.join(timeout)
        if self._dispatcher is not None:
            self._dispatcher.close(timeout)
            self._dispatcher = None


def _notification(kind: str, facts: dict[str, Any], now: float) -> tuple[Notification, str]:
    """The notification of a journal fact, and its outbox key."""
    from handrail.notify import Notification

    if kind == "approval_requested":
        request = facts["request"]
        return Notification.requested(request, now=now), f"approval_requested:{request.request_id}"
    if kind == "approval_reminder":
        request = facts["request"]
        return Notification.reminder(request, now=now), f"approval_reminder:{request.request_id}"
    if kind == "approval_queue_full":
        note = Notification.queue_full(facts["group"], facts["cap"], facts["queued"], now=now)
        return note, f"approval_queue_full:{facts['task_id']}:{facts['step_index']}"
    raise ValueError(f"unknown notification kind {kind!r}")
