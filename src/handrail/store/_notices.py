"""The notice outbox over SQL (``handrail_notices``), shared by the SQLite and PostgreSQL
stores: each gives its named queries, how it passes a list parameter (JSON text for
SQLite's ``json_each``, an array for PostgreSQL) and how it inserts a batch.

Every write is one transaction through the store's ``write`` runner; reads go through its
``read`` runner. :meth:`SQLNoticeOutbox.close` refuses further calls and waits for those
under way, because the store closes the connections right after it: a SQLite connection
closed under a running statement (a dispatcher thread settling while the app closes) can
crash the process, not just fail.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

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

__all__ = ["Runner", "SQLNoticeOutbox"]

C = TypeVar("C")
C_co = TypeVar("C_co", covariant=True)
T = TypeVar("T")


class Runner(Protocol[C_co]):
    """Runs a function on one of the store's connections and returns its result (a write
    runner as one transaction), translating the driver's errors."""

    def __call__(self, fn: Callable[[C_co], T], /) -> T: ...


class SQLNoticeOutbox(ABC, Generic[C]):
    """A :class:`~handrail.notify.outbox.NoticeOutbox` over a store's connections."""

    def __init__(
        self,
        queries: Mapping[str, str],
        *,
        write: Runner[C],
        read: Runner[C],
        as_list: Callable[[list[Any]], Any],
    ) -> None:
        self._q = queries
        self._write_runner = write
        self._read_runner = read
        self._as_list = as_list
        self._closed = False
        self._running = 0  # calls under way
        self._idle = threading.Condition()

    def close(self) -> None:
        """Refuse further calls and wait for those under way (the store owns the
        connections and closes them after this)."""
        with self._idle:
            self._closed = True
            self._idle.wait_for(lambda: self._running == 0)

    def _call(self, run: Runner[C], fn: Callable[[C], T]) -> T:
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

    def _write(self, fn: Callable[[C], T]) -> T:
        return self._call(self._write_runner, fn)

    def _read(self, fn: Callable[[C], T]) -> T:
        return self._call(self._read_runner, fn)

    def _execute(self, conn: C, name: str, params: Mapping[str, Any] | None = None) -> Any:
        return conn.execute(self._q[name], params or {})  # type: ignore[attr-defined]

    @abstractmethod
    def _insert(
        self, conn: C, new: list[NewNotice], holder: str, hold_until: float
    ) -> list[Notice]:
        """Insert ``new`` (distinct notifier and key pairs) in one transaction, skipping a
        pair that is there; return the inserted ones in the given order (each backend
        its own way: SQLite a statement a row, PostgreSQL one ``unnest``)."""

    def enqueue(
        self, notices: Sequence[NewNotice], *, holder: str, hold_until: float
    ) -> list[Notice]:
        new, until = check_enqueue(notices, holder, hold_until)
        if not new:
            return []
        return self._write(lambda conn: self._insert(conn, new, holder, until))

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
            "notifiers": self._as_list(names),
            "holder": holder,
            "now": at,
            "hold_until": until,
            "limit": limit,
        }
        rows = self._write(lambda conn: self._execute(conn, "claim", params).fetchall())
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
            "ids": self._as_list(ids),
            "now": at,
            "sent": sent,
            "attempts": attempts,
            "error": error,
        }
        self._write(lambda conn: self._execute(conn, "settle", params))

    def renew(self, notice_ids: Sequence[int], *, holder: str, hold_until: float) -> int:
        ids, until = check_renew(notice_ids, holder, hold_until)
        if not ids:
            return 0
        params = {"ids": self._as_list(ids), "holder": holder, "hold_until": until}
        renewed: int = self._write(lambda conn: self._execute(conn, "renew", params).rowcount)
        return renewed

    def release(self, notice_ids: Sequence[int], *, now: float) -> None:
        ids, at = check_release(notice_ids, now)
        if not ids:
            return
        params = {"ids": self._as_list(ids), "now": at}
        self._write(lambda conn: self._execute(conn, "release", params))

    def counts(self) -> dict[str, NoticeCounts]:
        rows = self._read(lambda conn: self._execute(conn, "counts").fetchall())
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
        rows = self._read(lambda conn: self._execute(conn, "list", params).fetchall())
        return [NoticeState(*r) for r in rows]

    def requeue(
        self, notice_ids: Sequence[int] | None = None, *, notifier: str | None = None
    ) -> int:
        ids = check_requeue(notice_ids, notifier)
        if ids is not None and not ids:
            return 0
        params = {"ids": None if ids is None else self._as_list(ids), "notifier": notifier}
        count: int = self._write(lambda conn: self._execute(conn, "requeue", params).rowcount)
        return count
