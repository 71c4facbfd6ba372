"""A small "vendor CRM" over real HTTP that misbehaves on command.

``VendorCRM`` runs a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (an ephemeral port) in a
background thread. It keeps versioned records:

- ``GET /records/{id}``: ``200 {"id", "version", "fields"}``, or 404;
- ``PUT /records/{id}`` with ``{"version": v, "fields": {...}}`` (optimistic locking): a
  stale ``version`` gives ``409 {"error": "version conflict", "current_version": n}``; a
  stale ``If-Match`` header gives ``412``; otherwise the fields are merged and the version
  goes up;
- ``POST /records`` with ``{"fields": {...}}``: ``201`` with the new record, or ``422`` when
  ``fields.email`` is missing or has no ``@``; a repeated ``Idempotency-Key`` header gets
  the record created the first time (``200``), not a new one.

Faults are scripted per ``(method, path)`` with :meth:`VendorCRM.fail`: a queue consumed one
request at a time, each fault for ``times`` requests (``None``: until :meth:`VendorCRM.fix`).
A fault answers with a status (and headers and body), drops the connection without an
answer, resets it, handles the request but answers late (after the client gave up), or
makes a concurrent edit before the request is handled. Every request is logged
(:attr:`VendorCRM.requests`) before any fault applies, so a test can count the attempts
that reached the service and see what they sent. Slow answers wait on an event that
:meth:`VendorCRM.stop` sets, so teardown never waits for them.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Fault", "Received", "VendorCRM", "running_crm"]


@dataclass(frozen=True)
class Fault:
    """One way to misbehave. Build with the class methods."""

    kind: str  # "status" | "drop" | "reset" | "slow" | "edit"
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    edit: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def answer(cls, status: int, body: Any = None, headers: dict[str, str] | None = None) -> Fault:
        """Answer with ``status`` (and a JSON ``body``) instead of handling the request."""
        if body is None:
            body = {"error": f"scripted {status}"}
        return cls("status", status=status, headers=dict(headers or {}), body=body)

    @classmethod
    def too_many_requests(cls, retry_after: str | int | float) -> Fault:
        """``429`` with ``Retry-After`` (seconds, or an HTTP-date string)."""
        return cls.answer(429, {"error": "rate limit exceeded"}, {"Retry-After": str(retry_after)})

    @classmethod
    def unavailable(cls, retry_after: str | int | None = None) -> Fault:
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return cls.answer(503, {"error": "service unavailable"}, headers)

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without sending a response."""
        return cls("drop")

    @classmethod
    def reset(cls) -> Fault:
        """Abort the connection (RST) without sending a response."""
        return cls("reset")

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Handle the request (its effect happens) but answer only after ``seconds``
        (longer than the client's timeout: the client sees a read timeout)."""
        return cls("slow", delay=seconds)

    @classmethod
    def concurrent_edit(cls, **fields: Any) -> Fault:
        """Someone else updates the record (version + 1) just before this request."""
        return cls("edit", edit=fields)


@dataclass(frozen=True)
class Received:
    """One request as the service received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float  # time.time() on arrival
    fault: str | None  # the fault applied to it, if any


@dataclass
class _Scripted:
    fault: Fault
    remaining: int | None  # None: until fixed


class VendorCRM:
    """The fake vendor service. Use as a context manager or call start()/stop()."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._faults: dict[tuple[str, str], list[_Scripted]] = {}
        self._requests: list[Received] = []
        self.records: dict[str, dict[str, Any]] = {}
        self.errors: list[BaseException] = []  # unexpected handler errors (a test bug)
        self._next_id = 1
        self._idempotency: dict[str, str] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> VendorCRM:
        crm = self

        class Handler(_Handler):
            service = crm

        server = _Server(("127.0.0.1", 0), Handler)
        server.crm = self
        server.resets = set()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="vendor-crm"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes slow answers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()  # joins the request threads
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> VendorCRM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- the test's API ------------------------------------------------------------------

    def add_record(self, record_id: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            self.records[record_id] = {"id": record_id, "version": 1, "fields": dict(fields)}
            return json.loads(json.dumps(self.records[record_id]))

    def record(self, record_id: str) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self.records[record_id]))

    def created(self) -> list[dict[str, Any]]:
        """The records created through ``POST /records``."""
        with self._lock:
            return [json.loads(json.dumps(r)) for k, r in self.records.items() if k[0] == "r"]

    def edit(self, record_id: str, **fields: Any) -> dict[str, Any]:
        """A change made by someone else: merges ``fields`` and bumps the version."""
        with self._lock:
            return self._edit(record_id, fields)

    def fail(self, method: str, path: str, *faults: Fault, times: int | None = 1) -> None:
        """Queue ``faults`` for the next requests to ``method path``, each for ``times``
        requests (``None``: until :meth:`fix`)."""
        with self._lock:
            queue = self._faults.setdefault((method.upper(), path), [])
            queue.extend(_Scripted(f, times) for f in faults)

    def fix(self, method: str | None = None, path: str | None = None) -> None:
        """Drop the scripted faults (of one endpoint, or all)."""
        with self._lock:
            if method is None:
                self._faults.clear()
            else:
                self._faults.pop((method.upper(), str(path)), None)

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, path: str) -> list[Received]:
        return [r for r in self.requests if r.method == method.upper() and r.path == path]

    def count(self, method: str, path: str) -> int:
        return len(self.requests_to(method, path))

    # -- internals -----------------------------------------------------------------------

    def _edit(self, record_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        record = self.records[record_id]
        record["fields"].update(fields)
        record["version"] += 1
        return json.loads(json.dumps(record))

    def _take_fault(self, method: str, path: str) -> Fault | None:
        queue = self._faults.get((method, path))
        if not queue:
            return None
        head = queue[0]
        if head.remaining is not None:
            head.remaining -= 1
            if head.remaining <= 0:
                queue.pop(0)
        return head.fault

    def _receive(self, method: str, path: str, headers: dict[str, str], body: Any) -> Fault | None:
        with self._lock:
            fault = self._take_fault(method, path)
            self._requests.append(
                Received(method, path, headers, body, time.time(), fault.kind if fault else None)
            )
            return fault

    def _handle(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, str], Any]:
        parts = path.strip("/").split("/")
        with self._lock:
            if parts == ["records"] and method == "POST":
                key = headers.get("idempotency-key")
                if key is not None and key in self._idempotency:
                    return 200, {}, self.records[self._idempotency[key]]
                fields = dict((body or {}).get("fields") or {})
                email = fields.get("email")
                if not isinstance(email, str) or "@" not in email:
                    return 422, {}, {"error": "validation failed: email is invalid"}
                record_id = f"r{self._next_id}"
                self._next_id += 1
                self.records[record_id] = {"id": record_id, "version": 1, "fields": fields}
                if key is not None:
                    self._idempotency[key] = record_id
                return 201, {}, self.records[record_id]
            if len(parts) != 2 or parts[0] != "records":
                return 404, {}, {"error": f"no route {method} {path}"}
            record = self.records.get(parts[1])
            if record is None:
                return 404, {}, {"error": f"no record {parts[1]}"}
            if method == "GET":
                return 200, {"ETag": f'"{record["version"]}"'}, record
            if method == "PUT":
                if_match = headers.get("if-match")
                if if_match is not None and if_match.strip('"') != str(record["version"]):
                    return (
                        412,
                        {},
                        {"error": "precondition failed", "current_version": record["version"]},
                    )
                if (body or {}).get("version") != record["version"]:
                    return (
                        409,
                        {},
                        {"error": "version conflict", "current_version": record["version"]},
                    )
                return 200, {}, self._edit(parts[1], dict(body.get("fields") or {}))
            return 405, {}, {"error": f"{method} not allowed"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    crm: VendorCRM
    resets: set[int]

    def shutdown_request(self, request: Any) -> None:
        if id(request) in self.resets:
            self.resets.discard(id(request))
            request.close()  # SO_LINGER 0: the close sends RST, no FIN first
            return
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return  # the client went away (a timeout, a test's dropped connection)
        if exc is not None:
            self.crm.errors.append(exc)


class _Handler(BaseHTTPRequestHandler):
    service: VendorCRM
    protocol_version = "HTTP/1.0"  # one request per connection: no pooled-socket surprises

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        crm = self.service
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path.split("?", 1)[0]
        fault = crm._receive(self.command, path, headers, body)
        if fault is not None:
            if fault.kind == "status":
                self._reply(fault.status, fault.headers, fault.body)
                return
            if fault.kind == "drop":
                self.close_connection = True
                self.wfile.flush()
                return  # the server closes the socket: no status line at all
            if fault.kind == "reset":
                self.close_connection = True
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.server.resets.add(id(self.connection))  # type: ignore[attr-defined]
                return
            if fault.kind == "edit":
                record_id = path.strip("/").split("/")[-1]
                crm.edit(record_id, **fault.edit)
        status, extra, payload = crm._handle(self.command, path, headers, body)
        if fault is not None and fault.kind == "slow" and crm._stopping.wait(fault.delay):
            self.close_connection = True
            return  # shutting down: give up without answering
        self._reply(status, extra, payload)

    def _reply(self, status: int, headers: dict[str, str], body: Any) -> None:
        data = json.dumps(body).encode()
        with contextlib.suppress(ConnectionError):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)


@contextlib.contextmanager
def running_crm() -> Iterator[VendorCRM]:
    crm = VendorCRM().start()
    try:
        yield crm
    finally:
        crm.stop()
