"""The demo's last section: seal the audit log, export it and verify it as an auditor would.

Every tool-call attempt the demo made, and every approval and intervention, left a record
in the store's audit log, written with its journal event. Here the log is sealed (a
sequencer pass signs a checkpoint with the Ed25519 key next to the demo's store), exported
as a bundle, and the bundle verified offline against the public key. The story checks that
the verdict is OK, that the checkpoint covers every record, that each tool call the journal
ended has its record, and that the vendor contact's address, in the raw input of the
notice, appears in no leaf of the bundle (the compliance view is redacted).
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from handrail.audit.keys import load_or_create_signing_key
from handrail.audit.record import RecordKind, technical_view
from handrail.audit.sequencer import Sequencer
from handrail.audit.verify import verify_bundle
from handrail.audit_ops import LOG_ORIGIN, load_public_key
from handrail.demo.contract_renewal import PLANNER_STEP
from handrail.demo.findings import NOTICE_TOOL, Story
from handrail.demo.harness import Paths, heading, note
from handrail.journal import Event, EventKind
from handrail.store.url import open_store

__all__ = ["bundle_path", "key_path", "seal_and_verify"]

_ENDS_STEP = (EventKind.STEP_COMPLETED, EventKind.STEP_FAILED)


def key_path(paths: Paths) -> Path:
    """The signing key, next to the demo's store (``<db>.audit-key``; public: ``.pub``)."""
    return Path(f"{paths.db}.audit-key")


def bundle_path(paths: Paths) -> Path:
    """Where the exported bundle goes, next to the demo's store."""
    return paths.db.with_name(f"{paths.db.stem}-audit-bundle.jsonl")


def seal_and_verify(out: Console, paths: Paths, events: list[Event]) -> Story:
    """Seal, export and verify the log; print what happened; return the story."""
    heading(
        out,
        "10. The audit log: sealed with the key next to the store, exported, and verified "
        "offline (as `handrail audit export` and `handrail audit verify --bundle` do)",
    )
    story = Story("audit log: every tool call recorded, sealed, verified")
    key = load_or_create_signing_key(LOG_ORIGIN, path=key_path(paths))
    public = load_public_key(f"{key_path(paths)}.pub")
    store = open_store(str(paths.db))
    try:
        log = store.audit_log()
        signed = Sequencer(log, key, LOG_ORIGIN).flush()
        latest = log.latest_checkpoint()
        records = log.records(limit=100_000)
        pending = log.pending()
        calls = [r for r in records if r.kind == RecordKind.TOOL_CALL]
        notices = [r for r in calls if json.loads(r.compliance_json)["tool_name"] == NOTICE_TOOL]
        contact = None
        if notices:
            raw = technical_view(notices[0], log.vault).get("raw_input")
            contact = raw.get("to") if isinstance(raw, dict) else None
        with bundle_path(paths).open("wb") as stream:
            exported = log.export_bundle(stream, public) if latest is not None else 0
    finally:
        store.close()
    size = 0 if latest is None else latest.size
    note(
        out,
        f"sealed: {len(records)} records ({len(calls)} tool calls, "
        f"{len(records) - len(calls)} approvals, interventions and the like) in "
        f"{len(signed)} checkpoint(s); the latest signs size {size}"
        + (f", root {latest.root_hash.hex()[:16]}…" if latest is not None else ""),
    )
    note(out, f"exported: {exported} records with their checkpoints to {bundle_path(paths)}")
    bundle = bundle_path(paths).read_bytes()
    verdict = verify_bundle(bundle, trusted_key=public)
    note(
        out,
        f"verified: {verdict.kind} - {verdict.message} (public key {public.to_vkey()})",
        "bold green" if verdict.ok else "bold red",
    )
    story.expect(verdict.ok, f"the exported log did not verify: {verdict.kind}: {verdict.message}")
    story.expect(
        pending == 0 and size == len(records) == exported,
        f"the checkpoint signs {size} of {len(records)} records ({pending} pending, "
        f"{exported} exported)",
    )
    ended = [e for e in events if e.kind in _ENDS_STEP and e.step_name != PLANNER_STEP]
    story.expect(
        len(calls) == len(ended),
        f"{len(calls)} tool-call records for {len(ended)} tool-call attempts the journal ended",
    )
    story.facts.append(
        f"{len(calls)} tool-call records, one per attempt the journal ended; the checkpoint "
        f"signs all {size} records and the bundle verifies against the public key"
    )
    if story.expect(contact is not None, f"no readable raw input for {NOTICE_TOOL}"):
        assert contact is not None
        story.expect(
            str(contact).encode() not in bundle,
            f"{contact} appears in the exported leaves: the compliance view is not redacted",
        )
        story.facts.append(
            f"the vendor contact's address is in {NOTICE_TOOL}'s sealed raw input only; "
            "no leaf of the bundle holds it"
        )
    return story
