"""What every dashboard page shares: templates, the session, the viewer, the CSRF guard."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, cast
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from handrail.auth import Principal
from handrail.http.access import services
from handrail.http.sessions import COOKIE, Session, SessionCodec
from handrail.http.timeline import ago, excerpt, when
from handrail.narrative import compact

_HERE = Path(__file__).resolve().parent.parent
TEMPLATES = _HERE / "templates"
STATIC = _HERE / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SignInRequired(Exception):
    """The page needs a signed-in principal; the browser goes to the sign-in page."""

    def __init__(self, next_path: str):
        super().__init__(next_path)
        self.next_path = next_path


@dataclass(frozen=True)
class Dashboard:
    """The dashboard's own state: its templates and its session codec."""

    env: Environment
    codec: SessionCodec


def make_dashboard(secret: str | bytes, max_age: float) -> Dashboard:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["ago"] = ago
    env.filters["json"] = compact
    env.filters["excerpt"] = excerpt
    return Dashboard(env=env, codec=SessionCodec(secret, max_age=max_age))


def dashboard_of(request: Request) -> Dashboard:
    return cast(Dashboard, request.app.state.dashboard)


def session(request: Request) -> Session:
    """This browser's session (a new, anonymous one if it has none or a bad one)."""
    cached = getattr(request.state, "session", None)
    if isinstance(cached, Session):
        return cached
    found = dashboard_of(request).codec.loads(request.cookies.get(COOKIE))
    current = found or Session()
    request.state.session = current
    return current


def save(request: Request, response: Response) -> Response:
    """Send the session cookie again if the session changed; add the security headers."""
    current = session(request)
    if current.changed:
        codec = dashboard_of(request).codec
        response.set_cookie(
            COOKIE,
            codec.dumps(current),
            max_age=int(codec.max_age),
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
    response.headers.update(SECURITY_HEADERS)
    return response


def viewer(request: Request) -> Principal:
    """The signed-in principal; the sign-in page for anyone else."""
    name = session(request).principal
    who = services(request).principals.get(name) if name else None
    if who is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    return who


Viewer = Annotated[Principal, Depends(viewer)]


def require(who: Principal, roles: tuple[str, ...], action: str) -> None:
    """A 403 page unless ``who`` holds one of ``roles``."""
    if not who.roles & set(roles):
        needed = " or ".join(roles)
        raise HTTPException(
            403,
            f"{who.name} may not {action}: it needs the {needed} role "
            f"(has: {', '.join(sorted(who.roles)) or 'none'})",
        )


async def csrf_guard(request: Request) -> None:
    """Refuse every form POST whose ``csrf_token`` is not this session's."""
    if request.method != "POST":
        return
    form = await request.form()
    sent = form.get("csrf_token")
    current = dashboard_of(request).codec.loads(request.cookies.get(COOKIE))
    if (
        current is None
        or not isinstance(sent, str)
        or not hmac.compare_digest(sent.encode(), current.csrf.encode())
    ):
        raise HTTPException(
            403,
            "this form's CSRF token is missing or does not match your session: reload the "
            "page and submit the form again",
        )


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    who: Principal | None = None,
) -> Response:
    """A page from ``template``, with the session's CSRF token and messages."""
    current = session(request)
    page = (
        dashboard_of(request)
        .env.get_template(template)
        .render(
            request=request,
            who=who,
            csrf_token=current.csrf,
            messages=current.take_flash(),
            path=request.url.path,
            audit_nav=who is not None and bool(who.roles & {"auditor", "engineer"}),
            **(context or {}),
        )
    )
    return save(request, HTMLResponse(page, status_code=status_code))


def redirect(request: Request, to: str) -> Response:
    """A 303 to ``to`` (a POST's answer), saving the session."""
    return save(request, RedirectResponse(to, status_code=303))


def sign_in_redirect(request: Request, next_path: str) -> Response:
    return save(request, RedirectResponse(f"/login?next={quote(next_path)}", status_code=303))


def local_path(value: str | None, default: str = "/tasks") -> str:
    """``value`` if it is a path on this site (no open redirect), else ``default``."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        # browsers drop tabs and newlines and read "\\" as "/": "/\t/evil" is "//evil"
        or any(c == "\\" or ord(c) <= 0x20 or ord(c) == 0x7F for c in value)
    ):
        return default
    return value
