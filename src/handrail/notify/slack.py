"""A chat webhook: Slack-compatible ``blocks`` that show every field of each request.

Slack caps a message at 50 blocks, a section at 10 fields of 2,000 characters and a
header at 150 characters. A request's fields are split over as many sections as it takes;
requests that do not fit are summed up in a closing "and N more pending" context block.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from handrail.notify.base import Notification, batch_title, decide_hint, fields_of
from handrail.notify.webhook import post, require_httpx

if TYPE_CHECKING:
    from handrail.approvals import ApprovalRequest

MAX_BLOCKS: Final = 50
MAX_FIELDS: Final = 10
MAX_FIELD_CHARS: Final = 2000
MAX_TEXT_CHARS: Final = 3000
MAX_HEADER_CHARS: Final = 150

Block = dict[str, Any]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: str) -> str:
    """``text`` made literal in Slack mrkdwn (``&``, ``<`` and ``>`` are markup)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mrkdwn(text: str, limit: int) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _clip(text, limit)}


def _sections(lead: str, pairs: Sequence[tuple[str, str]]) -> list[Block]:
    """A section headed by ``lead`` with the fields ``pairs``, split every 10 fields."""
    fields = [
        _mrkdwn(f"*{escape(label)}*\n{escape(value)}", MAX_FIELD_CHARS) for label, value in pairs
    ]
    sections: list[Block] = [{"type": "section", "text": _mrkdwn(lead, MAX_TEXT_CHARS)}]
    for start in range(0, len(fields), MAX_FIELDS):
        chunk = fields[start : start + MAX_FIELDS]
        if start == 0:
            sections[0]["fields"] = chunk
        else:
            sections.append({"type": "section", "fields": chunk})
    return sections


def _request_blocks(
    notification: Notification, request: ApprovalRequest, now: float
) -> list[Block]:
    lead = (
        f"*{escape(notification.title)}*\nDecide with `{escape(decide_hint(request))}` (or `deny`)."
    )
    return _sections(lead, fields_of(request, now=now))


def _units(batch: Sequence[Notification], now: float) -> list[list[Block]]:
    """The blocks of each request, and of each notification about no request."""
    units: list[list[Block]] = []
    for notification in batch:
        if notification.requests:
            units.extend(_request_blocks(notification, r, now) for r in notification.requests)
        else:
            details = [(key, str(value)) for key, value in notification.details.items()]
            units.append(_sections(f"*{escape(notification.title)}*", details))
    return units


def slack_message(batch: Sequence[Notification], *, now: float | None = None) -> dict[str, Any]:
    """The ``{"text", "blocks"}`` payload for ``batch``, within Slack's limits."""
    now = time.time() if now is None else now
    title = batch_title(batch)
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title, MAX_HEADER_CHARS)}}
    ]
    units = _units(batch, now)
    shown = 0
    for index, unit in enumerate(units):
        divider = 1 if shown else 0
        trailer = 1 if index + 1 < len(units) else 0
        if len(blocks) + divider + len(unit) + trailer > MAX_BLOCKS:
            break
        if divider:
            blocks.append({"type": "divider"})
        blocks.extend(unit)
        shown += 1
    if shown < len(units):
        more = f"…and {len(units) - shown} more pending (not shown here)."
        blocks.append({"type": "context", "elements": [_mrkdwn(more, MAX_FIELD_CHARS)]})
    lines = [title] + [f"• {n.title}" for n in batch]
    return {"text": _clip("\n".join(lines), MAX_TEXT_CHARS), "blocks": blocks}


class SlackNotifier:
    """POSTs each batch as a Slack message to an incoming-webhook ``url``."""

    def __init__(self, url: str, *, timeout: float = 5.0, name: str = "slack") -> None:
        require_httpx(name)
        self.url = url
        self.name = name
        self.timeout = timeout

    def __repr__(self) -> str:
        # The URL of a Slack webhook is its credential: keep it out of logs.
        return f"SlackNotifier(name={self.name!r})"

    def send(self, batch: Sequence[Notification]) -> None:
        """POST ``batch``; raises ``httpx.HTTPError`` on a transport error or non-2xx."""
        body = json.dumps(slack_message(batch)).encode("utf-8")
        headers = {"Content-Type": "application/json", "User-Agent": "handrail-notify"}
        post(self.url, body, headers, timeout=self.timeout, what="chat webhook")
