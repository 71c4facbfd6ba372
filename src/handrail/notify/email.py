"""E-mail over SMTP: one plain-text message per batch, listing every field of every
request."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from handrail.errors import ConfigurationError
from handrail.notify.base import Notification, batch_title, decide_hint, fields_of, iso_utc

if TYPE_CHECKING:
    from email.message import EmailMessage

SUBJECT_PREFIX: Final = "[handrail] "
MAX_SUBJECT_CHARS: Final = 200


def _table(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """``label: value`` lines, values aligned; continuation lines indented under them."""
    width = max((len(label) for label, _ in pairs), default=0) + 2
    lines = []
    for label, value in pairs:
        first, *rest = value.splitlines() or [""]
        lines.append(f"  {label + ':':<{width}}{first}")
        lines.extend(f"  {'':<{width}}{line}" for line in rest)
    return lines


def email_body(batch: Sequence[Notification], *, now: float | None = None) -> str:
    """The plain-text body for ``batch``."""
    now = time.time() if now is None else now
    lines = [batch_title(batch), ""]
    for notification in batch:
        if not notification.requests:
            lines += [f"== {notification.title} ==", ""]
            lines += _table([(key, str(value)) for key, value in notification.details.items()])
            lines.append("")
        for request in notification.requests:
            lines += [f"== {notification.title} ==", ""]
            lines += _table(fields_of(request, now=now))
            lines += ["", f"  Decide with: {decide_hint(request)}   (or deny)", ""]
    lines += ["-- ", f"Sent by handrail at {iso_utc(now)}."]
    return "\n".join(lines) + "\n"


class EmailNotifier:
    """Sends each batch as one e-mail through an SMTP server (optionally STARTTLS and
    login)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        recipients: Sequence[str],
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        name: str = "email",
    ) -> None:
        if isinstance(recipients, str):
            recipients = [recipients]
        if not sender or not recipients:
            raise ConfigurationError(f"notifier {name!r}: give a sender and at least one recipient")
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = tuple(recipients)
        self.starttls = starttls
        self.username = username
        self._password = password
        self.timeout = timeout
        self.name = name

    def __repr__(self) -> str:
        return f"EmailNotifier({self.host!r}, {self.port}, name={self.name!r})"

    def message(self, batch: Sequence[Notification], *, now: float | None = None) -> EmailMessage:
        """The e-mail sent for ``batch``."""
        from email.message import EmailMessage
        from email.utils import formatdate, make_msgid

        now = time.time() if now is None else now
        message = EmailMessage()
        subject = SUBJECT_PREFIX + batch_title(batch)
        if len(subject) > MAX_SUBJECT_CHARS:
            subject = subject[: MAX_SUBJECT_CHARS - 1] + "…"
        message["Subject"] = subject
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Date"] = formatdate(now, usegmt=True)
        # make_msgid() without a domain asks DNS for this host's name; the sender's is enough.
        message["Message-ID"] = make_msgid(
            domain=self.sender.rpartition("@")[2] or "handrail.invalid"
        )
        message.set_content(email_body(batch, now=now))
        return message

    def send(self, batch: Sequence[Notification]) -> None:
        """Deliver ``batch``; raises ``smtplib.SMTPException`` or ``OSError`` on failure."""
        import smtplib
        import ssl

        message = self.message(batch)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username is not None:
                smtp.login(self.username, self._password or "")
            smtp.send_message(message, from_addr=self.sender, to_addrs=list(self.recipients))
