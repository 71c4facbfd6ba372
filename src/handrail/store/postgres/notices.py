"""The notice outbox in the PostgreSQL store's database (table ``handrail_notices``,
migration 0006).

Every call is one statement on a connection of the store's pool, run as a transaction of
its own (autocommit): committed when it returns. A claim locks the rows it takes with
``FOR UPDATE SKIP LOCKED``, so claimers in any number of processes never wait for each
other and never take the same notice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

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

if TYPE_CHECKING:
    import psycopg

    _Conn = psycopg.Connection[tuple[Any, ...]]

__all__ = ["PostgresNoticeOutbox"]

T = TypeVar("T")
_Q = load_queries("handrail.store.postgres", "notices.sql")


class Runner(Protocol):
    """Runs a function that sends one statement, as a transaction of its own, and returns
    its result (the store's ``_write``, which translates the driver's errors)."""

    def __call__(self, fn: Callable[[_Conn], T], /) -> T: ...


class PostgresNoticeOutbox:
    """A :class:`~handrail.notify.outbox.NoticeOutbox` over the store's pool; ``run``
    sends each call's statement."""

    def __init__(self, run: Runner) -> None:
        self._run_statement = run
        self._closed = False

    def close(self) -> None:
        """Refuse further calls (the store owns the pool and closes it)."""
        self._closed = True

    def _run(self, fn: Callable[[_Conn], T]) -> T:
        if self._closed:
            raise StoreError("the notice outbox is closed")
        return self._run_statement(fn)

    def enqueue(
        self, notices: Sequence[NewNotice], *, holder: str, hold_until: float
    ) -> list[Notice]:
        new, until = check_enqueue(notices, holder, hold_until)
        if not new:
            return []
        params = {
            "notifier": [n.notifier for n in new],
            "key": [n.key for n in new],
            "kind": [n.kind for n in new],
            "body": [n.body for n in new],
            "created_at": [n.created_at for n in new],
            "holder": holder,
            "hold_until": until,
        }
        rows = self._run(lambda conn: conn.execute(_Q["enqueue"], params).fetchall())
        ids = {(notifier, key): notice_id for notice_id, notifier, key in rows}
        return [
            Notice(ids[n.notifier, n.key], n.notifier, n.key, n.kind, n.body, n.created_at, 0)
            for n in new
            if (n.notifier, n.key) in ids
        ]

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
            "notifiers": names,
            "holder": holder,
            "now": at,
            "hold_until": until,
            "limit": limit,
        }
        rows = self._run(lambda conn: conn.execute(_Q["claim"], params).fetchall())
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
        params = {"ids": ids, "now": at, "sent": sent, "attempts": attempts, "error": error}
        self._run(lambda conn: conn.execute(_Q["settle"], params))

    def renew(self, notice_ids: Sequence[int], *, holder: str, hold_until: float) -> int:
        ids, until = check_renew(notice_ids, holder, hold_until)
        if not ids:
            return 0
        params = {"ids": ids, "holder": holder, "hold_until": until}
        return self._run(lambda conn: conn.execute(_Q["renew"], params).rowcount)

    def release(self, notice_ids: Sequence[int], *, now: float) -> None:
        ids, at = check_release(notice_ids, now)
        if not ids:
            return
        params = {"ids": ids, "now": at}
        self._run(lambda conn: conn.execute(_Q["release"], params))

    def counts(self) -> dict[str, NoticeCounts]:
        rows = self._run(lambda conn: conn.execute(_Q["counts"]).fetchall())
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
        rows = self._run(lambda conn: conn.execute(_Q["list"], params).fetchall())
        return [NoticeState(*r) for r in rows]

    def requeue(
        self, notice_ids: Sequence[int] | None = None, *, notifier: str | None = None
    ) -> int:
        ids = check_requeue(notice_ids, notifier)
        if ids is not None and not ids:
            return 0
        params = {"ids": ids, "notifier": notifier}
        return self._run(lambda conn: conn.execute(_Q["requeue"], params).rowcount)


if TYPE_CHECKING:  # the backend implements the protocol (checked by mypy, never run)
    from handrail.notify.outbox import NoticeOutbox

    def _conforms(outbox: PostgresNoticeOutbox) -> NoticeOutbox:
        return outbox
