"""The root `handrail` command group."""

from __future__ import annotations

import click


@click.group()
@click.version_option(package_name="handrail")
def cli() -> None:
    """handrail: durable, gated, audited runs for agents that take real actions."""
