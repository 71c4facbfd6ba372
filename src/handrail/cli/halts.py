"""`handrail halt`, `handrail release`, `handrail halts`: the stop button."""

from __future__ import annotations

import click
from rich.table import Table

from handrail import ops
from handrail.cli import json_output, render
from handrail.cli.runtime import runtime


def _scope(task_id: str | None, tool: str | None, everything: bool) -> tuple[str, str | None]:
    chosen = [
        name for name, given in (("task", task_id), ("tool", tool), ("all", everything)) if given
    ]
    if len(chosen) != 1:
        raise click.UsageError("name exactly one of --task ID, --tool NAME or --all")
    scope = chosen[0]
    return scope, task_id if scope == "task" else tool if scope == "tool" else None


def _what(scope: str, target: str | None) -> str:
    return "everything" if scope == "all" else f"{scope} {target}"


@click.command("halt")
@click.option("--task", "task_id", metavar="ID", help="Halt one task.")
@click.option("--tool", metavar="NAME", help="Halt every call of one tool, in every task.")
@click.option("--all", "everything", is_flag=True, help="Halt everything.")
@click.option("--reason", help="Why; recorded with the halt.")
def halt(task_id: str | None, tool: str | None, everything: bool, reason: str | None) -> None:
    """Stop a task, a tool or everything (needs --as). Running work stops at its next step
    boundary in a safe state; nothing new starts until `handrail release`."""
    rt = runtime()
    actor = rt.actor("halting")
    scope, target = _scope(task_id, tool, everything)
    item = ops.halt(rt.store(), rt.clock(), scope, target, actor=actor, reason=reason)
    click.echo(f"halted {_what(scope, target)} (halt {item.halt_id}) by {actor}")


@click.command("release")
@click.option("--task", "task_id", metavar="ID", help="Release a halted task.")
@click.option("--tool", metavar="NAME", help="Release a halted tool.")
@click.option("--all", "everything", is_flag=True, help="Release a halt of everything.")
def release(task_id: str | None, tool: str | None, everything: bool) -> None:
    """Release a halt (needs --as); tasks it parked continue on any worker."""
    rt = runtime()
    actor = rt.actor("releasing a halt")
    scope, target = _scope(task_id, tool, everything)
    released, resumed = ops.release(rt.store(), rt.clock(), scope, target, actor=actor)
    ids = ", ".join(h.halt_id for h in released)
    click.echo(f"released {_what(scope, target)} (halt {ids}) by {actor}")
    if resumed:
        click.echo(f"{len(resumed)} parked task(s) continue: {', '.join(resumed)}")


@click.command("halts")
@click.option("--all", "include_released", is_flag=True, help="Include released halts.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def halts(include_released: bool, as_json: bool) -> None:
    """List active halts (all of them with --all)."""
    rt = runtime()
    items = ops.list_halts(rt.store(), include_released=include_released)
    if as_json:
        json_output.emit(
            [
                {
                    "halt_id": h.halt_id,
                    "scope": h.scope,
                    "target": h.target,
                    "halted_by": h.halted_by,
                    "reason": h.reason,
                    "created_at": h.created_at,
                    "released_by": h.released_by,
                    "released_at": h.released_at,
                }
                for h in items
            ]
        )
        return
    if not items:
        click.echo("no halts" if include_released else "no active halts")
        return
    table = Table(title="Halts")
    for column in ("halt", "what", "by", "when", "reason", "released"):
        table.add_column(column)
    for h in items:
        released = f"{h.released_by} {render.when(h.released_at)}" if h.released_at else ""
        table.add_row(
            h.halt_id,
            _what(h.scope, h.target),
            h.halted_by,
            render.when(h.created_at),
            h.reason or "",
            released,
        )
    render.console().print(table)
