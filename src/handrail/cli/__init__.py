"""The handrail command line."""

from __future__ import annotations


def main() -> None:
    from handrail.cli.main import cli

    cli()
