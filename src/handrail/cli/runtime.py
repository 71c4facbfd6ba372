"""What every command shares: the app or store the global options name, and the principal.

``--app module:attribute`` imports the user's module (the working directory first on
``sys.path``, as uvicorn and celery do) and uses that App's store and clock; without it,
``--db`` names the store. Both are opened on first use, so ``--help`` never imports the
user's code or touches a database.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from handrail.app import App
from handrail.auth import Principal, Principals
from handrail.clock import Clock, SystemClock
from handrail.store.base import Store
from handrail.store.url import open_store

APP_FORMAT_HINT = "write --app module:attribute, for example --app myproject.agents:app"


def load_app(ref: str) -> App:
    """Import ``module:attribute`` and return the :class:`~handrail.App` it names."""
    module_name, sep, attr_path = ref.partition(":")
    module_name, attr_path = module_name.strip(), attr_path.strip()
    if not sep or not module_name or not attr_path:
        raise click.UsageError(f"--app {ref!r}: expected module:attribute; {APP_FORMAT_HINT}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == module_name or module_name.startswith(missing + "."):
            raise click.UsageError(
                f"--app {ref!r}: cannot import module {module_name!r} (no module named "
                f"{missing!r}); run from the directory that holds it or add that directory "
                "to PYTHONPATH"
            ) from None
        raise click.ClickException(
            f"--app {ref!r}: importing {module_name!r} failed: {exc}; install the missing "
            "package in this environment"
        ) from None
    except Exception as exc:
        raise click.ClickException(
            f"--app {ref!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from None
    target: Any = module
    walked: list[str] = []
    for part in attr_path.split("."):
        walked.append(part)
        if not hasattr(target, part):
            owner = module_name + (":" + ".".join(walked[:-1]) if walked[:-1] else "")
            candidates = sorted(
                name for name, value in vars(module).items() if isinstance(value, App)
            )
            hint = (
                f"; Apps defined in {module_name!r}: {', '.join(candidates)}"
                if candidates
                else f"; {module_name!r} defines no handrail.App at module level"
            )
            raise click.UsageError(f"--app {ref!r}: {owner} has no attribute {part!r}{hint}")
        target = getattr(target, part)
    if not isinstance(target, App):
        raise click.UsageError(
            f"--app {ref!r} is a {type(target).__name__}, not a handrail.App; point --app at "
            "the App instance (app = handrail.App(...))"
        )
    return target


def _sqlite_file(target: str) -> str | None:
    """The file a SQLite store target names, or ``None`` for other stores."""
    if target == "memory:" or target.startswith(("postgresql://", "postgres://")):
        return None
    if target.startswith("sqlite:"):
        path = urlsplit(target).path
        return path[1:] if path.startswith("/") else path
    if "://" in target:
        return None
    return target


class Runtime:
    """The global options of one invocation, and what they open (lazily)."""

    def __init__(
        self,
        *,
        app_ref: str | None,
        db: str,
        principal: str | None,
        principals_file: str | None = None,
        token: str | None = None,
    ):
        self.app_ref = app_ref
        self.db = db
        self.principal = principal.strip() if principal and principal.strip() else None
        self.principals_file = principals_file
        self.token = token
        self._app: App | None = None
        self._store: Store | None = None

    @property
    def has_app(self) -> bool:
        return self.app_ref is not None

    def app(self, command: str) -> App:
        """The App ``--app`` names; a usage error naming ``command`` if there is none."""
        if self.app_ref is None:
            raise click.UsageError(
                f"`handrail {command}` needs the app that defines the workflows: pass "
                "--app module:attribute (before the command) or set HANDRAIL_APP"
            )
        return self._loaded(self.app_ref)

    def _loaded(self, ref: str) -> App:
        if self._app is None:
            self._app = load_app(ref)
        return self._app

    def store(self) -> Store:
        """The app's store with ``--app``, else the store ``--db`` names (it must exist)."""
        if self.app_ref is not None:
            return self._loaded(self.app_ref).store
        if self._store is None:
            path = _sqlite_file(self.db)
            if path is not None and not Path(path).exists():
                raise click.ClickException(
                    f"no handrail store at {path!r}; pass --db PATH (or set HANDRAIL_DB) to "
                    "the store your app uses, or --app module:attribute"
                )
            self._store = open_store(self.db)
        return self._store

    def clock(self) -> Clock:
        return self._loaded(self.app_ref).clock if self.app_ref is not None else SystemClock()

    def actor(self, what: str, role: str = "operator") -> str:
        """The authenticated principal for an operator action: ``--as`` names it, the
        token in ``HANDRAIL_TOKEN`` proves it against the principals file, and it must hold
        ``role``. Never assumed: a usage error says what is missing."""
        who = self.authenticated(what)
        who.require(role, what)
        return who.name

    def authenticated(self, what: str) -> Principal:
        """The principal ``--as`` names, authenticated as :meth:`actor` does, whatever its
        roles: for operations that check roles themselves (the audit operations)."""
        if self.principal is None:
            root, _, rest = click.get_current_context().command_path.partition(" ")
            raise click.UsageError(
                f"{what} must name who does it: pass --as NAME before the command "
                f"(`{root} --as alice {rest} ...`) or set HANDRAIL_PRINCIPAL"
            )
        if self.principals_file is None:
            raise click.UsageError(
                f"{what} needs an authenticated principal: set HANDRAIL_PRINCIPALS (or pass "
                "--principals) to a principals file and HANDRAIL_TOKEN to your token; "
                "`handrail principals add NAME --role operator` creates both"
            )
        principals = Principals.from_file(self.principals_file)
        return principals.authenticate(self.principal, self.token)

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
        if self._store is not None:
            self._store.close()


def runtime() -> Runtime:
    """The :class:`Runtime` of the current invocation."""
    return click.get_current_context().find_object(Runtime) or _missing()


def _missing() -> Runtime:
    raise RuntimeError("handrail commands run under the root `handrail` group")
