"""What the HTTP API and dashboard tests share: an app, its principals, a live server.

The server is uvicorn serving ``handrail.http.create_app`` on 127.0.0.1 at a free port, in
a thread of the test process, over a real SQLite store; a real in-process worker runs the
tasks. Nothing is mocked.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from handrail import App, TaskContext
from handrail.auth import Principals, add_principal
from handrail.http import create_app
from handrail.journal import TaskStatus
from handrail.store.sqlite import SQLiteStore

ROLES = {
    "olivia": ["operator"],
    "alice": ["approver"],
    "audrey": ["auditor"],
    "eric": ["engineer"],
    "root": ["operator", "approver", "auditor", "engineer"],
}


def build_app(db: Path) -> App:
    """The workflows the tests drive: a greeting, a gated report, a guarded read."""
    app = App(SQLiteStore(db), max_inline_wait=0.0)

    @app.tool(idempotent=True, reversibility="fully_reversible")
    def lookup_greeting(name: str) -> str:
        return f"Hello, {name}!"

    @app.tool(
        reversibility="irreversible",
        describe="Send the quarterly report to {recipient}",
        expected_outcome="{recipient} receives the report; it cannot be unsent",
    )
    def send_report(ledger: str, recipient: str) -> str:
        with open(ledger, "a", encoding="utf-8") as f:
            f.write(f"sent to {recipient}\n")
        return f"sent to {recipient}"

    @app.tool(idempotent=True)
    def read_vault(marker: str) -> str:
        if not Path(marker).exists():
            raise PermissionError(f"access to the vault is denied until {marker} exists")
        return "vault read"

    @app.workflow
    def greet(ctx: TaskContext, name: str) -> str:
        ctx.reason(f"The user wants a greeting for {name}; look it up.")
        return str(lookup_greeting(name))

    @app.workflow(agent="report-bot")
    def report(ctx: TaskContext, ledger: str, recipient: str) -> str:
        ctx.reason(f"The quarter closed; {recipient} gets the report.")
        return str(send_report(ledger, recipient))

    @app.workflow(queue="vault")
    def guarded(ctx: TaskContext, marker: str) -> str:
        ctx.reason("Read the vault once access is granted.")
        return str(read_vault(marker))

    return app


def write_principals(path: Path) -> dict[str, str]:
    """A principals file with one principal per role (and ``root`` with all of them)."""
    return {name: add_principal(path, name, roles) for name, roles in ROLES.items()}


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def live_server(asgi: Any) -> Iterator[str]:
    """Serve ``asgi`` with uvicorn on 127.0.0.1 (a free port) in a thread; yield its URL."""
    sock = free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(asgi, log_level="warning", ws="none", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@dataclass
class Site:
    """A running site: its URL, the app behind it and each principal's token."""

    url: str
    app: App
    tokens: dict[str, str]
    ledger: Path
    tmp: Path

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def wait_status(
        self, task_id: str, wanted: TaskStatus | Callable[[TaskStatus], bool], timeout: float = 15
    ) -> TaskStatus:
        """Poll the store until the task reaches ``wanted``; fail with where it stands."""
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            record = self.app.store.get_task(task_id)
            status = record.status if record else None
            if status is not None and (wanted(status) if callable(wanted) else status is wanted):
                return status
            time.sleep(0.05)
        raise AssertionError(f"task {task_id} is {status}, not {wanted}, after {timeout} s")


@contextmanager
def running_site(tmp: Path) -> Iterator[Site]:
    """An app over a fresh SQLite store, a worker, and the HTTP face on a live server."""
    app = build_app(tmp / "handrail.db")
    tokens = write_principals(tmp / "principals.toml")
    principals = Principals.from_file(tmp / "principals.toml")
    worker = app.worker(concurrency=2, poll_interval=0.05).start()
    try:
        with live_server(create_app(app.store, app.clock, principals)) as url:
            yield Site(url=url, app=app, tokens=tokens, ledger=tmp / "ledger.txt", tmp=tmp)
    finally:
        worker.stop()
        app.close()
