"""The notice outbox: notifications kept in the store until their notifier took them.

The engine announces a journal fact (an approval requested, a reminder, a full approval
queue) by *enqueuing* one notice per notifier, after the fact is committed. The process
that enqueued a notice *holds* it while its dispatcher sends it (retries and batching
included); a notice whose holder died, or gave it back, is *claimed* by another process
(or the same one after a restart) and sent from there. So a crash loses no notification:
at worst one is sent twice (the crash came after the notifier took it and before it was
marked sent).

A notice's ``key`` says what it is about (``approval_requested:<request id>``) and is
unique per notifier: enqueuing the same fact again (a sweep of open requests after a
restart) adds nothing.

Every store offers its outbox through ``Store.notice_outbox()``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["NewNotice", "Notice", "NoticeCounts", "NoticeOutbox", "NoticeState"]


@dataclass(frozen=True, slots=True)
class NewNotice:
    """A notice to enqueue."""

    notifier: str
    """The name of the notifier that is to send it."""
    key: str
    """What it is about, unique per notifier (``approval_requested:<request id>``)."""
    kind: str
    """The notification's kind (``approval_requested``, ...)."""
    body: str
    """The notification as JSON (``Notification.to_dict``)."""
    created_at: float


@dataclass(frozen=True, slots=True)
class Notice:
    """A notice in the outbox, not sent yet."""

    notice_id: int
    notifier: str
    key: str
    kind: str
    body: str
    created_at: float
    attempts: int
    """Failed send attempts so far (across holders)."""


@dataclass(frozen=True, slots=True)
class NoticeState:
    """A notice as the operator sees it (``handrail notifications list``): where it is
    (``queued``, ``sent`` or ``dropped``), who holds it, how many attempts failed and the
    last error."""

    notice_id: int
    notifier: str
    key: str
    kind: str
    created_at: float
    state: str
    attempts: int
    last_error: str | None
    held_by: str | None
    held_until: float | None
    sent_at: float | None
    dropped_at: float | None


@dataclass(frozen=True, slots=True)
class NoticeCounts:
    """One notifier's notices: ``queued`` (neither sent nor given up), ``sent``,
    ``dropped`` (given up after the dispatcher's last attempt; kept, with the error) and
    when the oldest queued one was enqueued."""

    queued: int
    sent: int
    dropped: int
    oldest_queued_at: float | None


class NoticeOutbox(Protocol):
    """The store's notice table (see the module docs)."""

    def enqueue(
        self, notices: Sequence[NewNotice], *, holder: str, hold_until: float
    ) -> list[Notice]:
        """Add each notice unless its notifier has one with its key already; return the
        ones added (in the order given), held by ``holder`` until ``hold_until``."""

    def claim(
        self,
        notifiers: Sequence[str],
        *,
        holder: str,
        now: float,
        hold_until: float,
        limit: int = 100,
    ) -> list[Notice]:
        """Queued notices of ``notifiers`` that nobody holds (never held, or the hold
        ended at or before ``now``), oldest first, at most ``limit``; they are now held
        by ``holder`` until ``hold_until``. Two claims never return the same notice while
        its hold lasts."""

    def settle(
        self,
        notice_ids: Sequence[int],
        *,
        now: float,
        sent: bool,
        attempts: int,
        error: str | None = None,
    ) -> None:
        """Mark notices sent (``sent=True``) or given up (``sent=False``, with the last
        ``error``), after ``attempts`` failed attempts; either way they leave the queue."""

    def renew(self, notice_ids: Sequence[int], *, holder: str, hold_until: float) -> int:
        """Extend to ``hold_until`` the hold of those queued notices that ``holder`` still
        holds (a notice another process claimed meanwhile stays theirs); returns how many
        were extended. The holder renews what its dispatcher has not settled yet, so a
        short hold suffices while it lives, and its notices are free soon after it dies."""

    def release(self, notice_ids: Sequence[int], *, now: float) -> None:
        """End the hold on queued notices (their holder stops without sending them), so
        the next claim takes them."""

    def counts(self) -> dict[str, NoticeCounts]:
        """Per notifier name, every notifier with notices in the outbox."""

    def list(
        self,
        *,
        notifier: str | None = None,
        state: str | None = None,
        limit: int = 100,
    ) -> list[NoticeState]:
        """Notices newest first (of one notifier; in one ``state``: ``queued``, ``sent``
        or ``dropped``), at most ``limit``."""

    def requeue(
        self, notice_ids: Sequence[int] | None = None, *, notifier: str | None = None
    ) -> int:
        """Put given-up notices back in the queue (the ``dropped`` ones among
        ``notice_ids``, or all of them, of ``notifier`` if given), unheld, their attempt
        count and last error kept, for the next claim; returns how many."""


# -- argument checks ---------------------------------------------------------------------


def _time(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number (seconds since the epoch), not {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, not {value!r}")
    return float(value)


def _text(name: str, value: object, *, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not empty and not value:
        raise ValueError(f"{name} must not be empty")
    return value


def _sequence(name: str, values: object) -> Sequence[object]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a sequence (a list or tuple), not {values!r}")
    return values


def _ids(notice_ids: object) -> list[int]:
    ids: dict[int, None] = {}
    for notice_id in _sequence("notice_ids", notice_ids):
        if isinstance(notice_id, bool) or not isinstance(notice_id, int):
            raise TypeError(f"a notice id must be an int, not {notice_id!r}")
        ids[notice_id] = None
    return list(ids)


def check_enqueue(
    notices: Sequence[NewNotice], holder: str, hold_until: float
) -> tuple[list[NewNotice], float]:
    """``notices`` without a repeat of an earlier one's notifier and key (the first is
    the one enqueued), and ``hold_until`` as a float; raises on bad arguments."""
    unique: dict[tuple[str, str], NewNotice] = {}
    for notice in _sequence("notices", notices):
        if not isinstance(notice, NewNotice):
            raise TypeError(f"enqueue takes NewNotice objects, not {type(notice).__name__}")
        _text("a notice's notifier", notice.notifier, empty=False)
        _text("a notice's key", notice.key, empty=False)
        _text("a notice's kind", notice.kind)
        _text("a notice's body", notice.body)
        checked = dataclasses.replace(notice, created_at=_time("created_at", notice.created_at))
        unique.setdefault((notice.notifier, notice.key), checked)
    _text("holder", holder, empty=False)
    return list(unique.values()), _time("hold_until", hold_until)


def check_claim(
    notifiers: Sequence[str], holder: str, now: float, hold_until: float, limit: int
) -> tuple[list[str], float, float]:
    """The distinct ``notifiers``, ``now`` and ``hold_until`` as floats; raises on bad
    arguments (``limit`` must be an int, 0 or more)."""
    names = [_text("a notifier", n, empty=False) for n in _sequence("notifiers", notifiers)]
    _text("holder", holder, empty=False)
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int, not {limit!r}")
    if limit < 0:
        raise ValueError(f"limit must be 0 or more, not {limit}")
    return list(dict.fromkeys(names)), _time("now", now), _time("hold_until", hold_until)


def check_settle(
    notice_ids: Sequence[int], now: float, sent: bool, attempts: int, error: str | None
) -> tuple[list[int], float]:
    """The distinct ``notice_ids`` and ``now`` as a float; raises on bad arguments."""
    if not isinstance(sent, bool):
        raise TypeError(f"sent must be a bool, not {sent!r}")
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        raise TypeError(f"attempts must be an int, not {attempts!r}")
    if attempts < 0:
        raise ValueError(f"attempts must be 0 or more, not {attempts}")
    if error is not None:
        _text("error", error)
    return _ids(notice_ids), _time("now", now)


def check_release(notice_ids: Sequence[int], now: float) -> tuple[list[int], float]:
    """The distinct ``notice_ids`` and ``now`` as a float; raises on bad arguments."""
    return _ids(notice_ids), _time("now", now)


def check_renew(
    notice_ids: Sequence[int], holder: str, hold_until: float
) -> tuple[list[int], float]:
    """The distinct ``notice_ids`` and ``hold_until`` as a float; raises on bad
    arguments."""
    _text("holder", holder, empty=False)
    return _ids(notice_ids), _time("hold_until", hold_until)


_STATES = ("queued", "sent", "dropped")


def check_list(notifier: str | None, state: str | None, limit: int) -> None:
    """Raises on bad arguments: ``notifier`` a name or ``None``, ``state`` one of
    ``queued``, ``sent``, ``dropped`` or ``None``, ``limit`` an int, 0 or more."""
    if notifier is not None:
        _text("notifier", notifier, empty=False)
    if state is not None and (not isinstance(state, str) or state not in _STATES):
        allowed = ", ".join(repr(s) for s in _STATES)
        raise ValueError(f"state must be one of {allowed} (or None), not {state!r}")
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int, not {limit!r}")
    if limit < 0:
        raise ValueError(f"limit must be 0 or more, not {limit}")


def check_requeue(notice_ids: Sequence[int] | None, notifier: str | None) -> list[int] | None:
    """The distinct ``notice_ids`` (``None``: every dropped notice); raises on bad
    arguments."""
    if notifier is not None:
        _text("notifier", notifier, empty=False)
    return None if notice_ids is None else _ids(notice_ids)
