"""Hands notifications to notifiers without ever holding up or failing the caller.

Each notifier gets its own queue and daemon thread, so a slow or failing notifier delays
nobody else. The thread waits up to ``batch_window`` seconds after the oldest queued
notification (or until ``max_batch`` are queued) and sends them as one batch. A batch that
fails is logged (logger ``handrail.notify``) and retried with exponential back-off and
jitter, up to ``max_attempts``; then it is logged as an error, dropped and counted.

A notification may carry a ``token`` (:meth:`NotificationDispatcher.submit`): the
dispatcher then tells its ``on_settled`` callback how each token's notification ended
(sent, given up, or abandoned at shutdown), which is how the durable outbox
(:mod:`handrail.notify.outbox`) learns what to mark sent and what to hand back.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from handrail.errors import ConfigurationError
from handrail.notify.base import Notification, Notifier

logger = logging.getLogger("handrail.notify")


@dataclass(frozen=True, slots=True)
class NotifierStats:
    """What one notifier has done: notifications ``sent`` and ``dropped``, failed send
    attempts, and the ``backlog`` still queued or being sent."""

    sent: int
    failed_attempts: int
    dropped: int
    backlog: int


def backoff_delay(
    attempt: int,
    *,
    initial: float,
    maximum: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed ``attempt`` (1-based): ``initial * 2**(attempt-1)``
    capped at ``maximum``, of which the upper half is random ("equal jitter"), so the wait
    still grows with each attempt."""
    ceiling = min(maximum, initial * 2.0 ** min(attempt - 1, 64))
    return ceiling / 2 + rand() * ceiling / 2


Outcome = Literal["sent", "dropped", "abandoned"]
"""How a notification ended: its notifier took it; it was given up after the last attempt
(or the notifier was closed); or the dispatcher stopped before it was sent."""

SettledCallback = Callable[[str, list[Any], Outcome, int, "str | None"], None]
"""``on_settled(notifier name, tokens, outcome, failed attempts, last error)``."""


def _describe(exc: BaseException) -> str:
    text = str(exc).partition("\n")[0]  # httpx adds a line of advice after the error
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Lane:
    """One notifier's queue, counters and thread. Every field is guarded by ``cond``."""

    def __init__(self, notifier: Notifier, owner: NotificationDispatcher) -> None:
        self.notifier = notifier
        self.owner = owner
        self.cond = threading.Condition()
        self.pending: deque[tuple[float, Notification, Any]] = deque()
        self.in_flight = 0
        self.in_flight_tokens: list[Any] = []
        self.sent = 0
        self.failed_attempts = 0
        self.dropped = 0
        self.hurry = False
        self.closing = False
        self.thread = threading.Thread(
            target=self._run, name=f"handrail-notify-{notifier.name}", daemon=True
        )

    def put(self, notification: Notification, token: Any = None) -> None:
        overflow: Notification | None = None
        overflow_token: Any = None
        with self.cond:
            if self.closing:
                self.dropped += 1
            else:
                if len(self.pending) >= self.owner.max_backlog:
                    _, overflow, overflow_token = self.pending.popleft()
                    self.dropped += 1
                self.pending.append((time.monotonic(), notification, token))
                self.cond.notify_all()
            closing = self.closing
        if closing:
            self.owner.settled(self.notifier.name, [token], "abandoned", 0, None)
        elif overflow is not None:
            self.owner.settled(self.notifier.name, [overflow_token], "abandoned", 0, None)
        # Logged outside the lock: a slow log handler must not hold up the sender thread.
        if closing:
            logger.warning(
                "notifier %r is closed; dropped notification %r",
                self.notifier.name,
                notification.title,
            )
        elif overflow is not None:
            logger.warning(
                "notifier %r has %d notifications queued; dropped the oldest, %r",
                self.notifier.name,
                self.owner.max_backlog,
                overflow.title,
            )

    def stats(self) -> NotifierStats:
        with self.cond:
            backlog = len(self.pending) + self.in_flight
            return NotifierStats(self.sent, self.failed_attempts, self.dropped, backlog)

    def _run(self) -> None:
        while (batch := self._collect()) is not None:
            self._deliver([n for n, _ in batch], [t for _, t in batch])
            with self.cond:
                self.in_flight = 0
                self.in_flight_tokens = []
                self.cond.notify_all()

    def _collect(self) -> list[tuple[Notification, Any]] | None:
        """The next batch, once its window has passed; ``None`` when closed and drained."""
        owner = self.owner
        with self.cond:
            while not self.pending:
                if self.closing:
                    return None
                self.cond.wait()
            if owner.abandoned.is_set():
                self._drop_pending()
                return None
            deadline = self.pending[0][0] + owner.batch_window
            while len(self.pending) < owner.max_batch and not (self.closing or self.hurry):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.cond.wait(remaining)
            count = min(owner.max_batch, len(self.pending))
            batch = [self.pending.popleft()[1:] for _ in range(count)]
            self.in_flight = count
            self.in_flight_tokens = [token for _, token in batch]
            if not self.pending:
                self.hurry = False
            return batch

    def _drop_pending(self) -> None:
        if self.pending:
            logger.error(
                "notifier %r dropped %d queued notification(s) at shutdown",
                self.notifier.name,
                len(self.pending),
            )
            self.dropped += len(self.pending)
            tokens = [token for _, _, token in self.pending]
            self.pending.clear()
            self.owner.settled(self.notifier.name, tokens, "abandoned", 0, None)
        self.cond.notify_all()

    def _deliver(self, batch: list[Notification], tokens: list[Any]) -> None:
        """Send ``batch``, retrying with back-off; count it as sent or dropped."""
        owner, name, size = self.owner, self.notifier.name, len(batch)
        outcome: Outcome = "dropped"
        error: str | None = None
        for attempt in range(1, owner.max_attempts + 1):
            try:
                self.notifier.send(batch)
            except Exception as exc:
                error = _describe(exc)
                with self.cond:
                    self.failed_attempts += 1
                if attempt == owner.max_attempts:
                    logger.error(
                        "notifier %r gave up on %d notification(s) after %d attempts: %s",
                        name,
                        size,
                        attempt,
                        _describe(exc),
                        exc_info=exc,
                    )
                    break
                delay = backoff_delay(
                    attempt, initial=owner.initial_backoff, maximum=owner.max_backoff
                )
                logger.warning(
                    "notifier %r failed to send %d notification(s) (attempt %d of %d): %s; "
                    "retrying in %.2f s",
                    name,
                    size,
                    attempt,
                    owner.max_attempts,
                    _describe(exc),
                    delay,
                )
                if owner.abandoned.wait(delay):
                    logger.error(
                        "notifier %r dropped %d notification(s) at shutdown after %d attempt(s)",
                        name,
                        size,
                        attempt,
                    )
                    outcome = "abandoned"
                    break
            else:
                with self.cond:
                    self.sent += size
                if attempt > 1:
                    logger.info(
                        "notifier %r sent %d notification(s) at attempt %d", name, size, attempt
                    )
                if not owner.abandoned.is_set():  # else close() handed them back already
                    owner.settled(name, tokens, "sent", attempt - 1, None)
                return
        with self.cond:
            self.dropped += size
        if not owner.abandoned.is_set():
            owner.settled(name, tokens, outcome, attempt, error)


class NotificationDispatcher:
    """Queues notifications for each notifier and delivers them in batches, with retries.

    :meth:`submit` never blocks and never raises. Use :meth:`flush` to wait for delivery
    and :meth:`close` (or ``with``) to stop.
    """

    def __init__(
        self,
        notifiers: Iterable[Notifier],
        *,
        batch_window: float = 1.0,
        max_batch: int = 20,
        initial_backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_attempts: int = 8,
        max_backlog: int = 10_000,
        on_settled: SettledCallback | None = None,
    ) -> None:
        notifiers = list(notifiers)
        names = [notifier.name for notifier in notifiers]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"notifier names must be unique, got {names}")
        if batch_window < 0 or initial_backoff < 0 or max_backoff < initial_backoff:
            raise ConfigurationError(
                "need batch_window >= 0 and 0 <= initial_backoff <= max_backoff"
            )
        if max_batch < 1 or max_attempts < 1 or max_backlog < 1:
            raise ConfigurationError("max_batch, max_attempts and max_backlog must be >= 1")
        self.batch_window = batch_window
        self.max_batch = max_batch
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_attempts = max_attempts
        self.max_backlog = max_backlog
        self.on_settled = on_settled
        self.abandoned = threading.Event()
        self._lanes = {notifier.name: _Lane(notifier, self) for notifier in notifiers}
        for lane in self._lanes.values():
            lane.thread.start()

    def submit(
        self, notification: Notification, *, to: Collection[str] | None = None, token: Any = None
    ) -> None:
        """Queue ``notification`` for every notifier (or only those named in ``to``). A
        ``token`` (not ``None``) is handed to ``on_settled`` when its delivery ends."""
        try:
            if to is not None and (unknown := set(to) - set(self._lanes)):
                logger.warning(
                    "no notifier named %s; known: %s", sorted(unknown), list(self._lanes)
                )
            for name, lane in self._lanes.items():
                if to is None or name in to:
                    lane.put(notification, token)
        except Exception:
            logger.exception("could not queue notification %r", notification)

    def settled(
        self, name: str, tokens: list[Any], outcome: Outcome, attempts: int, error: str | None
    ) -> None:
        """Tell ``on_settled`` how the notifications of ``tokens`` ended; never raises."""
        tokens = [token for token in tokens if token is not None]
        if not tokens or self.on_settled is None:
            return
        try:
            self.on_settled(name, tokens, outcome, attempts, error)
        except Exception:
            logger.exception("recording the %s of %d notification(s) failed", outcome, len(tokens))

    def stats(self) -> dict[str, NotifierStats]:
        """Counters per notifier name."""
        return {name: lane.stats() for name, lane in self._lanes.items()}

    def flush(self, timeout: float | None = None) -> bool:
        """Send what is queued now, without waiting out the batch window, and wait until
        all of it was sent or dropped. ``False`` if ``timeout`` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for lane in self._lanes.values():
            with lane.cond:
                if lane.pending:
                    lane.hurry = True
                    lane.cond.notify_all()
                while lane.pending or lane.in_flight:
                    if not lane.thread.is_alive():
                        return False
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    lane.cond.wait(remaining)
        return True

    def close(self, timeout: float | None = 10.0) -> bool:
        """Stop taking notifications, send what is queued and stop the threads. After
        ``timeout`` seconds, what is still queued or retrying is dropped (and logged);
        returns ``False`` then."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for lane in self._lanes.values():
            with lane.cond:
                lane.closing = True
                lane.cond.notify_all()
        for lane in self._lanes.values():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            lane.thread.join(remaining)
        if any(lane.thread.is_alive() for lane in self._lanes.values()):
            self.abandoned.set()
            for lane in self._lanes.values():
                with lane.cond:
                    lane._drop_pending()
                    # a batch still being sent (or backing off) is handed back too: its
                    # thread reports nothing more once ``abandoned`` is set
                    tokens, lane.in_flight_tokens = lane.in_flight_tokens, []
                self.settled(lane.notifier.name, tokens, "abandoned", 0, None)
            return False
        return True

    def __enter__(self) -> NotificationDispatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
