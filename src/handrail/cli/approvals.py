"""`handrail approvals`: the approval requests that wait for a human, and deciding them."""

from __future__ import annotations

import click

from handrail import decisions
from handrail.approvals import Approval
from handrail.cli import json_output, render
from handrail.cli.runtime import runtime
from handrail.ops import parse_output


@click.group()
def approvals() -> None:
    """List, show and decide approval requests: gated calls (every irreversible one, and
    whatever a policy gates) that wait for a named approver."""


@approvals.command("list")
@click.option("--task", "task_id", metavar="ID", help="Only this task's requests.")
@click.option("--all", "include_decided", is_flag=True, help="Include decided requests.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_(task_id: str | None, include_decided: bool, as_json: bool) -> None:
    """List pending approval requests (all of them with --all), oldest first."""
    rt = runtime()
    items = decisions.list_approvals(rt.store(), task_id=task_id, include_decided=include_decided)
    if as_json:
        json_output.emit([json_output.approval(a) for a in items])
        return
    if not items:
        click.echo("no approval requests" if include_decided else "no pending approval requests")
        return
    out = render.console()
    out.print(render.approvals_table(items, now=rt.clock().now()))
    if any(a.open for a in items):
        out.print(
            "look closer: handrail approvals show ID; decide: handrail --as NAME approvals "
            "approve|deny ID [--comment TEXT]",
            markup=False,
        )


@approvals.command("show")
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(request_id: str, as_json: bool) -> None:
    """Show every field of a request, the task's context summary and the decisions."""
    rt = runtime()
    item = decisions.find_approval(rt.store(), request_id)
    if as_json:
        json_output.emit(json_output.approval(item))
        return
    render.console().print(render.approval_view(item, now=rt.clock().now()))


def _report(item: Approval, who: str, verb: str) -> None:
    click.echo(f"approval {item.request_id} {verb} by {who}; it is now {item.status}")
    if item.status == "pending":
        approving = len(item.approvers_approving())
        click.echo(f"{approving} of {item.request.quorum} approvals; waiting for more")
    else:
        click.echo(f"task {item.task_id} is pending; a worker continues it")


@approvals.command("approve")
@click.argument("request_id")
@click.option("--comment", help="Why; recorded in the journal.")
@click.option(
    "--digest",
    metavar="SHA256",
    help="The digest you were shown (approvals show); refused if the action changed since.",
)
@click.option(
    "--edit",
    "edits",
    multiple=True,
    metavar="PARAM=JSON",
    help="Approve with this parameter changed (repeatable); both digests are recorded.",
)
def approve(
    request_id: str, comment: str | None, digest: str | None, edits: tuple[str, ...]
) -> None:
    """Approve a request (needs --as and the approver role)."""
    rt = runtime()
    who = rt.actor("approving a request", role="approver")
    edit: dict[str, object] | None = None
    if edits:
        edit = {}
        for item in edits:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise click.UsageError(f"--edit {item!r}: use PARAM=JSON, e.g. --edit amount=900")
            edit[name] = parse_output(value)
    after = decisions.decide(
        rt.store(),
        rt.clock(),
        request_id,
        decision="approved",
        actor=who,
        comment=comment,
        digest_seen=digest,
        edit=edit,
    )
    _report(after, who, "approved")


@approvals.command("deny")
@click.argument("request_id")
@click.option("--comment", help="Why; recorded in the journal and shown in the task's error.")
@click.option("--digest", metavar="SHA256", help="The digest you were shown.")
def deny(request_id: str, comment: str | None, digest: str | None) -> None:
    """Deny a request (needs --as and the approver role); the gated call does not run."""
    rt = runtime()
    who = rt.actor("denying a request", role="approver")
    after = decisions.decide(
        rt.store(),
        rt.clock(),
        request_id,
        decision="denied",
        actor=who,
        comment=comment,
        digest_seen=digest,
    )
    _report(after, who, "denied")
