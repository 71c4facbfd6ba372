"""Signing in with a token, and out again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from handrail.auth import AuthenticationError
from handrail.http.access import services
from handrail.http.dashboard import views
from handrail.http.sessions import Session

router = APIRouter()


@router.get("/")
def home(request: Request) -> Response:
    return views.redirect(request, "/tasks")


@router.get("/login")
def login_page(
    request: Request, next: Annotated[str | None, Query(max_length=2000)] = None
) -> Response:
    return views.render(request, "login.html", {"next": views.local_path(next)})


@router.post("/login")
def login(
    request: Request,
    token: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/tasks",
) -> Response:
    try:
        who = services(request).principals.identify(token.strip())
    except AuthenticationError:
        return views.render(
            request,
            "login.html",
            {
                "next": views.local_path(next),
                "error": "That token names no principal. Use the token `handrail principals "
                "add` printed for you.",
            },
            status_code=401,
        )
    current = views.session(request)
    current.sign_in(who.name)
    current.say(f"Signed in as {who.name} ({', '.join(sorted(who.roles)) or 'no roles'}).")
    return views.redirect(request, views.local_path(next))


@router.post("/logout")
def logout(request: Request) -> Response:
    fresh = Session()
    fresh.say("Signed out.")
    request.state.session = fresh
    return views.redirect(request, "/login")
