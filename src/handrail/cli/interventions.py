"""`handrail interventions`: what waits for a human, and resolving it."""

from __future__ import annotations

import click

from handrail import ops
from handrail.cli import json_output, render
from handrail.cli.runtime import runtime
from handrail.journal import TaskStatus


@click.group()
def interventions() -> None:
    """List and resolve interventions: steps the runtime will not continue alone (for
    example a non-idempotent tool call left in doubt by a crash)."""


@interventions.command("list")
@click.option("--task", "task_id", metavar="ID", help="Only this task's interventions.")
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved ones.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_(task_id: str | None, include_resolved: bool, as_json: bool) -> None:
    """List open interventions (all of them with --all), oldest first."""
    rt = runtime()
    items = ops.list_interventions(rt.store(), task_id=task_id, include_resolved=include_resolved)
    if as_json:
        json_output.emit([json_output.intervention(i) for i in items])
        return
    if not items:
        click.echo("no interventions" if include_resolved else "no open interventions")
        return
    out = render.console()
    out.print(render.interventions_table(items))
    if any(i.open for i in items):
        out.print(
            "resolve one: handrail --as NAME interventions resolve ID "
            "--action mark_done|retry|skip|fail [--output JSON] [--comment TEXT]",
            markup=False,
        )


@interventions.command("resolve")
@click.argument("intervention_id")
@click.option(
    "--action",
    required=True,
    type=click.Choice(ops.RESOLUTIONS),
    help="mark_done: the step's effect happened, or you supply its result (record --output "
    "as its result); retry: run the step again (after a fix; you vouch it is safe); skip: go "
    "on without the step (its result is null); fail: fail the task.",
)
@click.option(
    "--output",
    "output_text",
    metavar="JSON",
    help="With mark_done: the step's result, as JSON (a bare word is taken as a string).",
)
@click.option("--comment", help="Why; recorded in the journal.")
def resolve(
    intervention_id: str, action: str, output_text: str | None, comment: str | None
) -> None:
    """Resolve an intervention (needs --as); the task continues or fails accordingly."""
    rt = runtime()
    actor = rt.actor("resolving an intervention")
    if output_text is not None and action != "mark_done":
        raise click.UsageError("--output goes with --action mark_done only")
    store = rt.store()
    item = ops.find_intervention(store, intervention_id)
    status = ops.resolve_intervention(
        store,
        rt.clock(),
        intervention_id,
        action=action,
        actor=actor,
        output=ops.parse_output(output_text),
        comment=comment,
    )
    step = f"step {item.step_index} ({item.step_name})" if item.step_index is not None else ""
    what = {
        "mark_done": f"{step} recorded as done",
        "retry": f"{step} will run again",
        "skip": f"{step} skipped (result null)",
        "fail": "the task fails",
    }[action]
    click.echo(f"intervention {intervention_id} resolved by {actor} ({action}): {what}")
    task_id = item.task_id
    if status is TaskStatus.PENDING:
        click.echo(f"task {task_id} is pending; a worker continues it")
    elif status is TaskStatus.AWAITING_INTERVENTION:
        click.echo(
            f"task {task_id} still waits for other interventions "
            f"(handrail interventions list --task {task_id})"
        )
    else:
        click.echo(f"task {task_id} is {status.value}")
