"""`handrail audit`: read, verify, export and erase the tamper-evident audit log.

Roles (checked by :mod:`handrail.audit_ops`, the layer the HTTP API shares): ``list``,
``show``, ``verify`` and ``export`` need an auditor or an engineer, ``show --technical``
(raw payloads) an engineer, ``erase`` and ``retention`` an operator. ``verify --bundle``
checks an exported file offline and needs no principal.

``verify`` exits with the verdict: 0 all valid, 3 a record altered, 4 a record missing,
5 the log truncated, 6 a signature invalid, 7 an unreadable bundle (1 and 2 stay the usual
error and usage codes).
"""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any, BinaryIO

import click
from rich.table import Table
from rich.text import Text

from handrail import audit_ops
from handrail.audit.checkpoint import VerifyingKey
from handrail.audit.record import RecordKind, from_iso
from handrail.audit.retention import RetentionPolicy
from handrail.audit.verify import VerifyResult
from handrail.cli import json_output, render
from handrail.cli.runtime import Runtime, runtime

KINDS = [k.value for k in RecordKind]


@click.group()
def audit() -> None:
    """Read, verify, export and erase the audit log (needs --as with the right role).

    list/show/verify/export: auditor or engineer; show --technical: engineer;
    erase/retention: operator; verify --bundle FILE: anyone holding the file.

    verify exits with its verdict: 0 all valid, 3 a record altered, 4 a record missing,
    5 the log truncated, 6 a signature invalid, 7 an unreadable bundle.
    """


def _key_path(rt: Runtime) -> str | None:
    """The signing key the App configures (``audit_key``), if ``--app`` names one."""
    return rt.app("audit").audit_key if rt.has_app else None


def _public_key(value: str | None) -> VerifyingKey | None:
    return None if value is None else audit_ops.load_public_key(value)


_PUBLIC_KEY_HELP = (
    "The log's public key: a vkey, or a file holding one (the <key>.pub beside the signing "
    "key). Default: the key of this store (App audit_key, $HANDRAIL_AUDIT_KEY or "
    "<db>.audit-key). Auditors should pass the key they got independently."
)


# -- list and show ---------------------------------------------------------------------


def _who(view: dict[str, Any]) -> str:
    return str(view.get("agent_id") or view.get("actor") or "")


def _what(view: dict[str, Any]) -> str:
    if view.get("kind") == RecordKind.TOOL_CALL:
        return str(view.get("action_description") or view.get("tool_name") or "")
    details = view.get("details") or {}
    parts = [
        f"{k}={details[k]}"
        for k in ("tool", "decision", "action", "scope", "reason")
        if k in details
    ]
    return ", ".join(parts)


def _records_table(views: list[dict[str, Any]]) -> Table:
    table = Table(title="Audit records (compliance view)")
    for column in ("leaf", "logged", "kind", "task", "who", "what", "outcome", "call id"):
        table.add_column(column, overflow="fold")
    for view in views:
        leaf = view.get("leaf_index")
        table.add_row(
            Text("pending" if leaf is None else str(leaf), style="yellow" if leaf is None else ""),
            Text(render.when(from_iso(view["logged_at"]))),
            Text(str(view["kind"])),
            Text(str(view.get("task_id") or "")),
            Text(_who(view)),
            Text(render.excerpt(_what(view), 80)),
            Text(str(view.get("outcome") or "")),
            Text(str(view["call_id"])),
        )
    return table


@audit.command("list")
@click.option("--task", "task_id", metavar="ID", help="Only the records of this task.")
@click.option("--kind", type=click.Choice(KINDS), help="Only records of this kind.")
@click.option(
    "--after",
    "after_id",
    type=int,
    metavar="RECORD_ID",
    help="Records after this record_id (to page on).",
)
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(min=1), help="At most N records."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_(
    task_id: str | None, kind: str | None, after_id: int | None, limit: int, as_json: bool
) -> None:
    """List audit records, oldest first, as their compliance view: redacted, no raw
    payloads (auditor or engineer)."""
    rt = runtime()
    who = rt.authenticated("reading the audit log")
    views = audit_ops.list_records(
        rt.store(), who, task_id=task_id, kind=kind, after_id=after_id, limit=limit
    )
    if as_json:
        json_output.emit(views)
        return
    if not views:
        click.echo("no audit records match")
        return
    render.console().print(_records_table(views))
    if len(views) == limit:
        click.echo(f"more may follow: --after {views[-1]['record_id']}")


def _print_fields(title: str, fields: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in fields.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        table.add_row(Text(name), Text(text))
    render.console().print(table)


@audit.command("show")
@click.argument("call_id")
@click.option(
    "--technical",
    is_flag=True,
    help="Also the raw payloads (input, output, error), opened: engineer only.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def show(call_id: str, technical: bool, as_json: bool) -> None:
    """Show one audit record by its call id (auditor or engineer; --technical: engineer).

    An erased payload shows as erased, with who destroyed its key, when and why.
    """
    rt = runtime()
    who = rt.authenticated("reading the audit log")
    view = audit_ops.show_record(rt.store(), who, call_id, technical=technical)
    if as_json:
        json_output.emit(view)
        return
    raw = view.pop("technical", None)
    _print_fields(f"Audit record {call_id} (compliance view)", view)
    if raw is not None:
        _print_fields(f"Audit record {call_id} (technical view: raw payloads)", raw)


# -- verify and export -----------------------------------------------------------------


def _result_json(result: VerifyResult) -> dict[str, Any]:
    return {
        "code": int(result.code),
        "verdict": result.kind,
        "message": result.message,
        "seq": result.seq,
        "seq_end": result.seq_end,
        "records": result.records,
        "checkpoints": result.checkpoints,
        "verified_size": result.verified_size,
        "public_key": None if result.key is None else result.key.to_vkey(),
        "key_trusted": result.key_trusted,
    }


def _echo_result(result: VerifyResult, source: Path | None = None) -> None:
    if result.ok:
        click.echo(
            f"records: {result.records}; checkpoints: {result.checkpoints}, the latest signs "
            f"{result.verified_size}"
        )
        click.echo(f"verified: OK - {result.message}")
    else:
        click.echo(f"verified: {result.kind} (exit {int(result.code)}) - {result.message}")
    if result.key is not None:
        trust = (
            f"this store's key, read from {source}"
            if source is not None
            else "given"
            if result.key_trusted
            else "named by the bundle itself: this only shows the bundle is self-consistent; "
            "pass --public-key with the key you got independently"
        )
        click.echo(f"public key: {result.key.to_vkey()} ({trust})")


@audit.command("verify")
@click.option(
    "--bundle",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Verify this exported bundle offline, instead of the store (needs no principal).",
)
@click.option("--public-key", "public_key", metavar="VKEY_OR_FILE", help=_PUBLIC_KEY_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@click.pass_context
def verify(ctx: click.Context, bundle: Path | None, public_key: str | None, as_json: bool) -> None:
    """Verify every record against the signed checkpoints, in the store (auditor or
    engineer) or in an exported bundle (--bundle).

    Against the store, records not sequenced yet are reported first: no checkpoint covers
    them yet, so they are not verified (a running worker seals them within a second).
    Exit codes: 0 all valid, 3 a record altered, 4 a record missing, 5 the log truncated,
    6 a signature invalid, 7 an unreadable bundle.
    """
    key = _public_key(public_key)
    if bundle is not None:
        result = audit_ops.verify_bundle_file(bundle, public_key=key)
        if as_json:
            json_output.emit({"bundle": str(bundle), **_result_json(result)})
        else:
            click.echo(f"bundle: {bundle}")
            _echo_result(result)
        ctx.exit(int(result.code))
    rt = runtime()
    who = rt.authenticated("verifying the audit log")
    found = audit_ops.verify_log(rt.store(), who, public_key=key, key_path=_key_path(rt))
    if as_json:
        json_output.emit(
            {
                "pending": found.pending,
                "checkpoint_size": None if found.checkpoint is None else found.checkpoint.size,
                "key_source": None if found.key_source is None else str(found.key_source),
                **(
                    {"code": 0, "verdict": "OK", "message": "no checkpoint yet"}
                    if found.result is None
                    else _result_json(found.result)
                ),
            }
        )
        ctx.exit(int(found.code))
    if found.pending:
        click.echo(
            f"pending: {found.pending} record(s) not sequenced yet: no checkpoint covers them, "
            "so they are not verified (a running worker seals them)"
        )
    else:
        click.echo("pending: none; every record is sequenced")
    if found.checkpoint is None or found.result is None:
        click.echo("checkpoint: none yet; nothing is signed, so there is nothing to verify")
        ctx.exit(0)
    click.echo(
        f"checkpoint: size {found.checkpoint.size}, signed "
        f"{render.when(found.checkpoint.created_at)}"
    )
    _echo_result(found.result, found.key_source)
    ctx.exit(int(found.code))


@audit.command("export")
@click.option(
    "-o",
    "--output",
    default="-",
    show_default=True,
    metavar="FILE",
    help="Where to write the bundle ('-': standard output).",
)
@click.option(
    "--size",
    type=click.IntRange(min=1),
    help="Export the log as of this checkpointed size (default: the latest checkpoint).",
)
@click.option("--public-key", "public_key", metavar="VKEY_OR_FILE", help=_PUBLIC_KEY_HELP)
def export(output: str, size: int | None, public_key: str | None) -> None:
    """Export the log as a bundle to verify offline (auditor or engineer): the signed
    checkpoints, the public key and every record up to the latest checkpoint (compliance
    fields and salted commitments; never raw payloads).

    Then, anywhere: handrail audit verify --bundle FILE --public-key KEY.pub
    """
    rt = runtime()
    who = rt.authenticated("exporting the audit log")
    with ExitStack() as stack:
        to_file = output != "-"
        stream: BinaryIO = stack.enter_context(open(output, "wb")) if to_file else sys.stdout.buffer
        summary = audit_ops.export_log(
            rt.store(),
            who,
            stream,
            size=size,
            public_key=_public_key(public_key),
            key_path=_key_path(rt),
        )
        stream.flush()
    click.echo(
        f"exported {summary.records} record(s) and {summary.checkpoints} checkpoint(s) to "
        f"{'standard output' if output == '-' else output}",
        err=True,
    )
    click.echo(f"public key: {summary.public_key.to_vkey()}", err=True)
    if output != "-":
        click.echo(
            f"verify it offline: handrail audit verify --bundle {output} --public-key "
            "<the .pub file of the log's key, obtained independently>",
            err=True,
        )


# -- erasure and retention -------------------------------------------------------------


@audit.command("erase")
@click.option("--task", "task_id", metavar="ID", help="Erase the raw payloads of this task.")
@click.option(
    "--subject",
    "subject_id",
    metavar="ID",
    help="Erase the raw payloads of this data subject (tools with data_subject=...).",
)
@click.option("--reason", required=True, help="Why (a request's reference); recorded in the log.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def erase(task_id: str | None, subject_id: str | None, reason: str, as_json: bool) -> None:
    """Erase raw payloads now (operator): destroy the task's or the subject's key.

    Compliance records, the journal and the log's proofs stay; the log still verifies. An
    erasure record names you and the reason.
    """
    if (task_id is None) == (subject_id is None):
        raise click.UsageError("name exactly one of --task ID or --subject ID")
    rt = runtime()
    who = rt.authenticated("erasing raw payloads")
    result = audit_ops.erase_payloads(
        rt.store(), who, task_id=task_id, subject_id=subject_id, reason=reason, clock=rt.clock()
    )
    if as_json:
        json_output.emit(
            {"key_id": result.key_id, "destroyed": result.destroyed, "call_id": result.call_id}
        )
        return
    target = f"task {task_id}" if task_id is not None else f"subject {subject_id}"
    if result.destroyed:
        click.echo(
            f"erased the raw payloads of {target}: key {result.key_id} destroyed by {who.name}"
        )
    else:
        click.echo(
            f"no raw payload was kept under {result.key_id}; the key is tombstoned, so none will be"
        )
    click.echo(f"erasure record: {result.call_id} (the log still verifies)")


@audit.command("retention")
@click.option(
    "--days",
    type=click.FloatRange(min=0),
    help="Erase the raw payloads of tasks finished more than this many days ago "
    "(default: the --app's audit_retention policy).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def retention(days: float | None, as_json: bool) -> None:
    """Apply the retention policy now (operator); workers also do it hourly when the App
    sets audit_retention. Only raw payloads expire; compliance records and the journal
    stay. The run is recorded in the log, even when nothing expired."""
    rt = runtime()
    if days is not None:
        policy = RetentionPolicy(raw_payload_days=days)
    else:
        configured = rt.app("audit retention").audit_retention if rt.has_app else None
        if configured is None:
            raise click.UsageError(
                "say how long raw payloads are kept: --days N, or --app with an App that "
                "sets audit_retention=RetentionPolicy(...)"
            )
        policy = configured
    who = rt.authenticated("running retention")
    report = audit_ops.apply_retention(rt.store(), who, policy, clock=rt.clock())
    if as_json:
        json_output.emit(
            {
                "cutoff": report.cutoff,
                "destroyed": list(report.destroyed),
                "already_erased": list(report.already_erased),
                "call_id": report.call_id,
            }
        )
        return
    click.echo(
        f"retention: raw payloads of tasks finished before {render.when(report.cutoff)} "
        f"({policy.raw_payload_days:g} days) expire"
    )
    erased = ", ".join(report.destroyed) or "none"
    click.echo(f"erased now: {len(report.destroyed)} task(s): {erased}")
    click.echo(f"erased before: {len(report.already_erased)} task(s)")
    click.echo(f"retention record: {report.call_id}")
