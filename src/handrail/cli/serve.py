"""`handrail serve`: the HTTP API and dashboard on the store the global options name."""

from __future__ import annotations

import click

from handrail.auth import Principals
from handrail.cli.runtime import runtime


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="TCP port."
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    help="uvicorn's log level.",
)
def serve(host: str, port: int, log_level: str) -> None:
    """Serve the HTTP API (OpenAPI schema at /openapi.json) and the dashboard until Ctrl-C.

    Principals come from --principals (or HANDRAIL_PRINCIPALS): API clients send
    `Authorization: Bearer TOKEN`; people sign in to the dashboard with their token.
    Dashboard sessions are signed with HANDRAIL_SESSION_SECRET (random if unset: sessions
    then end when the server stops). Needs the server extra: pip install 'handrail[server]'.
    """
    rt = runtime()
    if rt.principals_file is None:
        raise click.UsageError(
            "`handrail serve` needs the principals file that holds who may sign in: pass "
            "--principals PATH (before the command) or set HANDRAIL_PRINCIPALS; "
            "`handrail principals add NAME --role operator --file PATH` creates one"
        )
    principals = Principals.from_file(rt.principals_file)
    try:
        import uvicorn

        from handrail.http import create_app
    except ImportError as exc:
        raise click.ClickException(
            f"{exc}; install the server extra: pip install 'handrail[server]'"
        ) from None
    app = create_app(rt.store(), rt.clock(), principals)
    click.echo(f"handrail: dashboard at http://{host}:{port}/, API under /api", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, ws="none", lifespan="off")
