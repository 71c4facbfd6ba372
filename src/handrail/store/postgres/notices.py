"""The notice outbox in the PostgreSQL store's database (table ``handrail_notices``,
migration 0006): :class:`~handrail.store._notices.SQLNoticeOutbox` with PostgreSQL's
queries.

Every call is one statement on a connection of the store's pool, run as a transaction of
its own (autocommit): committed when it returns. A claim locks the rows it takes with
``FOR UPDATE SKIP LOCKED``, so claimers in any number of processes never wait for each
other and never take the same notice. Lists travel as arrays; a batch is inserted in one
statement through ``unnest``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from handrail.notify.outbox import NewNotice, Notice
from handrail.store._notices import Runner, SQLNoticeOutbox
from handrail.store._sql import load_queries

if TYPE_CHECKING:
    import psycopg

    _Conn = psycopg.Connection[tuple[Any, ...]]
else:
    _Conn = Any

__all__ = ["PostgresNoticeOutbox"]

_Q = load_queries("handrail.store.postgres", "notices.sql")


class PostgresNoticeOutbox(SQLNoticeOutbox[_Conn]):
    """The outbox over the store's pool; ``run`` sends each call's statement (the store's
    ``_write``: one statement, one transaction, the driver's errors translated)."""

    def __init__(self, run: Runner[_Conn]) -> None:
        super().__init__(_Q, write=run, read=run, as_list=list)

    def _insert(
        self, conn: _Conn, new: list[NewNotice], holder: str, hold_until: float
    ) -> list[Notice]:
        params = {
            "notifier": [n.notifier for n in new],
            "key": [n.key for n in new],
            "kind": [n.kind for n in new],
            "body": [n.body for n in new],
            "created_at": [n.created_at for n in new],
            "holder": holder,
            "hold_until": hold_until,
        }
        rows = conn.execute(_Q["enqueue"], params).fetchall()
        ids = {(notifier, key): notice_id for notice_id, notifier, key in rows}
        return [
            Notice(ids[n.notifier, n.key], n.notifier, n.key, n.kind, n.body, n.created_at, 0)
            for n in new
            if (n.notifier, n.key) in ids
        ]


if TYPE_CHECKING:  # the backend implements the protocol (checked by mypy, never run)
    from handrail.notify.outbox import NoticeOutbox

    def _conforms(outbox: PostgresNoticeOutbox) -> NoticeOutbox:
        return outbox
