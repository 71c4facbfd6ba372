"""Who is asking, and whether their roles allow it: the API's bearer-token dependencies.

A bearer token alone names its principal (the principals file keeps each token's SHA-256).
A missing or unknown token is a 401; a known principal without the role a route needs is a
403 whose message names the role.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from handrail.auth import AuthenticationError, Principal, Principals
from handrail.clock import Clock
from handrail.store.base import Store

ANY_ROLE: tuple[str, ...] = ("operator", "approver", "auditor", "engineer")


@dataclass(frozen=True)
class Services:
    """What every route works on: the store, the clock and the principals."""

    store: Store
    clock: Clock
    principals: Principals


def services(request: Request) -> Services:
    return cast(Services, request.app.state.handrail)


_bearer = HTTPBearer(
    auto_error=False,
    description="A principal's token, as `handrail principals add` printed it.",
)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise HTTPException(
            401,
            "authentication required: send `Authorization: Bearer TOKEN` with a token from "
            "`handrail principals add`",
            headers=_CHALLENGE,
        )
    try:
        return services(request).principals.identify(credentials.credentials)
    except AuthenticationError as exc:
        raise HTTPException(401, str(exc), headers=_CHALLENGE) from None


def forbidden(who: Principal, roles: tuple[str, ...], action: str) -> HTTPException:
    needed = " or ".join(repr(r) for r in roles)
    return HTTPException(
        403,
        f"{who.name} may not {action}: it needs the {needed} role "
        f"(has: {', '.join(sorted(who.roles)) or 'none'})",
    )


def role(*roles: str, action: str) -> Callable[..., Principal]:
    """A dependency: the caller, who must hold one of ``roles`` to do ``action``."""

    def check(who: Annotated[Principal, Depends(_principal)]) -> Principal:
        if not who.roles & set(roles):
            raise forbidden(who, roles, action)
        return who

    return check


Anyone = Annotated[Principal, Depends(role(*ANY_ROLE, action="read"))]
"""Any authenticated principal (reading tasks, approvals, interventions, halts)."""

Operator = Annotated[Principal, Depends(role("operator", action="change tasks"))]
Approver = Annotated[Principal, Depends(role("approver", action="decide approvals"))]
Svc = Annotated[Services, Depends(services)]
