"""The notice outbox contract: memory, SQLite and PostgreSQL outboxes pass the same tests.

A notifier's key is enqueued once; a held notice is claimed by nobody else until its hold
ends, then by the first claim; its holder (and nobody else) can extend the hold; settled
notices leave the queue (and show in the counts), released ones are claimable at once.
Many threads on two store objects claim every notice of one queue exactly once, and a
store opened after its enqueuer "crashed" claims what that one held, once the hold ended.
The operator lists notices newest first with their state, and requeues dropped ones, which
the next claim takes.
"""

from __future__ import annotations

import dataclasses
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing

import pytest

from handrail.errors import StoreError
from handrail.notify.outbox import NewNotice, Notice, NoticeCounts, NoticeOutbox, NoticeState
from handrail.store.base import Store
from handrail.testing import MemoryStore

NOW = 1_700_000_000.0


def _new(notifier: str, key: str, *, at: float = NOW, body: str = "{}") -> NewNotice:
    return NewNotice(notifier, key, "approval_requested", body, at)


def _ids(notices: list[Notice]) -> list[int]:
    return [n.notice_id for n in notices]


def _last_error(store: Store, notice_id: int) -> str | None:
    """A notice's ``last_error``, which the protocol keeps but does not read back."""
    if isinstance(store, MemoryStore):
        return store.notice_outbox().last_error(notice_id)
    query = "SELECT last_error FROM handrail_notices WHERE id = "
    if type(store).__name__ == "SQLiteStore":
        with closing(sqlite3.connect(store.path)) as conn:  # type: ignore[attr-defined]
            error: str | None = conn.execute(query + "?", (notice_id,)).fetchone()[0]
            return error
    import psycopg

    with psycopg.connect(store.url) as pg:  # type: ignore[attr-defined]
        row = pg.execute(query + "%s", (notice_id,)).fetchone()
        assert row is not None
        found: str | None = row[0]
        return found


@pytest.fixture
def outbox(store: Store) -> NoticeOutbox:
    return store.notice_outbox()


def _claim(
    outbox: NoticeOutbox,
    notifiers: list[str],
    *,
    now: float,
    hold: float = 60.0,
    holder: str = "p2",
    limit: int = 100,
) -> list[Notice]:
    return outbox.claim(notifiers, holder=holder, now=now, hold_until=now + hold, limit=limit)


# -- enqueue -----------------------------------------------------------------------------


def test_the_store_has_one_outbox(store: Store) -> None:
    assert store.notice_outbox() is store.notice_outbox()


def test_enqueue_returns_the_new_notices_in_the_order_given(outbox: NoticeOutbox) -> None:
    given = [_new("slack", "k3", at=NOW + 3), _new("email", "k1", at=NOW + 1), _new("slack", "k2")]
    added = outbox.enqueue(given, holder="p1", hold_until=NOW + 30)
    assert [(n.notifier, n.key, n.kind, n.body, n.created_at) for n in added] == [
        (g.notifier, g.key, g.kind, g.body, g.created_at) for g in given
    ]
    assert [n.attempts for n in added] == [0, 0, 0]
    assert _ids(added) == sorted(_ids(added))
    assert len(set(_ids(added))) == 3
    assert outbox.counts() == {
        "email": NoticeCounts(1, 0, 0, NOW + 1),
        "slack": NoticeCounts(2, 0, 0, NOW),
    }


def test_a_notifier_s_key_is_enqueued_once(outbox: NoticeOutbox) -> None:
    first = outbox.enqueue([_new("slack", "a", body="1")], holder="p1", hold_until=NOW)
    again = outbox.enqueue(
        [_new("slack", "a", body="2"), _new("slack", "b"), _new("slack", "b", body="3")],
        holder="p1",
        hold_until=NOW,
    )
    assert [(n.key, n.body) for n in again] == [("b", "{}")]  # a repeat, in a call or across
    both = outbox.enqueue([_new("email", "a"), _new("webhook", "a")], holder="p1", hold_until=NOW)
    assert [n.notifier for n in both] == ["email", "webhook"]  # one key, three notifiers
    assert outbox.enqueue([_new("slack", "a")], holder="p9", hold_until=NOW) == []
    claimed = _claim(outbox, ["slack", "email", "webhook"], now=NOW)
    assert _ids(claimed) == _ids(first) + _ids(again) + _ids(both)
    assert claimed[0].body == "1"
    assert {n: c.queued for n, c in outbox.counts().items()} == {
        "email": 1,
        "slack": 2,
        "webhook": 1,
    }


def test_empty_sequences_do_nothing(outbox: NoticeOutbox) -> None:
    assert outbox.enqueue([], holder="p1", hold_until=NOW) == []
    assert outbox.claim([], holder="p1", now=NOW, hold_until=NOW + 1) == []
    outbox.enqueue([_new("slack", "a")], holder="p1", hold_until=NOW)
    assert outbox.claim(["slack"], holder="p1", now=NOW, hold_until=NOW + 1, limit=0) == []
    outbox.settle([], now=NOW, sent=True, attempts=0)
    outbox.release([], now=NOW)
    assert outbox.renew([], holder="p1", hold_until=NOW + 60) == 0
    assert outbox.renew((), holder="p1", hold_until=NOW + 60) == 0
    assert outbox.counts() == {"slack": NoticeCounts(1, 0, 0, NOW)}


def test_bad_arguments_fail_clearly(outbox: NoticeOutbox) -> None:
    with pytest.raises(TypeError, match="NewNotice"):
        outbox.enqueue([("slack", "a")], holder="p1", hold_until=NOW)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="notifier must not be empty"):
        outbox.enqueue([_new("", "a")], holder="p1", hold_until=NOW)
    with pytest.raises(ValueError, match="hold_until must be finite"):
        outbox.enqueue([_new("slack", "a")], holder="p1", hold_until=math.nan)
    with pytest.raises(ValueError, match="holder must not be empty"):
        outbox.enqueue([_new("slack", "a")], holder="", hold_until=NOW)
    with pytest.raises(TypeError, match="notifiers must be a sequence"):
        outbox.claim("slack", holder="p1", now=NOW, hold_until=NOW + 1)
    with pytest.raises(ValueError, match="limit must be 0 or more"):
        outbox.claim(["slack"], holder="p1", now=NOW, hold_until=NOW + 1, limit=-1)
    with pytest.raises(TypeError, match="notice id must be an int"):
        outbox.settle(["1"], now=NOW, sent=True, attempts=0)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="attempts must be 0 or more"):
        outbox.settle([1], now=NOW, sent=False, attempts=-1)
    with pytest.raises(TypeError, match="now must be a number"):
        outbox.release([1], now="now")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="notice_ids must be a sequence"):
        outbox.renew(1, holder="p1", hold_until=NOW)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="notice id must be an int"):
        outbox.renew([True], holder="p1", hold_until=NOW)
    with pytest.raises(TypeError, match="holder must be a str"):
        outbox.renew([1], holder=None, hold_until=NOW)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="holder must not be empty"):
        outbox.renew([], holder="", hold_until=NOW)  # checked even with no ids
    with pytest.raises(TypeError, match="hold_until must be a number"):
        outbox.renew([1], holder="p1", hold_until="later")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hold_until must be finite"):
        outbox.renew([1], holder="p1", hold_until=math.inf)
    assert outbox.counts() == {}  # nothing was written


# -- claim -------------------------------------------------------------------------------


def test_a_held_notice_is_claimed_once_its_hold_ends(outbox: NoticeOutbox) -> None:
    added = outbox.enqueue(
        [_new("slack", "a"), _new("slack", "b")], holder="p1", hold_until=NOW + 30
    )
    assert _claim(outbox, ["slack"], now=NOW) == []
    assert _claim(outbox, ["slack"], now=NOW + 29.999) == []
    assert _claim(outbox, ["slack"], now=NOW + 30) == added  # a hold ending at now has ended


def test_a_claimed_notice_is_not_claimed_again_while_held(outbox: NoticeOutbox) -> None:
    added = outbox.enqueue([_new("slack", "a")], holder="p1", hold_until=NOW)
    assert _claim(outbox, ["slack"], now=NOW, hold=60, holder="p2") == added
    assert _claim(outbox, ["slack"], now=NOW, holder="p3") == []
    assert _claim(outbox, ["slack"], now=NOW + 59, holder="p2") == []  # not even its holder
    assert _claim(outbox, ["slack"], now=NOW + 60, holder="p3") == added


def test_claim_takes_the_oldest_first_up_to_the_limit(outbox: NoticeOutbox) -> None:
    added = outbox.enqueue(
        [_new("slack" if i % 3 else "email", f"k{i}") for i in range(10)],
        holder="p1",
        hold_until=NOW,
    )
    slack = [n for n in added if n.notifier == "slack"]
    assert _claim(outbox, ["slack"], now=NOW, limit=3) == slack[:3]
    assert _claim(outbox, ["webhook"], now=NOW) == []
    rest = [n for n in added if n not in slack[:3]]
    assert _claim(outbox, ["email", "slack", "email"], now=NOW) == rest
    assert _claim(outbox, ["email", "slack"], now=NOW) == []


# -- renew -------------------------------------------------------------------------------


def test_renew_extends_the_holder_s_hold(outbox: NoticeOutbox) -> None:
    a, b = outbox.enqueue(
        [_new("slack", "a"), _new("slack", "b")], holder="p1", hold_until=NOW + 30
    )
    ids = [b.notice_id, a.notice_id, b.notice_id, 10_000]  # a repeat, an unknown id
    assert outbox.renew(ids, holder="p1", hold_until=NOW + 90) == 2
    assert _claim(outbox, ["slack"], now=NOW + 30) == []  # the old end has passed
    assert _claim(outbox, ["slack"], now=NOW + 89.999) == []
    assert _claim(outbox, ["slack"], now=NOW + 90, hold=60, holder="p2") == [a, b]
    # The new holder renews its own claim, as often as it likes.
    assert outbox.renew([a.notice_id], holder="p2", hold_until=NOW + 200) == 1
    assert outbox.renew([a.notice_id], holder="p2", hold_until=NOW + 300) == 1
    assert _claim(outbox, ["slack"], now=NOW + 150, hold=3600, holder="p3") == [b]
    assert _claim(outbox, ["slack"], now=NOW + 299, holder="p4") == []
    assert _claim(outbox, ["slack"], now=NOW + 300, holder="p4") == [a]
    assert outbox.counts() == {"slack": NoticeCounts(2, 0, 0, NOW)}


def test_renew_leaves_another_holder_s_notices_alone(outbox: NoticeOutbox) -> None:
    (a,) = outbox.enqueue([_new("slack", "a")], holder="p1", hold_until=NOW + 30)
    assert outbox.renew([a.notice_id], holder="p2", hold_until=NOW + 3600) == 0
    assert _claim(outbox, ["slack"], now=NOW + 30, hold=60, holder="p2") == [a]
    # p1's hold ended and p2 claimed the notice: a late renewal by p1 does not take it back.
    assert outbox.renew([a.notice_id], holder="p1", hold_until=NOW + 3600) == 0
    assert _claim(outbox, ["slack"], now=NOW + 89, holder="p3") == []
    assert _claim(outbox, ["slack"], now=NOW + 90, holder="p3") == [a]  # p2's end, unchanged


def test_released_and_settled_notices_are_not_renewed(outbox: NoticeOutbox) -> None:
    released, sent, dropped, held = outbox.enqueue(
        [_new("slack", "a"), _new("slack", "b"), _new("slack", "c"), _new("slack", "d")],
        holder="p1",
        hold_until=NOW + 30,
    )
    outbox.release([released.notice_id], now=NOW + 1)
    outbox.settle([sent.notice_id], now=NOW + 2, sent=True, attempts=0)
    outbox.settle([dropped.notice_id], now=NOW + 3, sent=False, attempts=3, error="HTTP 500")
    every = [released.notice_id, sent.notice_id, dropped.notice_id, held.notice_id]
    assert outbox.renew(every, holder="p1", hold_until=NOW + 3600) == 1  # only the held one
    assert outbox.counts() == {"slack": NoticeCounts(2, 1, 1, NOW)}
    assert _claim(outbox, ["slack"], now=NOW + 5, hold=3600, holder="p2") == [released]
    assert _claim(outbox, ["slack"], now=NOW + 3599, holder="p3") == []
    assert _claim(outbox, ["slack"], now=NOW + 3600, holder="p3") == [held]
    assert outbox.counts() == {"slack": NoticeCounts(2, 1, 1, NOW)}  # settled stay settled


# -- settle and release ------------------------------------------------------------------


def test_settled_notices_leave_the_queue(store: Store, outbox: NoticeOutbox) -> None:
    sent, dropped, queued = outbox.enqueue(
        [_new("slack", "a", at=NOW - 3), _new("slack", "b", at=NOW - 2), _new("slack", "c")],
        holder="p1",
        hold_until=NOW + 30,
    )
    outbox.settle([sent.notice_id], now=NOW + 1, sent=True, attempts=2)
    outbox.settle([dropped.notice_id], now=NOW + 2, sent=False, attempts=5, error="HTTP 500")
    assert outbox.counts() == {"slack": NoticeCounts(1, 1, 1, NOW)}
    assert _last_error(store, dropped.notice_id) == "HTTP 500"
    assert _last_error(store, sent.notice_id) is None
    assert _claim(outbox, ["slack"], now=NOW + 30) == [queued]  # never the settled ones
    # A settled notice stays settled: no second settle, no release brings it back.
    outbox.settle([dropped.notice_id], now=NOW + 3, sent=True, attempts=6)
    outbox.release([sent.notice_id, dropped.notice_id], now=NOW + 3)
    assert outbox.counts() == {"slack": NoticeCounts(1, 1, 1, NOW)}
    assert _last_error(store, dropped.notice_id) == "HTTP 500"
    assert _claim(outbox, ["slack"], now=NOW + 1000, holder="p4") == [queued]
    outbox.settle([queued.notice_id, 10_000], now=NOW + 4, sent=False, attempts=1, error="x")
    assert outbox.counts() == {"slack": NoticeCounts(0, 1, 2, None)}
    assert _claim(outbox, ["slack"], now=NOW + 10_000) == []


def test_released_notices_are_claimable_at_once(outbox: NoticeOutbox) -> None:
    a, b, c = outbox.enqueue(
        [_new("slack", "a"), _new("slack", "b"), _new("slack", "c")], holder="p1", hold_until=NOW
    )
    assert _claim(outbox, ["slack"], now=NOW, hold=3600, holder="p1") == [a, b, c]
    outbox.release([c.notice_id, a.notice_id], now=NOW + 5)
    assert _claim(outbox, ["slack"], now=NOW + 5, holder="p2") == [a, c]
    assert _claim(outbox, ["slack"], now=NOW + 5, holder="p3") == []
    assert outbox.counts() == {"slack": NoticeCounts(3, 0, 0, NOW)}


def test_counts_say_when_the_oldest_queued_notice_was_enqueued(outbox: NoticeOutbox) -> None:
    assert outbox.counts() == {}
    old, _, _ = outbox.enqueue(
        [_new("slack", "a", at=NOW - 50), _new("slack", "b", at=NOW - 70), _new("email", "c")],
        holder="p1",
        hold_until=NOW,
    )
    assert outbox.counts() == {
        "email": NoticeCounts(1, 0, 0, NOW),
        "slack": NoticeCounts(2, 0, 0, NOW - 70),  # by created_at, not by id
    }
    claimed = _claim(outbox, ["slack"], now=NOW)
    outbox.settle([n.notice_id for n in claimed if n.key == "b"], now=NOW, sent=True, attempts=0)
    assert outbox.counts()["slack"] == NoticeCounts(1, 1, 0, NOW - 50)
    outbox.settle([old.notice_id], now=NOW, sent=True, attempts=0)
    assert outbox.counts()["slack"] == NoticeCounts(0, 2, 0, None)


# -- list and requeue --------------------------------------------------------------------


def _state(
    notice: Notice,
    state: str,
    *,
    attempts: int = 0,
    last_error: str | None = None,
    held_by: str | None = None,
    held_until: float | None = None,
    sent_at: float | None = None,
    dropped_at: float | None = None,
) -> NoticeState:
    return NoticeState(
        notice.notice_id,
        notice.notifier,
        notice.key,
        notice.kind,
        notice.created_at,
        state,
        attempts,
        last_error,
        held_by,
        held_until,
        sent_at,
        dropped_at,
    )


def test_list_shows_every_notice_newest_first_with_its_state(outbox: NoticeOutbox) -> None:
    assert outbox.list() == []
    sent, dropped, held, released = outbox.enqueue(
        [
            _new("slack", "a", at=NOW - 3),
            _new("slack", "b", at=NOW - 2),
            _new("email", "c", at=NOW - 1),
            _new("slack", "d"),
        ],
        holder="p1",
        hold_until=NOW + 30,
    )
    outbox.settle([sent.notice_id], now=NOW + 1, sent=True, attempts=2)
    outbox.settle([dropped.notice_id], now=NOW + 2, sent=False, attempts=5, error="HTTP 500")
    outbox.release([released.notice_id], now=NOW + 3)
    listed = outbox.list()
    assert listed == [
        _state(released, "queued", held_until=NOW + 3),
        _state(held, "queued", held_by="p1", held_until=NOW + 30),
        _state(dropped, "dropped", attempts=5, last_error="HTTP 500", dropped_at=NOW + 2),
        _state(sent, "sent", attempts=2, sent_at=NOW + 1),
    ]
    assert [type(s.created_at) for s in listed] == [float] * 4
    assert outbox.list(limit=2) == listed[:2]  # the newest
    assert outbox.list(limit=0) == []
    assert outbox.list(limit=100) == listed


def test_list_filters_by_notifier_and_state(outbox: NoticeOutbox) -> None:
    added = outbox.enqueue(
        [_new("slack" if i % 3 else "email", f"k{i}", at=NOW + i) for i in range(9)],
        holder="p1",
        hold_until=NOW,
    )
    by_id = {n.notice_id: n for n in added}
    outbox.settle([added[1].notice_id, added[3].notice_id], now=NOW, sent=True, attempts=0)
    outbox.settle([added[2].notice_id, added[6].notice_id], now=NOW, sent=False, attempts=1)

    def listed(**filters: object) -> list[str]:
        found = outbox.list(**filters)  # type: ignore[arg-type]
        assert [s.notice_id for s in found] == sorted((s.notice_id for s in found), reverse=True)
        for s in found:
            assert (s.notifier, s.key) == (by_id[s.notice_id].notifier, by_id[s.notice_id].key)
        return [s.key for s in found]

    assert listed() == [f"k{i}" for i in reversed(range(9))]
    assert listed(notifier="email") == ["k6", "k3", "k0"]
    assert listed(notifier="slack") == ["k8", "k7", "k5", "k4", "k2", "k1"]
    assert listed(notifier="webhook") == []
    assert listed(state="sent") == ["k3", "k1"]
    assert listed(state="dropped") == ["k6", "k2"]
    assert listed(state="queued") == ["k8", "k7", "k5", "k4", "k0"]
    assert listed(notifier="slack", state="queued") == ["k8", "k7", "k5", "k4"]
    assert listed(notifier="email", state="sent") == ["k3"]
    assert listed(notifier="email", state="queued", limit=1) == ["k0"]
    assert listed(state="queued", limit=3) == ["k8", "k7", "k5"]
    assert listed(notifier="slack", state="dropped", limit=0) == []
    assert {s.state for s in outbox.list(state="dropped")} == {"dropped"}


def test_requeue_puts_every_dropped_notice_back(outbox: NoticeOutbox) -> None:
    assert outbox.requeue() == 0
    a, b, c, d = outbox.enqueue(
        [_new("slack", "a"), _new("email", "b"), _new("slack", "c"), _new("slack", "d")],
        holder="p1",
        hold_until=NOW + 30,
    )
    outbox.settle([a.notice_id, b.notice_id], now=NOW + 1, sent=False, attempts=3, error="x")
    outbox.settle([c.notice_id], now=NOW + 2, sent=False, attempts=4, error="HTTP 500")
    assert outbox.counts() == {
        "email": NoticeCounts(0, 0, 1, None),
        "slack": NoticeCounts(1, 0, 2, NOW),
    }
    assert outbox.requeue() == 3
    assert outbox.requeue() == 0  # none dropped any more
    assert outbox.counts() == {
        "email": NoticeCounts(1, 0, 0, NOW),
        "slack": NoticeCounts(3, 0, 0, NOW),
    }
    # Unheld, the attempts and the last error kept; d is still held by p1.
    assert outbox.list() == [
        _state(d, "queued", held_by="p1", held_until=NOW + 30),
        _state(c, "queued", attempts=4, last_error="HTTP 500"),
        _state(b, "queued", attempts=3, last_error="x"),
        _state(a, "queued", attempts=3, last_error="x"),
    ]


def test_requeue_takes_the_ids_given_of_the_notifier_given(outbox: NoticeOutbox) -> None:
    added = outbox.enqueue(
        [_new("slack" if i % 2 else "email", f"k{i}") for i in range(6)],
        holder="p1",
        hold_until=NOW,
    )
    ids = _ids(added)
    outbox.settle(ids, now=NOW + 1, sent=False, attempts=1, error="down")
    k0, k1, k2, k3, k4, k5 = ids  # email: k0 k2 k4, slack: k1 k3 k5

    def dropped() -> list[str]:
        return sorted(s.key for s in outbox.list(state="dropped"))

    assert outbox.requeue([k1, k0, k1, 10_000]) == 2  # a repeat, an unknown id
    assert dropped() == ["k2", "k3", "k4", "k5"]
    assert outbox.requeue((k2, k3, k4), notifier="slack") == 1  # k3 only
    assert dropped() == ["k2", "k4", "k5"]
    assert outbox.requeue([k2], notifier="webhook") == 0
    assert outbox.requeue(notifier="email") == 2  # k2 and k4
    assert dropped() == ["k5"]
    assert outbox.requeue([]) == 0
    assert outbox.requeue([], notifier="slack") == 0
    assert dropped() == ["k5"]
    assert outbox.counts() == {
        "email": NoticeCounts(3, 0, 0, NOW),
        "slack": NoticeCounts(2, 0, 1, NOW),
    }
    assert outbox.requeue([k5], notifier="slack") == 1
    assert dropped() == []


def test_requeue_leaves_sent_and_queued_notices_alone(outbox: NoticeOutbox) -> None:
    sent, queued, dropped = outbox.enqueue(
        [_new("slack", "a"), _new("slack", "b"), _new("slack", "c")],
        holder="p1",
        hold_until=NOW + 30,
    )
    outbox.settle([sent.notice_id], now=NOW + 1, sent=True, attempts=2, error="slow")
    outbox.settle([dropped.notice_id], now=NOW + 2, sent=False, attempts=5, error="HTTP 500")
    before = outbox.list(state="sent") + outbox.list(state="queued")
    assert outbox.requeue([sent.notice_id, queued.notice_id]) == 0
    assert outbox.requeue([sent.notice_id, queued.notice_id], notifier="slack") == 0
    assert outbox.list(state="sent") + outbox.list(state="queued") == before
    assert outbox.requeue() == 1  # the dropped one only
    requeued, *rest = outbox.list(state="queued")  # the newest
    assert requeued == _state(dropped, "queued", attempts=5, last_error="HTTP 500")
    assert outbox.list(state="sent") + rest == before
    assert outbox.counts() == {"slack": NoticeCounts(2, 1, 0, NOW)}


def test_a_requeued_notice_is_claimed_at_once_and_can_be_sent(
    store: Store, outbox: NoticeOutbox
) -> None:
    a, b, c = outbox.enqueue(
        [_new("slack", "a"), _new("slack", "b"), _new("slack", "c")],
        holder="p1",
        hold_until=NOW,
    )
    outbox.settle([a.notice_id], now=NOW + 1, sent=False, attempts=3, error="HTTP 500")
    assert _claim(outbox, ["slack"], now=NOW + 2, holder="p2") == [b, c]
    assert outbox.requeue([a.notice_id]) == 1
    # Claimable at once, even by a claim whose clock is behind the drop, its attempts kept.
    (again,) = _claim(outbox, ["slack"], now=NOW, hold=60, holder="p3")
    assert again == Notice(a.notice_id, "slack", "a", a.kind, a.body, a.created_at, 3)
    assert _claim(outbox, ["slack"], now=NOW + 3, holder="p4") == []  # p3 holds it now
    (listed,) = [s for s in outbox.list() if s.notice_id == a.notice_id]
    assert listed == _state(
        a, "queued", attempts=3, last_error="HTTP 500", held_by="p3", held_until=NOW + 60
    )
    assert outbox.renew([a.notice_id], holder="p3", hold_until=NOW + 90) == 1
    outbox.settle([a.notice_id], now=NOW + 5, sent=True, attempts=3)
    assert outbox.counts() == {"slack": NoticeCounts(2, 1, 0, NOW)}
    assert outbox.list(state="sent") == [_state(a, "sent", attempts=3, sent_at=NOW + 5)]
    assert outbox.list(state="dropped") == []
    assert _last_error(store, a.notice_id) is None
    assert outbox.requeue() == 0


def test_a_requeued_notice_is_claimed_in_id_order(outbox: NoticeOutbox) -> None:
    a, b, c = outbox.enqueue(
        [_new("slack", "a"), _new("slack", "b"), _new("slack", "c")],
        holder="p1",
        hold_until=NOW,
    )
    outbox.settle([a.notice_id], now=NOW, sent=False, attempts=1)
    assert outbox.requeue(notifier="slack") == 1
    assert _claim(outbox, ["slack"], now=NOW, limit=2) == [
        dataclasses.replace(a, attempts=1),
        b,
    ]
    assert _claim(outbox, ["slack"], now=NOW) == [c]


def test_list_and_requeue_refuse_bad_arguments(outbox: NoticeOutbox) -> None:
    (a,) = outbox.enqueue([_new("slack", "a")], holder="p1", hold_until=NOW)
    outbox.settle([a.notice_id], now=NOW, sent=False, attempts=1)
    allowed = "'queued', 'sent', 'dropped'"
    with pytest.raises(ValueError, match=f"state must be one of {allowed}.* not 'lost'"):
        outbox.list(state="lost")
    with pytest.raises(ValueError, match="state must be one of"):
        outbox.list(state="Sent")
    with pytest.raises(ValueError, match="state must be one of"):
        outbox.list(state=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit must be 0 or more"):
        outbox.list(limit=-1)
    with pytest.raises(TypeError, match="limit must be an int"):
        outbox.list(limit="10")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="limit must be an int"):
        outbox.list(limit=True)
    with pytest.raises(ValueError, match="notifier must not be empty"):
        outbox.list(notifier="")
    with pytest.raises(TypeError, match="notifier must be a str"):
        outbox.list(notifier=["slack"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="notice_ids must be a sequence"):
        outbox.requeue(a.notice_id)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="notice_ids must be a sequence"):
        outbox.requeue("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="notice id must be an int"):
        outbox.requeue([str(a.notice_id)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="notice id must be an int"):
        outbox.requeue([True])
    with pytest.raises(ValueError, match="notifier must not be empty"):
        outbox.requeue(notifier="")
    with pytest.raises(ValueError, match="notifier must not be empty"):
        outbox.requeue([], notifier="")  # checked even with no ids
    with pytest.raises(TypeError, match="notifier must be a str"):
        outbox.requeue([a.notice_id], notifier=1)  # type: ignore[arg-type]
    assert outbox.counts() == {"slack": NoticeCounts(0, 0, 1, None)}  # nothing was requeued


# -- many claimers, a crash ----------------------------------------------------------------


def test_concurrent_claimers_take_every_notice_exactly_once(
    store_factory: Callable[[], Store],
) -> None:
    stores = [store_factory(), store_factory()]  # two "processes" on one database
    first, second = (s.notice_outbox() for s in stores)
    added = first.enqueue(
        [_new("slack" if i % 2 else "email", f"k{i}") for i in range(200)],
        holder="p0",
        hold_until=NOW,
    )
    assert len(added) == 200
    threads_per_store = 4
    start = threading.Barrier(len(stores) * threads_per_store)
    taken: list[list[Notice]] = []
    errors: list[BaseException] = []

    def claimer(outbox: NoticeOutbox, name: str) -> None:
        mine: list[Notice] = []
        try:
            start.wait()
            while batch := outbox.claim(
                ["email", "slack"], holder=name, now=NOW, hold_until=NOW + 3600, limit=7
            ):
                mine.extend(batch)
                time.sleep(0.001)  # let the others in (memory: the GIL would not)
        except BaseException as exc:
            errors.append(exc)
        taken.append(mine)

    threads = [
        threading.Thread(target=claimer, args=(outbox, f"s{i}-t{j}"))
        for i, outbox in enumerate([first, second])
        for j in range(threads_per_store)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    claimed = [n.notice_id for mine in taken for n in mine]
    assert sorted(claimed) == sorted(_ids(added))  # each once: no duplicates, none missed
    assert sum(1 for mine in taken if mine) > 1  # the claimers did run side by side
    assert _claim(second, ["email", "slack"], now=NOW + 3599, holder="late") == []


def test_a_new_store_claims_what_a_crashed_one_held(
    store_factory: Callable[[], Store],
) -> None:
    crashed = store_factory()  # enqueues, then dies without sending or releasing
    added = crashed.notice_outbox().enqueue(
        [_new("slack", f"k{i}", body=f'{{"i": {i}}}') for i in range(5)],
        holder="crashed",
        hold_until=NOW + 30,
    )
    restarted = store_factory()  # a fresh store object on the same file / database
    outbox = restarted.notice_outbox()
    assert outbox.counts() == {"slack": NoticeCounts(5, 0, 0, NOW)}
    assert _claim(outbox, ["slack"], now=NOW + 10, holder="restarted") == []
    claimed = _claim(outbox, ["slack"], now=NOW + 30, holder="restarted")
    assert claimed == added
    assert [n.body for n in claimed] == [f'{{"i": {i}}}' for i in range(5)]
    outbox.settle(_ids(claimed), now=NOW + 31, sent=True, attempts=0)
    assert crashed.notice_outbox().counts() == {"slack": NoticeCounts(0, 5, 0, None)}


# -- backend-specific --------------------------------------------------------------------


@pytest.mark.parametrize(
    "store_kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_closed_store_s_outbox_refuses_calls(store: Store) -> None:
    outbox = store.notice_outbox()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        outbox.enqueue([_new("slack", "a")], holder="p1", hold_until=NOW)
    with pytest.raises(StoreError, match="closed"):
        outbox.renew([1], holder="p1", hold_until=NOW)
    with pytest.raises(StoreError, match="closed"):
        outbox.counts()
    with pytest.raises(StoreError, match="closed"):
        outbox.list()
    with pytest.raises(StoreError, match="closed"):
        outbox.requeue()
    assert outbox.renew([], holder="p1", hold_until=NOW) == 0  # no ids: no database call
    assert outbox.requeue([]) == 0
    assert outbox.list(limit=0) == []
    with pytest.raises(StoreError, match="closed"):
        store.notice_outbox()
