"""The root `handrail` command group: global options, error translation, the subcommands."""

from __future__ import annotations

import os
from typing import Any

import click
from click.core import ParameterSource

from handrail.cli import (
    approvals,
    demo,
    halts,
    interventions,
    notifications,
    principals,
    tasks,
    worker,
)
from handrail.cli.audit import audit
from handrail.cli.monitoring import metrics, status
from handrail.cli.runtime import Runtime
from handrail.cli.serve import serve
from handrail.errors import HandrailError


class _HandrailGroup(click.Group):
    """Turns handrail's errors (whose messages say what to do) into a clean exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HandrailError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_HandrailGroup)
@click.option(
    "--app",
    "app_ref",
    envvar="HANDRAIL_APP",
    metavar="MODULE:ATTR",
    help="The handrail.App that defines your workflows, e.g. myproject.agents:app "
    "(imported with the working directory on sys.path). Its store is the one used. "
    "[env: HANDRAIL_APP]",
)
@click.option(
    "--db",
    envvar="HANDRAIL_DB",
    default="handrail.db",
    show_default=True,
    metavar="URL_OR_PATH",
    help="The store to use when no --app is given: a SQLite path, sqlite:///file.db or "
    "postgresql://... [env: HANDRAIL_DB]",
)
@click.option(
    "--as",
    "principal",
    envvar="HANDRAIL_PRINCIPAL",
    metavar="PRINCIPAL",
    help="Who performs operator actions (start, cancel, resume, resolve); recorded in the "
    "journal. Commands that change tasks refuse to run without it. [env: HANDRAIL_PRINCIPAL]",
)
@click.option(
    "--principals",
    "principals_file",
    envvar="HANDRAIL_PRINCIPALS",
    metavar="PATH",
    help="The principals file that authenticates --as (with the token in HANDRAIL_TOKEN). "
    "[env: HANDRAIL_PRINCIPALS]",
)
@click.version_option(package_name="handrail")
@click.pass_context
def cli(
    ctx: click.Context,
    app_ref: str | None,
    db: str,
    principal: str | None,
    principals_file: str | None,
) -> None:
    """handrail: durable, gated, audited runs for agents that take real actions.

    Global options go before the command:
    handrail --app myproject.agents:app --as alice tasks list
    """
    if app_ref is not None and ctx.get_parameter_source("db") is ParameterSource.COMMANDLINE:
        click.echo(
            "note: --db is ignored because --app is given; the app's own store is used",
            err=True,
        )
    rt = Runtime(
        app_ref=app_ref,
        db=db,
        principal=principal,
        principals_file=principals_file,
        token=os.environ.get("HANDRAIL_TOKEN"),
    )
    ctx.obj = rt
    ctx.call_on_close(rt.close)


cli.add_command(tasks.tasks)
cli.add_command(interventions.interventions)
cli.add_command(approvals.approvals)
cli.add_command(notifications.notifications)
cli.add_command(worker.worker)
cli.add_command(demo.demo)
cli.add_command(halts.halt)
cli.add_command(halts.release)
cli.add_command(halts.halts)
cli.add_command(principals.principals)
cli.add_command(status)
cli.add_command(metrics)
cli.add_command(serve)
cli.add_command(audit)
