"""A JSON webhook whose body is signed with HMAC-SHA256, and the check its receiver runs.

The notifier POSTs ``{"notifications": [...]}`` with two headers:

- ``X-Handrail-Timestamp``: the send time in whole Unix seconds;
- ``X-Handrail-Signature``: ``sha256=`` + hex HMAC-SHA256, keyed with the shared secret,
  of ``f"{timestamp}.".encode() + body``.

Signing the timestamp with the body lets a receiver reject replays of old deliveries
(:func:`verify_signature` allows five minutes of skew by default).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import time
from collections.abc import Mapping, Sequence
from typing import Final

from handrail.errors import ConfigurationError
from handrail.notify.base import Notification

TIMESTAMP_HEADER: Final = "X-Handrail-Timestamp"
SIGNATURE_HEADER: Final = "X-Handrail-Signature"


def require_httpx(name: str) -> None:
    """Fail at configuration time, not at the first delivery, if httpx is missing."""
    if importlib.util.find_spec("httpx") is None:
        raise ConfigurationError(f"notifier {name!r} posts with httpx: pip install httpx")


def post(url: str, body: bytes, headers: Mapping[str, str], *, timeout: float, what: str) -> None:
    """POST ``body``; raise ``httpx.HTTPStatusError`` on a non-2xx answer, with a message
    that leaves out the URL (a chat webhook's URL is its credential)."""
    import httpx

    response = httpx.post(url, content=body, headers=dict(headers), timeout=timeout)
    if not response.is_success:
        raise httpx.HTTPStatusError(
            f"{what} answered {response.status_code} {response.reason_phrase}",
            request=response.request,
            response=response,
        )


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Handrail-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(_key(secret), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str | bytes,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    now: float | None = None,
    tolerance: float = 300,
) -> bool:
    """Whether ``signature`` signs ``body`` at ``timestamp`` with ``secret`` and the
    timestamp is within ``tolerance`` seconds of ``now``. Compares in constant time."""
    if not timestamp.isascii() or not timestamp.isdigit():
        return False
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > tolerance:
        return False
    expected = sign(secret, timestamp, body).encode("ascii")
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


class WebhookNotifier:
    """POSTs each batch as signed JSON to ``url``; any non-2xx answer is a failure."""

    def __init__(
        self, url: str, secret: str | bytes, *, timeout: float = 5.0, name: str = "webhook"
    ) -> None:
        if not secret:
            raise ConfigurationError(f"notifier {name!r}: give a non-empty secret to sign with")
        require_httpx(name)
        self.url = url
        self.name = name
        self.timeout = timeout
        self._secret = _key(secret)

    def __repr__(self) -> str:
        return f"WebhookNotifier({self.url!r}, name={self.name!r})"

    def body(self, batch: Sequence[Notification]) -> bytes:
        """The JSON body sent for ``batch``."""
        payload = {"notifications": [notification.to_dict() for notification in batch]}
        return json.dumps(payload, separators=(",", ":"), default=str).encode("utf-8")

    def send(self, batch: Sequence[Notification]) -> None:
        """POST ``batch``; raises ``httpx.HTTPError`` on a transport error or non-2xx."""
        body = self.body(batch)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "handrail-notify",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
        }
        post(self.url, body, headers, timeout=self.timeout, what="webhook")
