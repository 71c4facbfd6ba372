"""The dashboard's session: a signed cookie naming the signed-in principal and its CSRF token.

The cookie holds ``base64url(json) "." base64url(HMAC-SHA256(secret, base64url(json)))``.
Nothing in it is secret (a principal's name, a random CSRF token, times, one-shot
messages); the signature is what makes it trustworthy, and the server checks it, and its
age, on every request. Signing in replaces the CSRF token, so a token planted before
sign-in is worthless after it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

COOKIE = "handrail_session"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class Session:
    """One browser's session. ``changed`` says whether the cookie must be sent again."""

    csrf: str = field(default_factory=new_csrf_token)
    principal: str | None = None
    issued_at: float = field(default_factory=time.time)
    flash: list[dict[str, str]] = field(default_factory=list)
    changed: bool = True

    def sign_in(self, name: str) -> None:
        self.principal = name
        self.csrf = new_csrf_token()
        self.issued_at = time.time()
        self.changed = True

    def say(self, text: str, level: str = "info") -> None:
        """A message for the next page this browser sees."""
        self.flash.append({"level": level, "text": text})
        self.changed = True

    def take_flash(self) -> list[dict[str, str]]:
        messages, self.flash = self.flash, []
        if messages:
            self.changed = True
        return messages


class SessionCodec:
    """Signs sessions into cookie values and checks them back."""

    def __init__(self, secret: str | bytes, *, max_age: float):
        key = secret.encode() if isinstance(secret, str) else secret
        # a derived key: the configured secret is never used for anything else directly
        self._key = hashlib.sha256(b"handrail-session\x00" + key).digest()
        self.max_age = max_age

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def dumps(self, session: Session) -> str:
        data: dict[str, Any] = {"c": session.csrf, "p": session.principal, "i": session.issued_at}
        if session.flash:
            data["f"] = session.flash
        payload = _b64(json.dumps(data, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def loads(self, value: str | None) -> Session | None:
        """The session in ``value``, or ``None`` if it is missing, forged or too old."""
        if not value or value.count(".") != 1:
            return None
        payload, signature = value.split(".")
        try:
            expected = self._sign(payload)
        except UnicodeEncodeError:
            return None
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return None
        try:
            data: Any = json.loads(_unb64(payload))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        issued = data.get("i")
        if not isinstance(issued, int | float) or time.time() - issued > self.max_age:
            return None
        principal = data.get("p")
        flash = data.get("f") or []
        return Session(
            csrf=data["c"],
            principal=principal if isinstance(principal, str) else None,
            issued_at=float(issued),
            flash=[m for m in flash if isinstance(m, dict)],
            changed=False,
        )
