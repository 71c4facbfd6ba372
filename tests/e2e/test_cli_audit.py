"""`handrail audit` end to end: real processes on a real SQLite file, the log sealed by a
real `handrail worker` with the key it creates next to the store.

Principals: eve (auditor), ed (engineer), alice (operator). An auditor reads the
compliance view only; raw payloads need an engineer; erasure and retention an operator.
An exported bundle verifies offline with the public key and each kind of tampering gets
its own exit code; erasure and retention leave the log verifiable and are recorded in it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from test_cli import CLI, HANDRAIL, TIMEOUT

from handrail.audit.checkpoint import generate_signing_key
from handrail.audit_ops import LOG_ORIGIN
from handrail.auth import add_principal
from handrail.store.url import open_store

DAY = 86_400


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    assert HANDRAIL.exists(), f"the handrail script is not installed next to {HANDRAIL}"
    runner = CLI(tmp_path)
    runner.tokens["ed"] = add_principal(tmp_path / "principals.toml", "ed", ["engineer"])
    return runner


def greet(cli: CLI, *names: str) -> list[str]:
    """Run one greet task per name on a worker, which seals the log when it stops."""
    with cli.worker():
        ids = [cli.start("greet", "--arg", f"name={name}") for name in names]
        for task_id in ids:
            cli.wait_status(task_id, "completed")
    return ids


def wait_sealed(cli: CLI) -> None:
    """Until a running worker has sealed every record."""
    store = open_store(str(cli.db))
    try:
        deadline = time.monotonic() + TIMEOUT
        while store.audit_log().pending():
            assert time.monotonic() < deadline, "the worker did not seal the log"
            time.sleep(0.05)
    finally:
        store.close()


def tool_calls(cli: CLI) -> dict[str, str]:
    """Each task's tool-call record id, read as the auditor."""
    views = cli.json("--as", "eve", "audit", "list", "--kind", "tool_call")
    return {v["task_id"]: v["call_id"] for v in views}


def test_roles_views_and_offline_verification(cli: CLI, tmp_path: Path) -> None:
    ann, bob = greet(cli, "ann@example.com", "bob@example.com")

    # the auditor: compliance views, sealed, redacted; no raw payloads
    listed = cli.json("--as", "eve", "audit", "list")
    assert [v["kind"] for v in listed] == ["tool_call", "tool_call"]
    assert [v["leaf_index"] for v in listed] == [0, 1]  # sealed by the worker
    table = cli.run("--as", "eve", "audit", "list").stdout
    assert "Called lookup_greeting" in table
    calls = tool_calls(cli)
    shown = cli.json("--as", "eve", "audit", "show", calls[ann])
    assert shown["tool_name"] == "lookup_greeting"
    assert "technical" not in shown
    for text in (table, json.dumps(listed), json.dumps(shown)):
        assert "@example.com" not in text
    refused = cli.run("--as", "eve", "audit", "show", calls[ann], "--technical", code=1)
    assert "eve may not see raw payloads" in refused.stderr
    assert "needs the 'engineer' role" in refused.stderr

    # the engineer: raw payloads
    raw = cli.json("--as", "ed", "audit", "show", calls[ann], "--technical")["technical"]
    assert raw["raw_input"] == {"name": "ann@example.com"}
    assert raw["raw_output"] == "Hello, ann@example.com!"

    # an operator is not a reader, and nobody reads anonymously
    denied = cli.run("--as", "alice", "audit", "list", code=1).stderr
    assert "needs the 'auditor' or 'engineer' role" in denied
    assert "--as NAME" in cli.run("audit", "list", code=2).stderr

    # verify against the store, then export and verify offline
    store = cli.run("--as", "eve", "audit", "verify").stdout
    assert "pending: none" in store
    assert "checkpoint: size 2" in store
    assert "verified: OK" in store
    bundle = tmp_path / "bundle.jsonl"
    exported = cli.run("--as", "ed", "audit", "export", "-o", str(bundle))
    assert "exported 2 record(s)" in exported.stderr
    public = f"{cli.db}.audit-key.pub"
    offline = cli.run("audit", "verify", "--bundle", str(bundle), "--public-key", public)
    assert "verified: OK" in offline.stdout

    # each kind of tampering, its exit code
    header, first, second, end = bundle.read_bytes().split(b"\n")
    assert end == b""
    cases = {
        "altered": (header, first.replace(b"lookup_greeting", b"lookup_greetinG"), second),
        "missing": (header, second),
        "truncated": (header, first),
        "malformed": (b"not a bundle", first, second),
    }
    codes = {"altered": 3, "missing": 4, "truncated": 5, "malformed": 7}
    for case, lines in cases.items():
        forged = tmp_path / f"{case}.jsonl"
        forged.write_bytes(b"\n".join(lines) + b"\n")
        args = ("audit", "verify", "--bundle", str(forged), "--public-key", public)
        verdict = json.loads(cli.run(*args, "--json", code=codes[case]).stdout)
        assert verdict["code"] == codes[case], (case, verdict)
    other = tmp_path / "other.pub"
    other.write_text(generate_signing_key(LOG_ORIGIN).public_key.to_vkey() + "\n")
    wrong = cli.run("audit", "verify", "--bundle", str(bundle), "--public-key", str(other), code=6)
    assert "SIGNATURE_INVALID" in wrong.stdout
    assert bob in calls


def test_erasure_and_retention_leave_the_log_verifiable(cli: CLI) -> None:
    erased, old, kept = greet(cli, "ann@example.com", "bob@example.com", "cy@example.com")
    calls = tool_calls(cli)

    # erasure: an operator's action, recorded; the engineer sees it erased
    refused = cli.run("--as", "ed", "audit", "erase", "--task", erased, "--reason", "x", code=1)
    assert "needs the 'operator' role" in refused.stderr
    done = cli.run("--as", "alice", "audit", "erase", "--task", erased, "--reason", "DSR-17")
    assert f"key task:{erased} destroyed by alice" in done.stdout
    raw = cli.json("--as", "ed", "audit", "show", calls[erased], "--technical")["technical"]
    assert raw["raw_input"]["erased"] is True
    assert (raw["raw_input"]["destroyed_by"], raw["raw_input"]["reason"]) == ("alice", "DSR-17")
    verified = cli.run("--as", "eve", "audit", "verify").stdout
    assert "pending: 1 record(s) not sequenced yet" in verified  # the erasure record
    assert "verified: OK" in verified

    # retention: only the task that finished more than 30 days ago loses its payloads
    with sqlite3.connect(cli.db) as conn:
        conn.execute(
            "UPDATE handrail_tasks SET updated_at = updated_at - ? WHERE task_id = ?",
            (40 * DAY, old),
        )
    conn.close()
    report = cli.json("--as", "alice", "audit", "retention", "--days", "30")
    assert report["destroyed"] == [old]
    old_raw = cli.json("--as", "ed", "audit", "show", calls[old], "--technical")["technical"]
    assert old_raw["raw_input"]["erased"] is True
    kept_raw = cli.json("--as", "ed", "audit", "show", calls[kept], "--technical")["technical"]
    assert kept_raw["raw_input"] == {"name": "cy@example.com"}
    (run,) = cli.json("--as", "eve", "audit", "list", "--kind", "retention_run")
    assert run["actor"] == "alice"
    assert run["details"]["tasks_erased"] == [old]
    (erasure,) = cli.json("--as", "eve", "audit", "list", "--kind", "erasure")
    assert (erasure["actor"], erasure["details"]["reason"]) == ("alice", "DSR-17")

    # a worker seals the erasure and retention records; the log still verifies
    with cli.worker():
        wait_sealed(cli)
    verified = cli.run("--as", "eve", "audit", "verify").stdout
    assert "pending: none" in verified
    assert "checkpoint: size 5" in verified
    assert "verified: OK" in verified


def test_help_for_every_audit_command(cli: CLI) -> None:
    for command in ("list", "show", "verify", "export", "erase", "retention"):
        out = cli.run("audit", command, "--help").stdout
        assert out.startswith(f"Usage: handrail audit {command}"), command
    group = cli.run("audit", "--help").stdout
    assert "3 a record altered, 4 a record missing" in " ".join(group.split())
    assert "  audit " in cli.run("--help").stdout
