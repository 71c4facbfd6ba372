"""Sinks: where audit records go besides the log (files, a SIEM, a webhook, stdout).

Each sink is configured with the view it receives: ``"compliance"`` (the redacted,
plain-language view, :func:`~handrail.audit.record.compliance_view`) or ``"technical"``
(raw payloads: sealed envelopes, or opened if the delivery loop is given a vault, see
:mod:`handrail.audit.delivery`). A sink's :meth:`~Sink.send` gets one JSON document and
raises if it could not take it; the delivery loop then retries it later, in order.

A sink's ``name`` keys its outbox: keep it stable, or it starts again from scratch.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from handrail.errors import AuditError, ConfigurationError

__all__ = ["JsonlSink", "Sink", "SinkError", "StdoutSink", "View", "WebhookSink", "encode_document"]

View = Literal["compliance", "technical"]
_VIEWS = ("compliance", "technical")


class SinkError(AuditError):
    """A sink could not take a record (it is retried later)."""


class Sink(Protocol):
    """A destination of audit records."""

    name: str
    """Unique among the sinks of one log: it keys the sink's outbox."""
    view: View
    """Which view of each record it receives."""

    def send(self, document: Mapping[str, Any]) -> None:
        """Deliver one record; raise if it was not taken."""

    def close(self) -> None:
        """Release files or connections."""


def encode_document(document: Mapping[str, Any]) -> bytes:
    """One document as a line of JSON (sorted keys, UTF-8, no trailing newline)."""
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _check_view(view: str) -> View:
    if view not in _VIEWS:
        raise ConfigurationError(f"a sink's view is 'compliance' or 'technical', not {view!r}")
    return "compliance" if view == "compliance" else "technical"


class JsonlSink:
    """Appends one JSON line per record to ``path``, rotating it past ``max_bytes``:
    ``path`` becomes ``path.1``, ``path.1`` becomes ``path.2``, ... and only ``backups``
    rotated files are kept. With ``fsync`` every line is flushed to disk before
    :meth:`send` returns (slower; otherwise a crash may lose lines the outbox already
    counts as delivered)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        view: View = "compliance",
        max_bytes: int = 10 * 1024 * 1024,
        backups: int = 5,
        fsync: bool = False,
        name: str | None = None,
    ) -> None:
        if max_bytes < 1 or backups < 0:
            raise ConfigurationError("max_bytes must be positive and backups not negative")
        self.path = Path(path)
        self.view = _check_view(view)
        self.max_bytes = max_bytes
        self.backups = backups
        self.fsync = fsync
        self.name = name or f"jsonl:{self.path}"
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None

    def _open(self) -> IO[bytes]:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 - kept open between sends
        return self._file

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
            return
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def send(self, document: Mapping[str, Any]) -> None:
        line = encode_document(document) + b"\n"
        with self._lock:
            try:
                handle = self._open()
                if handle.tell() and handle.tell() + len(line) > self.max_bytes:
                    self._rotate()
                    handle = self._open()
                handle.write(line)
                handle.flush()
                if self.fsync:
                    os.fsync(handle.fileno())
            except OSError as exc:
                raise SinkError(f"cannot write audit records to {self.path}: {exc}") from exc

    def files(self) -> list[Path]:
        """The current file and its rotated copies that exist, newest first."""
        found = [self.path] if self.path.exists() else []
        for n in range(1, self.backups + 1):
            rotated = self.path.with_name(f"{self.path.name}.{n}")
            if rotated.exists():
                found.append(rotated)
        return found

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class StdoutSink:
    """Prints one JSON line per record (to ``stream``, default standard output)."""

    def __init__(
        self, *, view: View = "compliance", stream: IO[str] | None = None, name: str = "stdout"
    ) -> None:
        self.view = _check_view(view)
        self.name = name
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, document: Mapping[str, Any]) -> None:
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(encode_document(document).decode("utf-8") + "\n")
            stream.flush()

    def close(self) -> None:
        pass


class WebhookSink:
    """POSTs each record as JSON to ``url``, signed with HMAC-SHA256 under ``secret``.

    Headers: ``X-Handrail-Timestamp`` (seconds since the epoch) and
    ``X-Handrail-Signature: sha256=<hex>``, the HMAC of ``<timestamp>.<body>``; the
    receiver recomputes it and refuses stale timestamps (replays). A response other
    than 2xx, or no response within ``timeout`` seconds, is a failed delivery.
    ``transport`` is an ``httpx`` transport (tests pass ``httpx.MockTransport``). Needs
    ``httpx`` (``pip install httpx``).
    """

    def __init__(
        self,
        url: str,
        secret: str | bytes,
        *,
        view: View = "compliance",
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
        transport: Any = None,
    ) -> None:
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - httpx is there in development
            raise ConfigurationError("the webhook sink needs httpx: pip install httpx") from exc
        if not secret:
            raise ConfigurationError("a webhook sink needs a secret to sign its requests")
        self.url = url
        self.view = _check_view(view)
        self.name = name or f"webhook:{url}"
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self._client = httpx.Client(
            timeout=timeout, headers=dict(headers or {}), transport=transport
        )

    def signature(self, timestamp: str, body: bytes) -> str:
        """The ``X-Handrail-Signature`` value for ``body`` sent at ``timestamp``."""
        digest = hmac.new(self._secret, timestamp.encode() + b"." + body, hashlib.sha256)
        return "sha256=" + digest.hexdigest()

    def send(self, document: Mapping[str, Any]) -> None:
        import httpx

        body = encode_document(document)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Handrail-Timestamp": timestamp,
            "X-Handrail-Signature": self.signature(timestamp, body),
        }
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SinkError(f"webhook {self.url}: {type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise SinkError(f"webhook {self.url} answered {response.status_code}")

    def close(self) -> None:
        self._client.close()
