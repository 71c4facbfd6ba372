"""The HTTP face: a JSON API (with its OpenAPI document) and a web dashboard, one app.

Both call the operations layer the CLI calls (:mod:`handrail.ops`,
:mod:`handrail.decisions`); neither holds logic of its own. Every request names a
principal: the API by a bearer token, the dashboard by a signed session cookie made when
someone signs in with their token. Roles decide what each principal may do.

Needs the ``server`` extra (``pip install 'handrail[server]'``); ``import handrail`` never
imports this package.
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
    import jinja2  # noqa: F401
    import python_multipart  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"handrail's HTTP API needs the server extra ({exc.name} is missing): "
        "pip install 'handrail[server]'"
    ) from exc

from handrail.http.app import create_app

__all__ = ["create_app"]
