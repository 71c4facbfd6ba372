"""The app factory: the JSON API, the dashboard, and handrail's errors as HTTP statuses.

=========================  ======  ==========================================================
handrail error             status  why
=========================  ======  ==========================================================
NotFoundError              404     the id names nothing
InvalidOperationError      409     the task's state does not allow it (it names the task)
InvalidOperationError      422     the request itself is wrong (it names no task)
SerializationError         422     a value JSON cannot carry
ConfigurationError         400     a request the app's setup cannot serve
AuthenticationError        401     unknown principal or wrong token
AccessDenied               403     an audit operation the principal's roles do not allow
StaleWriteError            409     the task kept changing under the write; try again
StoreError                 503     the store failed
=========================  ======  ==========================================================
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from handrail.audit_ops import AccessDenied
from handrail.auth import AuthenticationError, Principals
from handrail.clock import Clock
from handrail.errors import (
    ConfigurationError,
    InvalidOperationError,
    NotFoundError,
    SerializationError,
    StaleWriteError,
    StoreError,
)
from handrail.http import dashboard
from handrail.http.access import Anyone, Services
from handrail.http.models import Me
from handrail.http.routes import (
    approvals,
    audit,
    halts,
    interventions,
    metrics,
    notifications,
    tasks,
)
from handrail.monitoring import Monitor
from handrail.store.base import Store

_LISTS = {
    "task": "GET /api/tasks",
    "approval request": "GET /api/approvals",
    "intervention": "GET /api/interventions",
    "audit record": "GET /api/audit/records",
}


def _version() -> str:
    try:
        return version("handrail")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


_API_PATHS = ("/metrics", "/healthz", "/openapi.json")


def _problem(
    request: Request,
    status: int,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    """The error as JSON for the API, as a page for the dashboard."""
    path = request.url.path
    if path == "/api" or path.startswith("/api/") or path in _API_PATHS:
        return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)
    return dashboard.error_page(request, status, detail)


def _where(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts[1:] and parts[0] in ("query", "path", "header", "cookie"):
        item = f" (value {int(parts[2]) + 1})" if parts[2:] and parts[2].isdigit() else ""
        return f"{parts[0]} parameter {parts[1]!r}{item}"
    if parts and parts[0] == "body":
        return "body" + (f" field {'.'.join(parts[1:])!r}" if parts[1:] else "")
    return ".".join(parts) or "request"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotFoundError)
    def not_found(request: Request, exc: NotFoundError) -> Response:
        hint = _LISTS.get(exc.kind)
        more = f"; list them with {hint}" if hint else ""
        return _problem(request, 404, f"no {exc.kind} with id {exc.ident!r}{more}")

    @app.exception_handler(InvalidOperationError)
    def invalid(request: Request, exc: InvalidOperationError) -> Response:
        return _problem(request, 409 if exc.task_id is not None else 422, str(exc))

    @app.exception_handler(SerializationError)
    def unserializable(request: Request, exc: SerializationError) -> Response:
        return _problem(request, 422, str(exc))

    @app.exception_handler(ConfigurationError)
    def misconfigured(request: Request, exc: ConfigurationError) -> Response:
        return _problem(request, 400, str(exc))

    @app.exception_handler(AuthenticationError)
    def unauthenticated(request: Request, exc: AuthenticationError) -> Response:
        return _problem(request, 401, str(exc), {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(AccessDenied)
    def denied(request: Request, exc: AccessDenied) -> Response:
        return _problem(request, 403, str(exc))

    @app.exception_handler(StaleWriteError)
    def stale(request: Request, exc: StaleWriteError) -> Response:
        return _problem(request, 409, str(exc))

    @app.exception_handler(StoreError)
    def store_failed(request: Request, exc: StoreError) -> Response:
        return _problem(request, 503, f"the store failed: {exc}; try again later")

    @app.exception_handler(RequestValidationError)
    def malformed(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in errors)
        return _problem(request, 422, detail or "the request is malformed", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _problem(request, exc.status_code, str(exc.detail), exc.headers)


def create_app(
    store: Store,
    clock: Clock,
    principals: Principals,
    *,
    session_secret: str | bytes | None = None,
    session_max_age: float = 8 * 3600,
) -> FastAPI:
    """The HTTP API and dashboard over ``store``. Every route names a principal from
    ``principals`` (bearer token for ``/api``, signed session cookie for the dashboard).

    ``session_secret`` signs the dashboard's cookies (default ``$HANDRAIL_SESSION_SECRET``,
    else a random one: sessions then end when the process does).
    """
    secret = session_secret or os.environ.get("HANDRAIL_SESSION_SECRET") or secrets.token_bytes(32)
    app = FastAPI(
        docs_url=None,  # Swagger UI and ReDoc load their assets from a CDN: none here
        redoc_url=None,
        title="handrail",
        version=_version(),
        description="Tasks, approvals, interventions and halts of a handrail store. "
        "Authenticate with `Authorization: Bearer TOKEN` (a token from `handrail principals "
        "add`); each route names the role it needs.",
        openapi_tags=[
            {"name": "tasks", "description": "Any principal reads; operators change."},
            {"name": "approvals", "description": "Any principal reads; approvers decide."},
            {"name": "interventions", "description": "Any principal reads; operators resolve."},
            {"name": "halts", "description": "Any principal reads; operators halt/release."},
            {"name": "audit", "description": "Auditors and engineers; raw payloads: engineers."},
            {"name": "metrics", "description": "Prometheus text; any principal."},
        ],
    )
    app.state.handrail = Services(store=store, clock=clock, principals=principals)
    app.state.monitor = Monitor(store, clock=clock)
    _install_error_handlers(app)

    @app.get("/healthz", tags=["meta"], summary="Liveness (no authentication)")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/me", tags=["meta"], response_model=Me, summary="Who the token names")
    def me(who: Anyone) -> Me:
        return Me(name=who.name, roles=sorted(who.roles))

    for module in (tasks, approvals, interventions, halts, notifications, audit, metrics):
        app.include_router(module.router)
    dashboard.install(app, secret=secret, max_age=session_max_age)
    return app
