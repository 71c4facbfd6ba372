"""How loaded each approver group is: its open requests and the gated calls queued for it.

Flood control asks this at every gated call and at every re-check of a queued one, so it
must stay cheap when thousands of tasks wait. A task's share of the load is a fold of its
journal; this module keeps that share per task, per store, in the process, and folds a
journal again only when its last sequence number moved on (``Store.last_seqs``: the
waiting tasks and their last sequence numbers in one read). A journal only grows, so an
unchanged last sequence number means an unchanged share.
"""

from __future__ import annotations

import threading
import weakref
from contextlib import AbstractContextManager
from dataclasses import dataclass

from handrail.journal import TaskStatus, fold
from handrail.store.base import Store

__all__ = ["group_load", "group_lock"]

_AWAITING = [TaskStatus.AWAITING_APPROVAL]


@dataclass(frozen=True, slots=True)
class _Share:
    """One waiting task's part of the load, as of its journal's event ``seq``."""

    seq: int
    pending: tuple[str, ...]  # the group of each open request
    queued: tuple[tuple[str, float], ...]  # (group, queued_at) of each queued call


_lock = threading.Lock()
_shares: weakref.WeakKeyDictionary[Store, dict[str, _Share]] = weakref.WeakKeyDictionary()


def group_lock(store: Store, group: str) -> AbstractContextManager[None]:
    """The lock under which flood control reads ``group``'s load and writes a request or
    a queued call for it: one gating at a time per group, in every process on the store,
    so that none passes the cap (``Store.named_lock``)."""
    return store.named_lock(f"handrail:approval-group:{group}")


def _share(store: Store, task_id: str) -> _Share:
    state = fold(store.load_events(task_id), task_id)
    return _Share(
        seq=state.last_seq,
        pending=tuple(a.request.group for a in state.approvals.values() if a.open),
        queued=tuple(
            (str(entry.get("group", "")), float(entry["queued_at"]))
            for entry in state.queued_for_approval.values()
        ),
    )


def group_load(
    store: Store, group: str, *, exclude_task: str | None = None
) -> tuple[int, list[tuple[float, str]]]:
    """How loaded an approver group is: its pending requests, and the calls queued for it
    (``(queued_at, task_id)``, oldest first), leaving out ``exclude_task``."""
    seqs = store.last_seqs(_AWAITING)
    waiting = list(seqs)
    with _lock:
        try:
            known = _shares.setdefault(store, {})
        except TypeError:  # a store that cannot be weakly referenced: no cache
            known = {}
        shares = {t: known[t] for t in waiting if t in known and known[t].seq == seqs.get(t)}
    for task_id in waiting:
        if task_id not in shares:
            shares[task_id] = _share(store, task_id)
    with _lock:
        known.clear()  # what no longer waits is forgotten
        known.update(shares)
    pending = 0
    queued: list[tuple[float, str]] = []
    for task_id, share in shares.items():
        if task_id == exclude_task:
            continue
        pending += share.pending.count(group)
        queued.extend((at, task_id) for g, at in share.queued if g == group)
    queued.sort()
    return pending, queued
