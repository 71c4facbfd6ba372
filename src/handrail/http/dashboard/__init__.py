"""The web dashboard: server-rendered pages over the same operations as the API.

No script runs in the browser and nothing is fetched from elsewhere: the pages, their one
stylesheet and their charts (inline SVG) all come from this app. Every page needs a
signed-in principal; every form carries the session's CSRF token, checked before the
form's route runs.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from handrail.http.access import services
from handrail.http.dashboard import approvals, audit, charts, signin, tasks, views

__all__ = ["error_page", "install"]


def error_page(request: Request, status: int, detail: str) -> Response:
    """An HTML error page (the dashboard's answer to a 403, 404, ...)."""
    current = views.session(request)
    name = current.principal
    who = services(request).principals.get(name) if name else None
    return views.render(
        request, "error.html", {"status": status, "detail": detail}, status_code=status, who=who
    )


def install(app: FastAPI, *, secret: str | bytes, max_age: float) -> None:
    """Add the dashboard's pages, forms and stylesheet to ``app``."""
    app.state.dashboard = views.make_dashboard(secret, max_age)

    @app.exception_handler(views.SignInRequired)
    def sign_in(request: Request, exc: views.SignInRequired) -> Response:
        return views.sign_in_redirect(request, exc.next_path)

    guard = [Depends(views.csrf_guard)]
    for module in (signin, tasks, approvals, charts, audit):
        app.include_router(module.router, dependencies=guard, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=views.STATIC), name="static")
