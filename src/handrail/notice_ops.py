"""Operations on the notification outbox, shared by the CLI (`handrail notifications`)
and the HTTP API (`/api/notifications`): list notices, and queue given-up ones again."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from handrail.notify.outbox import NoticeState
from handrail.ops import _require_actor
from handrail.store.base import Store

__all__ = ["list_notices", "retry_notices"]

log = logging.getLogger("handrail.notify")


def list_notices(
    store: Store, *, notifier: str | None = None, state: str | None = None, limit: int = 100
) -> list[NoticeState]:
    """Notices newest first (of one notifier, in one state), at most ``limit``."""
    return store.notice_outbox().list(notifier=notifier, state=state, limit=limit)


def retry_notices(
    store: Store,
    *,
    actor: str,
    notice_ids: Sequence[int] | None,
    notifier: str | None = None,
) -> int:
    """Queue given-up notices again, as ``actor`` (an operator): those of ``notice_ids``,
    or every one (``None``), of ``notifier`` if given. Returns how many; a running worker
    sends them within seconds."""
    who = _require_actor(actor)
    count = store.notice_outbox().requeue(notice_ids, notifier=notifier)
    what = "every given-up notice" if notice_ids is None else f"notices {list(notice_ids)}"
    log.info("%s queued %d notification(s) again (%s%s)", who, count, what,
             "" if notifier is None else f" of {notifier}")  # fmt: skip
    return count
