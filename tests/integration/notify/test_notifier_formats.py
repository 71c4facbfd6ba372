"""Each notifier against a real receiver: the signed JSON webhook, the Slack-compatible
chat webhook and SMTP e-mail show every field of every request."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from notify_support import HttpReceiver, SmtpReceiver, http_receiver, make_request, smtp_receiver

from handrail.approvals import ApprovalRequest
from handrail.notify import (
    EmailNotifier,
    Notification,
    SlackNotifier,
    WebhookNotifier,
    fields_of,
    verify_signature,
)
from handrail.notify.base import FIELD_LABELS, iso_utc
from handrail.notify.slack import MAX_BLOCKS, MAX_FIELD_CHARS, MAX_FIELDS, MAX_HEADER_CHARS

SECRET = "s3cret-shared-with-the-receiver"


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    with http_receiver() as receiver:
        yield receiver


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with smtp_receiver() as receiver:
        yield receiver


def test_importing_notify_loads_no_client() -> None:
    code = (
        "import sys, handrail.notify; "
        "print(sorted({'httpx', 'smtplib', 'ssl', 'http.client'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fields_of_labels_every_request_field() -> None:
    request = make_request(7)
    now = time.time()
    fields = fields_of(request, now=now)
    names = [f.name for f in dataclasses.fields(ApprovalRequest)]
    assert set(FIELD_LABELS) == set(names)
    assert [label for label, _ in fields] == list(FIELD_LABELS.values())
    shown = dict(fields)
    assert shown["Parameters"] == '{"amount":1257,"currency":"EUR","to":"IBAN-7"}'
    assert request.expires_at is not None
    assert shown["Deadline"] == f"{iso_utc(request.expires_at)} (in 30 min), then auto-deny"
    assert shown["Requested at"].endswith("(1 min ago)")
    assert shown["Approvers"] == "alice, bob"
    assert shown["Quorum"] == "2 of 2"
    assert shown["Auto-approve after"] == "never"
    assert shown["Auto-deny after"] == "30 min"
    assert all(value for value in shown.values())


def test_webhook_posts_signed_json(http: HttpReceiver) -> None:
    batch = [Notification.requested(make_request(1)), Notification.queue_full("finance", 10, 10)]
    WebhookNotifier(http.url, SECRET).send(batch)

    (delivery,) = http.deliveries
    assert delivery.headers["content-type"] == "application/json"
    expected = json.loads(json.dumps({"notifications": [n.to_dict() for n in batch]}))
    assert delivery.json() == expected
    assert delivery.json()["notifications"][0]["requests"][0]["request_id"] == "apr-001"

    timestamp = delivery.headers["x-handrail-timestamp"]
    signature = delivery.headers["x-handrail-signature"]
    assert re.fullmatch(r"sha256=[0-9a-f]{64}", signature)
    assert verify_signature(SECRET, delivery.body, timestamp, signature)
    assert verify_signature(SECRET.encode(), delivery.body, timestamp, signature)


def test_verify_signature_rejects_tampering_and_replays(http: HttpReceiver) -> None:
    WebhookNotifier(http.url, SECRET).send([Notification.requested(make_request(1))])
    (delivery,) = http.deliveries
    body = delivery.body
    timestamp = delivery.headers["x-handrail-timestamp"]
    signature = delivery.headers["x-handrail-signature"]
    sent_at = int(timestamp)

    tampered = body.replace(b'"amount":1251', b'"amount":9251')
    assert tampered != body
    assert not verify_signature(SECRET, tampered, timestamp, signature)
    assert not verify_signature("another secret", body, timestamp, signature)
    assert not verify_signature(SECRET, body, str(sent_at + 1), signature)
    assert not verify_signature(SECRET, body, timestamp, signature.upper())
    assert not verify_signature(SECRET, body, "not-a-time", signature)
    assert not verify_signature(SECRET, body, timestamp, "sha256=ünicode")
    # A replay: the genuine delivery, presented after the tolerance has passed.
    assert verify_signature(SECRET, body, timestamp, signature, now=sent_at + 300)
    assert not verify_signature(SECRET, body, timestamp, signature, now=sent_at + 301)
    assert not verify_signature(SECRET, body, timestamp, signature, now=sent_at + 90, tolerance=60)


def test_webhook_raises_on_non_2xx(http: HttpReceiver) -> None:
    http.fail(500)
    with pytest.raises(httpx.HTTPStatusError) as caught:
        WebhookNotifier(http.url, SECRET).send([Notification.queue_full("ops", 5, 5)])
    assert caught.value.response.status_code == 500


def _section_fields(blocks: list[dict[str, Any]]) -> list[str]:
    return [f["text"] for b in blocks if b["type"] == "section" for f in b.get("fields", [])]


def _check_limits(blocks: list[dict[str, Any]]) -> None:
    assert len(blocks) <= MAX_BLOCKS
    assert blocks[0]["type"] == "header"
    assert len(blocks[0]["text"]["text"]) <= MAX_HEADER_CHARS
    for block in blocks:
        assert len(block.get("fields", [])) <= MAX_FIELDS
        assert all(len(f["text"]) <= MAX_FIELD_CHARS for f in block.get("fields", []))


def _per_request(blocks: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The blocks after the header, split at dividers, without a closing context block."""
    groups: list[list[dict[str, Any]]] = [[]]
    for block in blocks[1:]:
        if block["type"] == "divider":
            groups.append([])
        elif block["type"] != "context":
            groups[-1].append(block)
    return groups


def test_slack_message_shows_every_field(http: HttpReceiver) -> None:
    request = make_request(1)
    SlackNotifier(http.url).send([Notification.requested(request)])

    payload = http.wait_for(1)[0].json()
    blocks = payload["blocks"]
    _check_limits(blocks)
    assert blocks[0]["text"]["text"] == "Approval needed: send_wire #1"
    assert "Approval needed: send_wire #1" in payload["text"]
    expected = [f"*{label}*\n{value}" for label, value in fields_of(request)]
    assert _section_fields(blocks) == expected
    assert len(expected) == len(dataclasses.fields(ApprovalRequest))
    assert "`handrail approvals approve apr-001`" in blocks[1]["text"]["text"]


def test_slack_batch_of_30_stays_within_limits(http: HttpReceiver) -> None:
    requests = [make_request(n) for n in range(30)]
    SlackNotifier(http.url).send([Notification.requested(r) for r in requests])

    payload = http.wait_for(1)[0].json()
    blocks = payload["blocks"]
    _check_limits(blocks)
    assert blocks[0]["text"]["text"] == "30 approvals need a decision"
    groups = _per_request(blocks)
    assert 0 < len(groups) < 30
    for request, group in zip(requests, groups, strict=False):
        assert _section_fields(group) == [f"*{k}*\n{v}" for k, v in fields_of(request)]
    last = blocks[-1]
    assert last["type"] == "context"
    assert last["elements"][0]["text"] == f"…and {30 - len(groups)} more pending (not shown here)."


def test_slack_escapes_markup_and_keeps_its_url_out_of_errors(http: HttpReceiver) -> None:
    request = make_request(1, proposed_action="pay <!channel> & <@U123>")
    SlackNotifier(http.url).send([Notification.requested(request)])
    fields = _section_fields(http.wait_for(1)[0].json()["blocks"])
    assert "*Proposed action*\npay &lt;!channel&gt; &amp; &lt;@U123&gt;" in fields

    http.fail(404)
    with pytest.raises(httpx.HTTPStatusError) as caught:
        SlackNotifier(http.url).send([Notification.requested(request)])
    assert "404" in str(caught.value)
    assert http.url not in str(caught.value)


def _text(message: Any) -> str:
    """A received plain-text body with SMTP's CRLF line ends made plain."""
    return str(message.get_content()).replace("\r\n", "\n")


def _body_shows(body: str, label: str, value: str) -> bool:
    line = rf"^  {re.escape(label)}: +{re.escape(value)}$"
    return re.search(line, body, re.MULTILINE) is not None


def test_email_over_smtp_lists_every_field(smtp: SmtpReceiver) -> None:
    request = make_request(1)
    notifier = EmailNotifier(
        smtp.host,
        smtp.port,
        sender="handrail@example.com",
        recipients=["alice@example.com", "bob@example.com"],
    )
    notifier.send([Notification.requested(request)])

    (mail,) = smtp.wait_for(1)
    assert mail.mail_from == "handrail@example.com"
    assert mail.rcpt_tos == ["alice@example.com", "bob@example.com"]
    message = mail.message
    assert message["Subject"] == "[handrail] Approval needed: send_wire #1"
    assert message["To"] == "alice@example.com, bob@example.com"
    body = _text(message)
    fields = fields_of(request)
    assert len(fields) == len(dataclasses.fields(ApprovalRequest))
    for label, value in fields:
        assert _body_shows(body, label, value), (label, value)
    assert "handrail approvals approve apr-001" in body


def test_email_subjects_for_batches_reminders_and_full_queues(smtp: SmtpReceiver) -> None:
    notifier = EmailNotifier(
        smtp.host, smtp.port, sender="handrail@example.com", recipients=["ops@example.com"]
    )
    requests = [make_request(n) for n in range(3)]
    reminder = make_request(9, agent_reasoning="First line.\nSecond line.")
    notifier.send([Notification.requested(r) for r in requests])
    notifier.send([Notification.reminder(reminder)])
    notifier.send([Notification.queue_full("finance", cap=10, queued=10)])

    batch, remind, full = (mail.message for mail in smtp.wait_for(3))
    assert batch["Subject"] == "[handrail] 3 approvals need a decision"
    batch_body = _text(batch)
    for request in requests:
        assert all(_body_shows(batch_body, k, v) for k, v in fields_of(request))

    assert remind["Subject"] == "[handrail] Reminder: approval needed: send_wire #9"
    remind_body = _text(remind)
    assert re.search(r"^  Deadline: +\S+ \(in 30 min\), then auto-deny$", remind_body, re.M)
    assert re.search(r"^  Agent's reasoning: +First line\.\n {2,}Second line\.$", remind_body, re.M)

    assert full["Subject"] == "[handrail] Approval queue full for group finance"
    full_body = _text(full)
    assert _body_shows(full_body, "cap", "10")
    assert _body_shows(full_body, "queued", "10")
