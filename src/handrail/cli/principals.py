"""`handrail principals`: who may act through the CLI."""

from __future__ import annotations

import os

import click

from handrail.auth import ROLES, add_principal

DEFAULT_FILE = "handrail-principals.toml"


@click.group()
def principals() -> None:
    """Manage the principals file that authenticates operator actions (--as + token)."""


@principals.command("add")
@click.argument("name")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice(ROLES),
    help="A role to grant (repeatable).",
)
@click.option(
    "--file",
    "path",
    metavar="PATH",
    help=f"The principals file (default: $HANDRAIL_PRINCIPALS, else ./{DEFAULT_FILE}).",
)
def add(name: str, roles: tuple[str, ...], path: str | None) -> None:
    """Add a principal and print its token (shown once; only its hash is stored)."""
    target = path or os.environ.get("HANDRAIL_PRINCIPALS") or DEFAULT_FILE
    token = add_principal(target, name, roles)
    click.echo(f"added {name} ({', '.join(roles)}) to {target}")
    click.echo("its token (shown once; keep it secret):")
    click.echo(f"  export HANDRAIL_PRINCIPALS={target}")
    click.echo(f"  export HANDRAIL_PRINCIPAL={name}")
    click.echo(f"  export HANDRAIL_TOKEN={token}")
