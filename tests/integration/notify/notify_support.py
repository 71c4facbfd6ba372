"""Support for the notifier tests: sample approval requests, and real receivers on
127.0.0.1: an HTTP server that records what it is sent and answers scripted statuses, and
an SMTP server (aiosmtpd) that records mail.

The HTTP server is a stdlib ``ThreadingHTTPServer`` on an ephemeral port. Each request is
recorded before it is answered; :meth:`HttpReceiver.fail` queues statuses for the next
requests (then ``200`` again) and :meth:`HttpReceiver.stall` makes requests hang until
:meth:`HttpReceiver.release` (or stop).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from handrail.approvals import ApprovalRequest

WAIT = 10.0
"""Generous upper bound for waiting on something that happens in another thread."""


def make_request(n: int = 1, **overrides: Any) -> ApprovalRequest:
    """A pending request whose every field has a distinct value. Its times sit half a minute
    off whole minutes, so "in N min" reads the same for the next 30 seconds."""
    now = time.time()
    values: dict[str, Any] = {
        "request_id": f"apr-{n:03d}",
        "task_id": f"task-{n:03d}",
        "requesting_agent": "billing-agent",
        "proposed_action": f"send_wire #{n}",
        "action_parameters": {"amount": 1250 + n, "currency": "EUR", "to": f"IBAN-{n}"},
        "agent_reasoning": f"Invoice {n} is due tomorrow and matches the purchase order.",
        "expected_outcome": f"EUR {1250 + n} leaves the operating account",
        "reversibility": "irreversible",
        "auto_approve_after": None,
        "auto_deny_after": 1800.0,
        "context_summary": f"Vendor ACME, invoice INV-{n}, third payment this month",
        "approvers": ("alice", "bob"),
        "quorum": 2,
        "group": "finance",
        "tool": "bank.send_wire",
        "step_index": 3 + n,
        "digest": f"sha256:{n:064x}",
        "created_at": now - 90,
        "expires_at": now + 30 * 60 + 30,
        "initiator": "carol",
        "remind_at": now + 25 * 60 + 30,
        "supersedes": f"apr-{n:03d}-old",
    }
    values.update(overrides)
    return ApprovalRequest(**values)


@dataclass(frozen=True)
class Delivery:
    """One POST as the receiver got it."""

    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    status: int  # what the receiver answered

    def json(self) -> Any:
        return json.loads(self.body)


class HttpReceiver:
    """An HTTP endpoint on 127.0.0.1 that records every POST."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._deliveries: list[Delivery] = []
        self._statuses: deque[int] = deque()
        self._fail_always: int | None = None
        self._go = threading.Event()
        self._go.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {key.lower(): value for key, value in self.headers.items()}
                status = receiver._record(self.path, headers, body)
                receiver._go.wait()
                answer = json.dumps({"status": status}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def fail(self, *statuses: int) -> None:
        """Answer the next requests with ``statuses``, one each."""
        with self._cond:
            self._statuses.extend(statuses)

    def fail_always(self, status: int) -> None:
        with self._cond:
            self._fail_always = status

    def stall(self) -> None:
        """Hold every answer from now on until :meth:`release`."""
        self._go.clear()

    def release(self) -> None:
        self._go.set()

    def _record(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self._cond:
            status = self._statuses.popleft() if self._statuses else self._fail_always or 200
            self._deliveries.append(Delivery(path, headers, body, status))
            self._cond.notify_all()
            return status

    @property
    def deliveries(self) -> list[Delivery]:
        with self._cond:
            return list(self._deliveries)

    def wait_for(self, count: int, timeout: float = WAIT) -> list[Delivery]:
        """The deliveries once there are at least ``count`` (fails after ``timeout``)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._deliveries) >= count, timeout):
                raise AssertionError(f"expected {count} deliveries, got {len(self._deliveries)}")
            return list(self._deliveries)

    def start(self) -> HttpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(WAIT)


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


@dataclass(frozen=True)
class Mail:
    """One message as the SMTP server got it."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class _MailHandler:
    """aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.mails: list[Mail] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self.cond:
            self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))
            self.cond.notify_all()
        return "250 Message accepted for delivery"


class _EphemeralController(Controller):
    """aiosmtpd's Controller on port 0: it learns the port the OS picked before it makes
    its own readiness connection (which would otherwise go to port 0)."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpReceiver:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that records what it is sent."""

    def __init__(self) -> None:
        self._handler = _MailHandler()
        self._controller = _EphemeralController(
            self._handler, hostname="127.0.0.1", port=0, server_hostname="localhost"
        )

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def wait_for(self, count: int, timeout: float = WAIT) -> list[Mail]:
        handler = self._handler
        with handler.cond:
            if not handler.cond.wait_for(lambda: len(handler.mails) >= count, timeout):
                raise AssertionError(f"expected {count} mails, got {len(handler.mails)}")
            return list(handler.mails)

    def start(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


@contextmanager
def smtp_receiver() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()
