"""`metrics_app` serves a monitor's exposition as an ASGI app (issue 6)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from handrail import App, TaskContext
from handrail.monitoring import CONTENT_TYPE, Monitor, metrics_app, render_metrics
from handrail.testing import ManualClock, MemoryStore


def get(asgi: Callable[..., Any]) -> tuple[int, dict[str, str], bytes]:
    """One GET through an ASGI app, as a server would make it."""
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": []}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(asgi(scope, receive, send))
    start, body = sent
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, body["body"]


def test_metrics_app_serves_the_exposition() -> None:
    app = App(MemoryStore(), clock=ManualClock(start=1000.0))

    @app.workflow
    def wf(ctx: TaskContext) -> str:
        return "done"

    app.start(wf)
    monitor = Monitor.for_app(app)
    status, headers, body = get(metrics_app(monitor))
    assert status == 200
    assert headers["content-type"] == CONTENT_TYPE
    assert b'handrail_tasks{queue="default",status="pending"} 1.0' in body
    assert body == render_metrics(monitor)  # the same cached snapshot
