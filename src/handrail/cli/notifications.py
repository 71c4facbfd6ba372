"""`handrail notifications list|retry`: the notification outbox, and a second chance for
what its notifier gave up on."""

from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from handrail import notice_ops
from handrail.cli import json_output, render
from handrail.cli.runtime import runtime

STATES = ("queued", "sent", "dropped")


@click.group("notifications")
def notifications() -> None:
    """The notification outbox: what waits for its notifier, what was sent, and what was
    given up after the last attempt (see docs/notifications.md)."""


@notifications.command("list")
@click.option("--notifier", metavar="NAME", help="Only this notifier's notices.")
@click.option("--state", type=click.Choice(STATES), help="Only notices in this state.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_notices(notifier: str | None, state: str | None, limit: int, as_json: bool) -> None:
    """List notices, newest first, with their attempts and last error."""
    items = notice_ops.list_notices(runtime().store(), notifier=notifier, state=state, limit=limit)
    if as_json:
        json_output.emit(
            [
                {
                    "notice_id": n.notice_id,
                    "notifier": n.notifier,
                    "kind": n.kind,
                    "key": n.key,
                    "state": n.state,
                    "created_at": n.created_at,
                    "attempts": n.attempts,
                    "last_error": n.last_error,
                    "held_by": n.held_by,
                    "held_until": n.held_until,
                    "sent_at": n.sent_at,
                    "dropped_at": n.dropped_at,
                }
                for n in items
            ]
        )
        return
    if not items:
        click.echo("no notifications" + (f" {state}" if state else ""))
        return
    table = Table(title="Notifications")
    for column in ("id", "notifier", "kind", "about", "state", "created", "attempts", "detail"):
        table.add_column(column)
    for n in items:
        style = {"dropped": "red", "queued": "yellow"}.get(n.state, "")
        held = n.state == "queued" and n.held_by
        detail = f"held by {n.held_by}" if held else n.last_error or ""
        table.add_row(
            str(n.notice_id),
            n.notifier,
            n.kind,
            n.key.partition(":")[2] or n.key,
            Text(n.state, style=style),
            render.when(n.created_at),
            str(n.attempts),
            Text(detail),
        )
    render.console().print(table)


@notifications.command("retry")
@click.argument("notice_ids", nargs=-1, type=int)
@click.option("--all", "everything", is_flag=True, help="Every given-up notice.")
@click.option("--notifier", metavar="NAME", help="Only this notifier's notices.")
def retry(notice_ids: tuple[int, ...], everything: bool, notifier: str | None) -> None:
    """Queue given-up notices again (NOTICE_ID..., or --all), for instance once a
    notifier's endpoint is fixed; a running worker sends them within seconds. Needs --as
    with the operator role."""
    if bool(notice_ids) == everything:
        raise click.UsageError("name the notices to retry (NOTICE_ID ...) or pass --all")
    rt = runtime()
    actor = rt.actor("retrying notifications")
    ids = None if everything else list(notice_ids)
    count = notice_ops.retry_notices(rt.store(), actor=actor, notice_ids=ids, notifier=notifier)
    if count == 0:
        raise click.ClickException(
            "no given-up notification matched; `handrail notifications list --state dropped` "
            "shows them"
        )
    click.echo(f"queued {count} notification(s) again, by {actor}; a running worker sends them")
