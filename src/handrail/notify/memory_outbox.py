"""The notice outbox in this process's memory (the in-memory store's).

:class:`MemoryNoticeOutbox` behaves like the database tables (ids ascending from 1, a
notice kept after it was sent or dropped, one hold at a time) under one lock. Nothing
survives the process.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from handrail.notify.outbox import (
    NewNotice,
    Notice,
    NoticeCounts,
    NoticeState,
    check_claim,
    check_enqueue,
    check_list,
    check_release,
    check_renew,
    check_requeue,
    check_settle,
)

__all__ = ["MemoryNoticeOutbox"]


# -- the outbox --------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Row:
    notice: Notice
    held_by: str | None
    held_until: float | None
    last_error: str | None = None
    sent_at: float | None = None
    dropped_at: float | None = None


class MemoryNoticeOutbox:
    """A :class:`~handrail.notify.outbox.NoticeOutbox` in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[int, _Row] = {}  # every notice, by id
        self._queued: dict[int, _Row] = {}  # neither sent nor dropped, in id order
        self._keys: set[tuple[str, str]] = set()
        self._next_id = 1

    def enqueue(
        self, notices: Sequence[NewNotice], *, holder: str, hold_until: float
    ) -> list[Notice]:
        new, until = check_enqueue(notices, holder, hold_until)
        added: list[Notice] = []
        with self._lock:
            for n in new:
                if (n.notifier, n.key) in self._keys:
                    continue
                notice = Notice(self._next_id, n.notifier, n.key, n.kind, n.body, n.created_at, 0)
                self._next_id += 1
                self._keys.add((n.notifier, n.key))
                row = _Row(notice, holder, until)
                self._rows[notice.notice_id] = self._queued[notice.notice_id] = row
                added.append(notice)
        return added

    def claim(
        self,
        notifiers: Sequence[str],
        *,
        holder: str,
        now: float,
        hold_until: float,
        limit: int = 100,
    ) -> list[Notice]:
        names, at, until = check_claim(notifiers, holder, now, hold_until, limit)
        wanted = set(names)
        claimed: list[Notice] = []
        with self._lock:
            for row in self._queued.values():
                if len(claimed) >= limit:
                    break
                if row.notice.notifier not in wanted:
                    continue
                if row.held_until is not None and row.held_until > at:
                    continue
                row.held_by, row.held_until = holder, until
                claimed.append(row.notice)
        return claimed

    def settle(
        self,
        notice_ids: Sequence[int],
        *,
        now: float,
        sent: bool,
        attempts: int,
        error: str | None = None,
    ) -> None:
        ids, at = check_settle(notice_ids, now, sent, attempts, error)
        with self._lock:
            for notice_id in ids:
                row = self._queued.pop(notice_id, None)
                if row is None:
                    continue
                row.notice = dataclasses.replace(row.notice, attempts=attempts)
                row.held_by = row.held_until = None
                row.last_error = error
                if sent:
                    row.sent_at = at
                else:
                    row.dropped_at = at

    def renew(self, notice_ids: Sequence[int], *, holder: str, hold_until: float) -> int:
        ids, until = check_renew(notice_ids, holder, hold_until)
        renewed = 0
        with self._lock:
            for notice_id in ids:
                row = self._queued.get(notice_id)
                if row is not None and row.held_by == holder:
                    row.held_until = until
                    renewed += 1
        return renewed

    def release(self, notice_ids: Sequence[int], *, now: float) -> None:
        ids, at = check_release(notice_ids, now)
        with self._lock:
            for notice_id in ids:
                row = self._queued.get(notice_id)
                if row is not None:
                    row.held_by, row.held_until = None, at

    def counts(self) -> dict[str, NoticeCounts]:
        tally: dict[str, list[int]] = {}
        oldest: dict[str, float] = {}
        with self._lock:
            for row in self._rows.values():
                name = row.notice.notifier
                counts = tally.setdefault(name, [0, 0, 0])
                if row.sent_at is not None:
                    counts[1] += 1
                elif row.dropped_at is not None:
                    counts[2] += 1
                else:
                    counts[0] += 1
                    created = row.notice.created_at
                    oldest[name] = min(oldest.get(name, created), created)
        return {
            name: NoticeCounts(q, s, d, oldest.get(name))
            for name, (q, s, d) in sorted(tally.items())
        }

    def list(
        self,
        *,
        notifier: str | None = None,
        state: str | None = None,
        limit: int = 100,
    ) -> list[NoticeState]:
        check_list(notifier, state, limit)
        found: list[NoticeState] = []
        if limit == 0:
            return found
        with self._lock:
            for row in reversed(self._rows.values()):  # newest first
                if notifier is not None and row.notice.notifier != notifier:
                    continue
                row_state = _state(row)
                if state is not None and row_state != state:
                    continue
                n = row.notice
                found.append(
                    NoticeState(
                        n.notice_id,
                        n.notifier,
                        n.key,
                        n.kind,
                        n.created_at,
                        row_state,
                        n.attempts,
                        row.last_error,
                        row.held_by,
                        row.held_until,
                        row.sent_at,
                        row.dropped_at,
                    )
                )
                if len(found) >= limit:
                    break
        return found

    def requeue(
        self, notice_ids: Sequence[int] | None = None, *, notifier: str | None = None
    ) -> int:
        ids = check_requeue(notice_ids, notifier)
        if ids is not None and not ids:
            return 0
        requeued = 0
        with self._lock:
            rows: Iterable[_Row | None] = (
                self._rows.values() if ids is None else map(self._rows.get, ids)
            )
            for row in rows:
                if row is None or _state(row) != "dropped":
                    continue
                if notifier is not None and row.notice.notifier != notifier:
                    continue
                row.dropped_at = row.held_by = row.held_until = None
                self._queued[row.notice.notice_id] = row
                requeued += 1
            if requeued:  # back in id order, which claims take
                self._queued = dict(sorted(self._queued.items()))
        return requeued

    def last_error(self, notice_id: int) -> str | None:
        """The error a notice was settled with (for tests; the tables keep it too)."""
        with self._lock:
            row = self._rows.get(notice_id)
            return None if row is None else row.last_error


def _state(row: _Row) -> str:
    if row.sent_at is not None:
        return "sent"
    if row.dropped_at is not None:
        return "dropped"
    return "queued"


if TYPE_CHECKING:  # the outbox implements the protocol (checked by mypy, never run)
    from handrail.notify.outbox import NoticeOutbox

    _CONFORMS: NoticeOutbox = MemoryNoticeOutbox()
