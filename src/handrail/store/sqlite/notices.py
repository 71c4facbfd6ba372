"""The notice outbox in the SQLite store's file (table ``handrail_notices``, migration
0005): :class:`~handrail.store._notices.SQLNoticeOutbox` with SQLite's queries.

Every write runs in the store's group commit (``BEGIN IMMEDIATE``: one writer at a time
across every process on the file), so two claims never take the same notice; ``counts``
and ``list`` read on the store's reader connection of the calling thread. Lists travel as
JSON text, read with ``json_each``.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING

from handrail.notify.outbox import NewNotice, Notice
from handrail.store._notices import Runner, SQLNoticeOutbox
from handrail.store._sql import load_queries

__all__ = ["SQLiteNoticeOutbox"]

_Q = load_queries("handrail.store.sqlite", "notices.sql")


class SQLiteNoticeOutbox(SQLNoticeOutbox[sqlite3.Connection]):
    """The outbox over the store's connections: ``commit`` runs writes (the group
    commit), ``read`` runs reads; both translate SQLite's errors."""

    def __init__(self, commit: Runner[sqlite3.Connection], read: Runner[sqlite3.Connection]):
        super().__init__(_Q, write=commit, read=read, as_list=json.dumps)

    def _insert(
        self, conn: sqlite3.Connection, new: list[NewNotice], holder: str, hold_until: float
    ) -> list[Notice]:
        added: list[Notice] = []
        for n in new:  # RETURNING rows of one statement at a time: no executemany
            params = {
                "notifier": n.notifier,
                "key": n.key,
                "kind": n.kind,
                "body": n.body,
                "created_at": n.created_at,
                "holder": holder,
                "hold_until": hold_until,
            }
            for (notice_id,) in conn.execute(_Q["enqueue"], params).fetchall():
                added.append(Notice(notice_id, n.notifier, n.key, n.kind, n.body, n.created_at, 0))
        return added


if TYPE_CHECKING:  # the backend implements the protocol (checked by mypy, never run)
    from handrail.notify.outbox import NoticeOutbox

    def _conforms(outbox: SQLiteNoticeOutbox) -> NoticeOutbox:
        return outbox
