"""`handrail tasks`: start, list, show, cancel and resume tasks."""

from __future__ import annotations

import inspect
import json
import time
from typing import Any

import click

from handrail import ops
from handrail.cli import json_output, render
from handrail.cli.runtime import runtime
from handrail.errors import TaskFailedError
from handrail.journal import TaskStatus
from handrail.workflow import RESERVED_PARAMETERS

STATUS_CHOICES = [s.value for s in TaskStatus]
_WAITS_FOR_HUMAN = (TaskStatus.AWAITING_INTERVENTION, TaskStatus.AWAITING_APPROVAL)


@click.group()
def tasks() -> None:
    """Start, list, inspect, cancel and resume tasks."""


def _keyword_arguments(pairs: tuple[str, ...], json_text: str | None) -> dict[str, Any]:
    """``--json`` and ``--arg`` merged into one set of keyword arguments."""
    kwargs: dict[str, Any] = {}
    if json_text is not None:
        try:
            value = json.loads(json_text)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(
                f"not valid JSON ({exc}); quote it for the shell, e.g. --json "
                '\'{"contract_id": "C-1", "days": 30}\'',
                param_hint="--json",
            ) from None
        if not isinstance(value, dict):
            raise click.BadParameter(
                f"expected a JSON object of keyword arguments, got {type(value).__name__}",
                param_hint="--json",
            )
        kwargs.update(value)
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise click.BadParameter(
                f"{pair!r} is not KEY=VALUE with KEY a parameter name", param_hint="--arg"
            )
        if key in kwargs:
            raise click.BadParameter(f"{key!r} is given twice", param_hint="--arg/--json")
        kwargs[key] = text
    return kwargs


def _check_arguments(name: str, fn: Any, kwargs: dict[str, Any]) -> None:
    """Refuse arguments the workflow function cannot take, before a task exists."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    named = {p.name for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD}
    problems = []
    unknown = sorted(set(kwargs) - named) if not takes_any else []
    if unknown:
        problems.append(f"unknown argument(s) {', '.join(unknown)}")
    missing = [
        p.name
        for p in params
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        and p.name not in kwargs
    ]
    if missing:
        problems.append(f"missing argument(s) {', '.join(missing)}")
    if problems:
        signature = ", ".join(p.name for p in params) or "no arguments"
        raise click.UsageError(
            f"workflow {name!r}: {'; '.join(problems)}. It takes: {signature}. Pass "
            "arguments with --arg KEY=VALUE or --json OBJECT"
        )


@tasks.command("start")
@click.argument("workflow")
@click.option(
    "--arg",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A keyword argument of the workflow, as a string; repeat for more.",
)
@click.option(
    "--json",
    "json_text",
    metavar="OBJECT",
    help="Keyword arguments as a JSON object, for numbers, lists and nested values: "
    "--json '{\"days\": 30}'.",
)
@click.option("--id", "task_id", help="The task's id (default: a random one). Must be unused.")
@click.option(
    "--wait",
    is_flag=True,
    help="Wait until a worker finishes the task and print its result (exit 1 if it fails, "
    "is cancelled or needs a human).",
)
def start(
    workflow: str, pairs: tuple[str, ...], json_text: str | None, task_id: str | None, wait: bool
) -> None:
    """Start WORKFLOW as a new task (needs --app and --as; a worker runs it).

    Example: handrail --app agents:app --as alice tasks start renew --arg contract_id=C-1
    """
    rt = runtime()
    app = rt.app("tasks start")
    initiator = rt.actor("starting a task")
    kwargs = _keyword_arguments(pairs, json_text)
    reserved = sorted(RESERVED_PARAMETERS.intersection(kwargs))
    if reserved:
        raise click.UsageError(f"argument name(s) {reserved} are reserved; use --id for the id")
    wf = app.workflows.get(workflow)
    if wf is None:
        known = ", ".join(sorted(app.workflows)) or "none"
        raise click.UsageError(
            f"the app {rt.app_ref} has no workflow {workflow!r} (registered: {known})"
        )
    _check_arguments(workflow, wf.fn, kwargs)
    handle = app.start(wf, task_id=task_id, initiator=initiator, **kwargs)
    record = ops.show_task(app.store, handle.task_id).record
    click.echo(
        f"started task {handle.task_id} (workflow {record.workflow}, queue {record.queue}) "
        f"as {initiator}"
    )
    if not wait:
        click.echo(f"a worker runs it: handrail --app {rt.app_ref} worker")
        return
    _wait(handle.task_id)


def _wait(task_id: str) -> None:
    rt = runtime()
    store, app_ref = rt.store(), rt.app_ref
    click.echo(
        f"waiting for a worker to finish it (start one with `handrail --app {app_ref} worker`; "
        "Ctrl-C stops waiting, the task stays queued)",
        err=True,
    )
    pause = 0.02
    try:
        while True:
            view = ops.show_task(store, task_id)
            status = view.record.status
            if status is TaskStatus.COMPLETED:
                click.echo(json.dumps(view.state.result, default=str, indent=2))
                return
            if status is TaskStatus.FAILED:
                raise click.ClickException(str(TaskFailedError(task_id, view.state.error)))
            if status is TaskStatus.CANCELLED:
                raise click.ClickException(f"task {task_id} was cancelled")
            if status in _WAITS_FOR_HUMAN:
                reasons = "; ".join(i.reason for i in view.state.open_interventions())
                hint = render.next_step_hint(view, rt.clock().now()) or ""
                raise click.ClickException(
                    f"task {task_id} is {status.value}: {reasons or 'a human must act'}. {hint}"
                )
            time.sleep(pause)
            pause = min(pause * 1.5, 0.5)
    except KeyboardInterrupt:
        click.echo(
            f"\nstopped waiting; task {task_id} carries on (handrail tasks show {task_id})",
            err=True,
        )
        raise SystemExit(130) from None


@tasks.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUS_CHOICES),
    help="Only tasks in this status; repeat for several.",
)
@click.option("--workflow", help="Only tasks of this workflow.")
@click.option("--queue", help="Only tasks on this queue.")
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(min=1), help="At most N tasks."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_(
    statuses: tuple[str, ...], workflow: str | None, queue: str | None, limit: int, as_json: bool
) -> None:
    """List tasks, newest first."""
    rt = runtime()
    records = ops.list_tasks(
        rt.store(),
        statuses=[TaskStatus(s) for s in statuses] or None,
        workflow=workflow,
        queue=queue,
        limit=limit,
    )
    if as_json:
        json_output.emit([json_output.task_record(r) for r in records])
        return
    if not records:
        click.echo("no tasks match")
        return
    render.console().print(render.tasks_table(records, now=rt.clock().now()))


@tasks.command("show")
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def show(task_id: str, as_json: bool) -> None:
    """Show a task: its facts, its timeline (every journal event with reasoning, actor and
    an excerpt of inputs, outputs or error), open interventions and context summary."""
    rt = runtime()
    view = ops.show_task(rt.store(), task_id)
    if as_json:
        json_output.emit(json_output.task_view(view))
        return
    render.console().print(render.task_view(view, now=rt.clock().now()))


@tasks.command("cancel")
@click.argument("task_id")
@click.option("--reason", help="Why; recorded in the journal.")
def cancel(task_id: str, reason: str | None) -> None:
    """Cancel a task (needs --as). An idle task is cancelled at once; a running one stops at
    its next step boundary."""
    rt = runtime()
    actor = rt.actor("cancelling a task")
    status = ops.cancel_task(rt.store(), rt.clock(), task_id, actor=actor, reason=reason)
    if status is TaskStatus.CANCELLED:
        click.echo(f"task {task_id} cancelled by {actor}")
    else:
        click.echo(
            f"cancel requested by {actor}: task {task_id} is running; its worker stops it at "
            f"the next step boundary (handrail tasks show {task_id})"
        )


@tasks.command("resume")
@click.argument("task_id")
def resume(task_id: str) -> None:
    """Make a failed or stalled task runnable now (needs --as). Completed steps are not run
    again; the failed step is."""
    rt = runtime()
    actor = rt.actor("resuming a task")
    ops.resume_task(rt.store(), rt.clock(), task_id, actor=actor)
    click.echo(
        f"task {task_id} resumed by {actor}; it is pending and a worker continues it "
        "(handrail --app MODULE:ATTR worker)"
    )
