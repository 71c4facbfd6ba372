"""`handrail notifications list|retry` on a real store, as real processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_cli import CLI, HANDRAIL

from handrail.notify.outbox import NewNotice
from handrail.store.url import open_store


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    assert HANDRAIL.exists(), f"the handrail script is not installed next to {sys.executable}"
    return CLI(tmp_path)


def seed(cli: CLI) -> list[int]:
    """Three webhook notices (one sent, two given up) and one e-mail notice given up."""
    store = open_store(str(cli.db))
    try:
        outbox = store.notice_outbox()
        notices = outbox.enqueue(
            [NewNotice("webhook", f"approval_requested:t{n}/r", "approval_requested", "{}", 1e9)
             for n in range(3)]
            + [NewNotice("email", "approval_requested:t0/r", "approval_requested", "{}", 1e9)],
            holder="dead-worker",
            hold_until=1e9 + 30,
        )  # fmt: skip
        ids = [n.notice_id for n in notices]
        outbox.settle(ids[:1], now=1e9 + 1, sent=True, attempts=0)
        outbox.settle(ids[1:], now=1e9 + 2, sent=False, attempts=8, error="HTTPStatusError: 503")
        return ids
    finally:
        store.close()


def test_list_shows_each_notice_and_retry_queues_the_given_up_ones(cli: CLI) -> None:
    ids = seed(cli)
    listed = cli.json("notifications", "list")
    assert [n["notice_id"] for n in listed] == ids[::-1]  # newest first
    assert [n["state"] for n in listed] == ["dropped", "dropped", "dropped", "sent"]
    assert listed[0]["last_error"] == "HTTPStatusError: 503"
    assert listed[0]["attempts"] == 8
    table = cli.run("notifications", "list", "--state", "dropped").stdout
    assert "HTTPStatusError: 503" in table
    assert "t2/r" in table

    # an operator, authenticated, retries: nobody else
    err = cli.run("notifications", "retry", "--all", code=2).stderr
    assert "--as" in err
    err = cli.run("--as", "eve", "notifications", "retry", "--all", code=1).stderr
    assert "operator" in err
    err = cli.run("--as", "carol", "notifications", "retry", code=2).stderr
    assert "NOTICE_ID" in err

    out = cli.run("--as", "carol", "notifications", "retry", str(ids[1])).stdout
    assert "queued 1 notification(s) again, by carol" in out
    out = cli.run("--as", "carol", "notifications", "retry", "--all", "--notifier", "email").stdout
    assert "queued 1 notification(s)" in out
    states = {n["notice_id"]: n["state"] for n in cli.json("notifications", "list")}
    assert states == {ids[0]: "sent", ids[1]: "queued", ids[2]: "dropped", ids[3]: "queued"}
    err = cli.run("--as", "carol", "notifications", "retry", str(ids[0]), code=1).stderr
    assert "no given-up notification matched" in err
    assert cli.run("notifications", "list", "--notifier", "sms").stdout.strip() == (
        "no notifications"
    )
