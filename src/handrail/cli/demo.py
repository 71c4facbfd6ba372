"""`handrail demo`: see a task survive failures and a crash without repeating a side effect."""

from __future__ import annotations

from pathlib import Path

import click

from handrail.cli import render
from handrail.cli.runtime import runtime


@click.command("demo")
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A new SQLite file for the demo's store (it must not exist; the pretend systems go "
    "in a directory beside it, and both are kept). Default: a new temporary directory.",
)
@click.option("--keep", is_flag=True, help="Keep the temporary directory afterwards.")
def demo(db: Path | None, keep: bool) -> None:
    """Run a contract-renewal agent (scripted planner: no LLM, no network) through a
    transient failure (retried after a durable back-off), a stale-data conflict (inputs
    refreshed), a permission failure (an intervention an operator resolves) and a SIGKILL
    mid-task, with two approval gates: a low-risk CRM update auto-approved on its deadline
    and an irreversible e-mail approved by a named approver; resume it, and check from the
    journal and the systems' files that each was handled and every side effect happened
    exactly once.

    Ignores the global --app and --db: the demo brings its own app and a fresh store.
    Exits 0 if the verdict is PASS.
    """
    from handrail.demo.runner import DemoError, run_demo

    initiator = runtime().principal or "demo"
    try:
        passed = run_demo(render.console(), db=db, keep=keep, initiator=initiator)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc
    if not passed:
        raise SystemExit(1)
