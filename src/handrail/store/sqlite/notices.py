"""The notice outbox in the SQLite store's file (table ``handrail_notices``, migration
0005).

Every write runs in the store's group commit (``BEGIN IMMEDIATE``: one writer at a time
across every process on the file), so two claims never take the same notice; ``counts``
and ``list`` read on the store's reader connection of the calling thread. The store closes
the outbox before its connections, and closing waits for the calls under way: a connection
closed under a running statement (a dispatcher thread settling while the store closes) may
crash the process, not just fail.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from handrail.errors import StoreError
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
from handrail.store._sql import load_queries

__all__ = ["SQLiteNoticeOutbox"]

T = TypeVar("T")
_Q = load_queries("handrail.store.sqlite", "notices.sql")


class Runner(Protocol):
    """Runs a function on a connection of the store and returns its result: the store's
    group commit (``GroupCommitter.run``) for writes, its ``_read`` for reads."""

    def __call__(self, fn: Callable[[sqlite3.Connection], T], /) -> T: ...


class SQLiteNoticeOutbox:
    """A :class:`~handrail.notify.outbox.NoticeOutbox` over the store's connections:
    ``commit`` runs writes, ``read`` runs reads (both translate SQLite's errors)."""

    def __init__(self, commit: Runner, read: Runner) -> None:
        self._commit = commit
        self._read = read
        self._closed = False
        self._running = 0  # calls under way
        self._idle = threading.Condition()

    def close(self) -> None:
        """Refuse further calls and wait for those under way (the store owns the
        connections and closes them after this)."""
        with self._idle:
            self._closed = True
            self._idle.wait_for(lambda: self._running == 0)

    def _call(self, run: Runner, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._idle:
            if self._closed:
                raise StoreError("the notice outbox is closed")
            self._running += 1
        try:
            return run(fn)
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return self._call(self._commit, fn)

    def enqueue(
        self, notices: Sequence[NewNotice], *, holder: str, hold_until: float
    ) -> list[Notice]:
        new, until = check_enqueue(notices, holder, hold_until)
        if not new:
            return []

        def op(conn: sqlite3.Connection) -> list[Notice]:
            added: list[Notice] = []
            for n in new:
                params = {
                    "notifier": n.notifier,
                    "key": n.key,
                    "kind": n.kind,
                    "body": n.body,
                    "created_at": n.created_at,
                    "holder": holder,
                    "hold_until": until,
                }
                for (notice_id,) in conn.execute(_Q["enqueue"], params).fetchall():
                    added.append(
                        Notice(notice_id, n.notifier, n.key, n.kind, n.body, n.created_at, 0)
                    )
            return added

        return self._write(op)

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
        if not names or limit == 0:
            return []
        params = {
            "notifiers": json.dumps(names),
            "holder": holder,
            "now": at,
            "hold_until": until,
            "limit": limit,
        }
        rows = self._write(lambda conn: conn.execute(_Q["claim"], params).fetchall())
        return sorted((Notice(*r) for r in rows), key=lambda n: n.notice_id)

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
        if not ids:
            return
        params = {
            "ids": json.dumps(ids),
            "now": at,
            "sent": 1 if sent else 0,
            "attempts": attempts,
            "error": error,
        }
        self._write(lambda conn: conn.execute(_Q["settle"], params))

    def renew(self, notice_ids: Sequence[int], *, holder: str, hold_until: float) -> int:
        ids, until = check_renew(notice_ids, holder, hold_until)
        if not ids:
            return 0
        params = {"ids": json.dumps(ids), "holder": holder, "hold_until": until}
        return self._write(lambda conn: conn.execute(_Q["renew"], params).rowcount)

    def release(self, notice_ids: Sequence[int], *, now: float) -> None:
        ids, at = check_release(notice_ids, now)
        if not ids:
            return
        params = {"ids": json.dumps(ids), "now": at}
        self._write(lambda conn: conn.execute(_Q["release"], params))

    def counts(self) -> dict[str, NoticeCounts]:
        rows = self._call(self._read, lambda conn: conn.execute(_Q["counts"]).fetchall())
        return {r[0]: NoticeCounts(r[1], r[2], r[3], r[4]) for r in rows}

    def list(
        self,
        *,
        notifier: str | None = None,
        state: str | None = None,
        limit: int = 100,
    ) -> list[NoticeState]:
        check_list(notifier, state, limit)
        if limit == 0:
            return []
        params = {"notifier": notifier, "state": state, "limit": limit}
        rows = self._call(self._read, lambda conn: conn.execute(_Q["list"], params).fetchall())
        return [NoticeState(*r) for r in rows]

    def requeue(
        self, notice_ids: Sequence[int] | None = None, *, notifier: str | None = None
    ) -> int:
        ids = check_requeue(notice_ids, notifier)
        if ids is not None and not ids:
            return 0
        params = {"ids": None if ids is None else json.dumps(ids), "notifier": notifier}
        return self._write(lambda conn: conn.execute(_Q["requeue"], params).rowcount)


if TYPE_CHECKING:  # the backend implements the protocol (checked by mypy, never run)
    from handrail.notify.outbox import NoticeOutbox

    def _conforms(outbox: SQLiteNoticeOutbox) -> NoticeOutbox:
        return outbox
