"""The `handrail` executable end to end: real processes, a real SQLite file, real SIGKILL.

Each test gets its own store (``$HANDRAIL_DB`` in a temporary directory) and runs the
installed ``handrail`` script with ``tests/e2e`` on ``PYTHONPATH`` so ``--app cliapp:app``
imports the test app. Tasks run on ``handrail worker`` processes started and stopped here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from handrail.auth import add_principal
from handrail.store.url import open_store

HERE = Path(__file__).resolve().parent
HANDRAIL = Path(sys.executable).with_name("handrail")
APP = "cliapp:app"
TIMEOUT = 20.0


class CLI:
    """Runs `handrail` against one temporary store."""

    def __init__(self, tmp_path: Path):
        self.dir = tmp_path
        self.db = tmp_path / "handrail.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HANDRAIL_")}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p
        )
        env["HANDRAIL_DB"] = str(self.db)
        env["COLUMNS"] = "250"
        env.pop("CLIAPP_CRASH_IN", None)
        principals = tmp_path / "principals.toml"
        self.tokens = {
            name: add_principal(
                principals, name, ["operator", "approver"] if name == "alice" else ["operator"]
            )
            for name in ("alice", "bob", "carol", "dave", "a")
        }
        self.tokens["eve"] = add_principal(principals, "eve", ["auditor"])
        self.tokens["dana"] = add_principal(principals, "dana", ["approver"])

        env["HANDRAIL_PRINCIPALS"] = str(principals)
        self.env = env

    def _token_env(self, args: tuple[str, ...]) -> dict[str, str]:
        """The token of the principal ``--as`` names, as an operator would have it set."""
        if "--as" in args:
            name = args[args.index("--as") + 1]
            if name in self.tokens:
                return {"HANDRAIL_TOKEN": self.tokens[name]}
        return {}

    def run(self, *args: str, code: int | None = 0, **env: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(HANDRAIL), *args],
            cwd=self.dir,
            env={**self.env, **self._token_env(args), **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert "Traceback" not in done.stderr, done.stderr
        if code is not None:
            assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def start(self, workflow: str, *args: str, as_: str = "alice") -> str:
        out = self.run("--app", APP, "--as", as_, "tasks", "start", workflow, *args).stdout
        assert out.startswith("started task ")
        return out.split()[2]

    @contextmanager
    def worker(self, worker_id: str = "w1", **env: str) -> Iterator[subprocess.Popen[str]]:
        """A `handrail worker` process; stopped with SIGTERM (it must exit cleanly)."""
        proc = subprocess.Popen(
            [
                str(HANDRAIL),
                "--app",
                APP,
                "worker",
                "--poll-interval",
                "0.05",
                "--worker-id",
                worker_id,
            ],
            cwd=self.dir,
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                _, err = proc.communicate(timeout=TIMEOUT)
                assert proc.returncode == 0, err
                assert "stopped" in err
                assert "Traceback" not in err
            else:
                proc.communicate()

    def wait_status(self, task_id: str, *statuses: str) -> str:
        """Poll the store until the task reaches one of ``statuses``."""
        store = open_store(str(self.db))
        try:
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                record = store.get_task(task_id)
                if record is not None and record.status.value in statuses:
                    return record.status.value
                time.sleep(0.02)
        finally:
            store.close()
        raise AssertionError(f"task {task_id} did not reach {statuses}")


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    assert HANDRAIL.exists(), f"the handrail script is not installed next to {sys.executable}"
    return CLI(tmp_path)


def test_start_list_show(cli: CLI) -> None:
    with cli.worker():
        out = cli.run(
            "--app",
            APP,
            "--as",
            "alice",
            "tasks",
            "start",
            "greet",
            "--arg",
            "name=Ada",
            "--id",
            "t-greet",
            "--wait",
        ).stdout
    assert "started task t-greet (workflow greet, queue default) as alice" in out
    assert '"Hello, Ada!"' in out

    listing = cli.run("tasks", "list").stdout
    assert "t-greet" in listing
    assert "completed" in listing
    rows = cli.json("tasks", "list", "--status", "completed", "--workflow", "greet")
    assert [r["task_id"] for r in rows] == ["t-greet"]
    assert rows[0]["initiator"] == "alice"
    assert cli.json("tasks", "list", "--status", "failed") == []

    shown = cli.run("tasks", "show", "t-greet").stdout
    for expected in (
        "Timeline",
        "task_created",
        "task_claimed",
        "step_started",
        "0 lookup_greeting",
        "The user wants a greeting for Ada; look it up.",
        'out: "Hello, Ada!"',
        "task_completed",
        "alice",
        "Context summary",
    ):
        assert expected in shown, expected

    view = cli.json("tasks", "show", "t-greet")
    assert view["task"]["status"] == "completed"
    assert view["result"] == "Hello, Ada!"
    assert [e["kind"] for e in view["events"]] == [
        "task_created",
        "task_claimed",
        "step_started",
        "step_completed",
        "task_completed",
    ]
    assert view["events"][2]["agent_reasoning"].startswith("The user wants a greeting")


def test_start_with_json_arguments_and_bad_arguments(cli: CLI) -> None:
    task_id = cli.start(
        "charge", "--json", json.dumps({"ledger": "l.txt", "amount": 5}), "--arg", "account=x"
    )
    view = cli.json("tasks", "show", task_id)
    assert view["inputs"]["kwargs"] == {"ledger": "l.txt", "amount": 5, "account": "x"}

    def start_fails(*args: str) -> str:
        return cli.run("--app", APP, "--as", "a", "tasks", "start", *args, code=2).stderr

    assert "unknown argument(s) nme" in start_fails("greet", "--arg", "nme=Ada")
    assert "missing argument(s) name" in start_fails("greet")
    assert "registered: charge, flaky, greet" in start_fails("gret")
    assert "KEY=VALUE" in start_fails("greet", "--arg", "name")
    assert "not valid JSON" in start_fails("greet", "--json", "{name")
    assert "expected a JSON object" in start_fails("greet", "--json", "[1]")
    err = cli.run(
        "--app",
        APP,
        "--as",
        "a",
        "tasks",
        "start",
        "greet",
        "--arg",
        "name=A",
        "--id",
        task_id,
        code=1,
    ).stderr
    assert f"a task with id {task_id!r} exists already" in err


def test_cancel(cli: CLI) -> None:
    task_id = cli.start("greet", "--arg", "name=Bo")
    err = cli.run("tasks", "cancel", task_id, code=2).stderr
    assert "must name who does it" in err
    assert "--as" in err
    assert cli.json("tasks", "show", task_id)["task"]["status"] == "pending"

    out = cli.run("--as", "bob", "tasks", "cancel", task_id, "--reason", "wrong customer").stdout
    assert f"task {task_id} cancelled by bob" in out
    view = cli.json("tasks", "show", task_id)
    assert view["task"]["status"] == "cancelled"
    cancelled = [e for e in view["events"] if e["kind"] == "task_cancelled"]
    assert cancelled[0]["actor"] == "bob"
    assert cancelled[0]["data"] == {"reason": "wrong customer"}
    assert "reason: wrong customer" in cli.run("tasks", "show", task_id).stdout

    err = cli.run("--as", "bob", "tasks", "cancel", task_id, code=1).stderr
    assert "cancelled already; nothing to cancel" in err


def test_failed_task_resumes(cli: CLI) -> None:
    marker = cli.dir / "marker"
    with cli.worker():
        task_id = cli.start("flaky", "--arg", f"marker={marker}")
        cli.wait_status(task_id, "failed")
        shown = cli.run("tasks", "show", task_id).stdout
        assert "FileNotFoundError" in shown
        assert f"tasks resume {task_id}" in shown

        assert "must name who" in cli.run("tasks", "resume", task_id, code=2).stderr
        marker.touch()
        out = cli.run("--as", "carol", "tasks", "resume", task_id).stdout
        assert f"task {task_id} resumed by carol" in out
        cli.wait_status(task_id, "completed")
    view = cli.json("tasks", "show", task_id)
    assert view["result"] == "marker present"
    resumed = [e for e in view["events"] if e["kind"] == "task_resumed"]
    assert resumed[0]["actor"] == "carol"
    err = cli.run("--as", "carol", "tasks", "resume", task_id, code=1).stderr
    assert "only failed or stalled tasks can be resumed" in err


def test_in_doubt_step_becomes_an_intervention(cli: CLI) -> None:
    ledger = cli.dir / "ledger.txt"
    task_id = cli.start(
        "charge", "--arg", f"ledger={ledger}", "--arg", "account=acme", "--json", '{"amount": 1200}'
    )
    with cli.worker("w1", CLIAPP_CRASH_IN="charge_card") as doomed:
        doomed.wait(timeout=TIMEOUT)
    assert doomed.returncode == -signal.SIGKILL
    assert ledger.read_text() == "acme 1200\n"
    shown = cli.run("tasks", "show", task_id).stdout
    assert "0 charge_card" in shown
    assert "Charge account acme 1200 cents for the order." in shown

    with cli.worker("w1"):  # the same identity takes the dead worker's lease back at once
        cli.wait_status(task_id, "awaiting_intervention")
        listing = cli.run("interventions", "list").stdout
        assert "in_doubt" in listing
        assert "charge_card" in listing
        (item,) = cli.json("interventions", "list", "--task", task_id)
        assert "whether its effect happened is in doubt" in item["reason"]
        iid = item["intervention_id"]
        assert item["open"]
        assert f"interventions resolve {iid}" in cli.run("tasks", "show", task_id).stdout

        resolve = ("interventions", "resolve", iid, "--action", "mark_done")
        assert "must name who" in cli.run(*resolve, code=2).stderr
        out = cli.run(
            "--as",
            "dave",
            *resolve,
            "--output",
            '{"charge_id": "ch-manual"}',
            "--comment",
            "found it at the processor",
        ).stdout
        assert "resolved by dave (mark_done): step 0 (charge_card) recorded as done" in out
        cli.wait_status(task_id, "completed")

    assert ledger.read_text() == "acme 1200\n"  # never charged twice
    view = cli.json("tasks", "show", task_id)
    assert view["result"]["receipt"] == {"charge_id": "ch-manual"}
    assert "no open interventions" in cli.run("interventions", "list").stdout
    (resolved,) = cli.json("interventions", "list", "--all")
    assert resolved["resolved_by"] == "dave"
    assert resolved["resolution"] == "mark_done"
    assert resolved["comment"] == "found it at the processor"
    err = cli.run("--as", "dave", *resolve, code=1).stderr
    assert "resolved already" in err


def test_unknown_ids_fail_with_a_hint(cli: CLI) -> None:
    cli.start("greet", "--arg", "name=x")  # the store exists
    for args in (
        ("tasks", "show", "nope"),
        ("--as", "bob", "tasks", "cancel", "nope"),
        ("--as", "bob", "tasks", "resume", "nope"),
        ("interventions", "list", "--task", "nope"),
    ):
        err = cli.run(*args, code=1).stderr
        assert "no task with id 'nope'" in err
        assert "handrail tasks list" in err
    err = cli.run(
        "--as", "bob", "interventions", "resolve", "nope", "--action", "fail", code=1
    ).stderr
    assert "no intervention with id 'nope'" in err
    assert "handrail interventions list" in err


def test_missing_store_and_app_errors(cli: CLI) -> None:
    err = cli.run("tasks", "list", code=1).stderr
    assert "no handrail store at" in err
    assert not cli.db.exists()

    err = cli.run("--as", "a", "tasks", "start", "greet", code=2).stderr
    assert "needs the app" in err
    assert "--app module:attribute" in err
    assert "needs the app" in cli.run("worker", code=2).stderr

    def bad_app(ref: str) -> str:
        return cli.run("--app", ref, "tasks", "list", code=2).stderr

    assert "expected module:attribute" in bad_app("cliapp")
    err = bad_app("no_such_module:app")
    assert "cannot import module 'no_such_module'" in err
    assert "PYTHONPATH" in err
    err = bad_app("cliapp:nope")
    assert "has no attribute 'nope'" in err
    assert "Apps defined in 'cliapp': app" in err
    err = bad_app("cliapp:NOT_AN_APP")
    assert "is a str, not a handrail.App" in err


def test_help_for_every_command(cli: CLI) -> None:
    commands = [
        (),
        ("tasks",),
        ("tasks", "start"),
        ("tasks", "list"),
        ("tasks", "show"),
        ("tasks", "cancel"),
        ("tasks", "resume"),
        ("interventions",),
        ("interventions", "list"),
        ("interventions", "resolve"),
        ("approvals",),
        ("approvals", "list"),
        ("approvals", "show"),
        ("approvals", "approve"),
        ("approvals", "deny"),
        ("worker",),
        ("demo",),
        ("halt",),
        ("release",),
        ("halts",),
        ("principals",),
        ("principals", "add"),
    ]
    for command in commands:
        out = cli.run(*command, "--help").stdout
        assert out.startswith("Usage: handrail"), command
    listed = cli.run("--help").stdout
    for name in (
        "tasks",
        "interventions",
        "approvals",
        "worker",
        "demo",
        "halt",
        "release",
        "halts",
        "principals",
    ):
        assert f"  {name} " in listed, name


def test_demo(cli: CLI) -> None:
    began = time.monotonic()
    out = cli.run("demo", code=0).stdout
    assert time.monotonic() - began < 15
    for expected in (
        # a worker: a transient failure retried after a durable back-off, a stale-data
        # conflict refreshed, then SIGKILL with the refreshed update in doubt
        "step 3 check_vendor_status attempt 1 failed: ServiceUnavailable (HTTP 503), "
        "class transient -> retry at",
        "step 3 check_vendor_status attempt 2: back-off elapsed",
        "step 5 update_renewal_date attempt 1 failed: VersionConflict (HTTP 409), "
        "class stale_data -> refresh the inputs and retry at once",
        "step 5 update_renewal_date attempt 2: inputs refreshed after stale data "
        "(expected_version 1 -> 2)",
        "killed by SIGKILL",
        "step 5 update_renewal_date: intent recorded, no result -> in doubt",
        # the low-risk CRM update is auto-approved at its deadline
        "step 5 update_renewal_date asks for approval renewal-C-1042/",
        "approved by timer:auto_approve_after at",
        # the restarted worker: the in-doubt step re-run, then the irreversible notice waits
        "Restart the worker with the same id",
        "step 5 update_renewal_date attempt 3: in doubt after a crash; safe to re-run "
        "(idempotency key)",
        "step 9 send_renewal_notice asks for approval renewal-C-1042/",
        "task renewal-C-1042 is awaiting_approval; the outbox holds 0 notices",
        # the approver, by name; then the notice is sent and a permission failure follows
        "expected outcome",
        "handrail --as dana approvals approve renewal-C-1042/",
        "approved by dana at",
        "outbox: sent msg-0001",
        "step 11 log_crm_activity attempt 1 failed: Forbidden (HTTP 403), class permission "
        "-> raise an intervention for a human",
        "task renewal-C-1042 is awaiting_intervention",
        # the operator
        "Interventions (1)",
        "needed:  grant the access the tool needs",
        "CRM: dana (CRM admin) grants activities:write to role renewals-agent",
        "dana (CRM admin) resolves renewal-C-1042/",
        "step 11 log_crm_activity attempt 2: authorized by an operator",
        "task renewal-C-1042 is completed",
        "Timeline",
        "step_failed",
        "approval_decided",
        "intervention_resolved",
        # the stories, read back from the journal and the systems' files
        "transient failure, retried after a durable back-off",
        "the vendor status service answered: 503, 200",
        "stale-data conflict, inputs refreshed",
        "attempt 2 is journaled with the refreshed inputs: expected_version 1 -> 2",
        "approval gates: a low-risk call auto-approved, an irreversible one by a human",
        "SIGKILL mid-step, resumed without repeating an effect",
        "3 attempts with one key: the CRM saw conflict (version 1), applied (version 2), "
        "duplicate (version 2); the re-run used the journaled refreshed inputs",
        "permission failure, raised to a human and resolved",
        "resolved 'retry' by dana at",
        "the CRM answered: 403, logged",
        "CRM updates: 1 (duplicates ignored: 1, version conflicts: 1), notices sent: 1, "
        "CRM activities logged: 1",
        "verdict: PASS - all",
    ):
        assert expected in out, expected
    assert "verdict: FAIL" not in out
    assert "\n  ! " not in out, "a story reports a problem"


def test_demo_refuses_an_existing_store(cli: CLI) -> None:
    db = cli.dir / "demo.db"
    out = cli.run("demo", "--db", str(db)).stdout
    assert db.exists()
    # it ends with the status summary and the commands that open its store
    assert "The store at a glance (as `handrail status` prints it)" in out
    assert "Alerts: none firing" in out
    assert f"handrail --db {db} status" in out
    assert "serve --port 8080" in out
    status = cli.json("--db", str(db), "status")
    assert status is not None
    assert (cli.dir / "demo-systems" / "outbox.jsonl").exists()
    err = cli.run("demo", "--db", str(db), code=1).stderr
    assert "needs a fresh store" in err


def test_operator_actions_need_an_authenticated_principal(cli: CLI) -> None:
    task_id = cli.start("greet", "--arg", "name=x")
    wrong = cli.run(
        "--as", "bob", "tasks", "cancel", task_id, code=1, HANDRAIL_TOKEN="hr_not-the-token"
    ).stderr
    assert "cannot authenticate 'bob'" in wrong
    unknown = cli.run("--as", "mallory", "tasks", "cancel", task_id, code=1).stderr
    assert "cannot authenticate 'mallory'" in unknown
    no_role = cli.run("--as", "eve", "tasks", "cancel", task_id, code=1).stderr
    assert "needs the 'operator' role" in no_role
    no_file = cli.run(
        "--as", "bob", "tasks", "cancel", task_id, code=2, HANDRAIL_PRINCIPALS=""
    ).stderr
    assert "HANDRAIL_PRINCIPALS" in no_file
    cli.run("--as", "bob", "tasks", "cancel", task_id)


def test_principals_add_prints_a_token_that_works(cli: CLI) -> None:
    path = cli.dir / "more.toml"
    out = cli.run("principals", "add", "frank", "--role", "operator", "--file", str(path)).stdout
    token = out.split("HANDRAIL_TOKEN=")[1].split()[0]
    assert token not in path.read_text()  # only its hash is stored
    again = cli.run("principals", "add", "frank", "--role", "operator", "--file", str(path), code=1)
    assert "already" in again.stderr
    out = cli.run(
        "--app",
        APP,
        "--as",
        "frank",
        "tasks",
        "start",
        "greet",
        "--arg",
        "name=y",
        HANDRAIL_PRINCIPALS=str(path),
        HANDRAIL_TOKEN=token,
    ).stdout
    assert "as frank" in out


def test_halt_and_release_from_the_command_line(cli: CLI) -> None:
    task_id = cli.start("greet", "--arg", "name=zoe")
    out = cli.run("--as", "carol", "halt", "--task", task_id, "--reason", "checking").stdout
    assert f"halted task {task_id}" in out
    assert "by carol" in out
    halts = cli.json("halts")
    assert [(h["scope"], h["target"], h["halted_by"], h["reason"]) for h in halts] == [
        ("task", task_id, "carol", "checking")
    ]
    with cli.worker():
        time.sleep(0.5)  # a worker is running, but a halted task is not claimed
        assert cli.json("tasks", "show", task_id)["task"]["status"] == "pending"
        out = cli.run("--as", "carol", "release", "--task", task_id).stdout
        assert f"released task {task_id}" in out
        assert cli.wait_status(task_id, "completed") == "completed"
    assert cli.run("halts").stdout.strip() == "no active halts"
    assert "carol" in cli.run("halts", "--all").stdout
    err = cli.run("--as", "carol", "halt", "--task", task_id, "--tool", "x", code=2).stderr
    assert "exactly one of" in err
    err = cli.run("--as", "carol", "release", "--all", code=1).stderr
    assert "no active halt" in err
    err = cli.run("--as", "eve", "halt", "--all", code=1).stderr
    assert "operator" in err


def test_app_from_the_environment(cli: CLI) -> None:
    out = cli.run(
        "--as",
        "alice",
        "tasks",
        "start",
        "greet",
        "--arg",
        "name=env",
        HANDRAIL_APP=APP,
        HANDRAIL_TOKEN=cli.tokens["alice"],
    ).stdout
    assert "started task" in out


def test_approvals_from_the_command_line(cli: CLI) -> None:
    ledger = cli.dir / "reports.txt"
    with cli.worker():
        task_id = cli.start("report", "--arg", f"ledger={ledger}", "--arg", "recipient=cfo")
        cli.wait_status(task_id, "awaiting_approval")
        assert not ledger.exists()
        listed = cli.run("approvals", "list").stdout
        assert "Send the quarterly report to cfo" in listed
        (item,) = cli.json("approvals", "list")
        rid = item["request_id"]
        shown = cli.run("approvals", "show", rid).stdout
        for text in (
            "report-bot",
            "Send the quarterly report to cfo",
            '"recipient": "cfo"',
            "The quarter closed; cfo gets the report.",
            "cfo receives the report; it cannot be unsent",
            "irreversible",
            "3600 s",
            "Context summary",
            "No previous steps",
            item["digest"],
        ):
            assert text in shown, text
        # identity comes from configuration, never assumed
        anonymous = cli.run("approvals", "approve", rid, code=2).stderr
        assert "--as NAME" in anonymous
        no_role = cli.run("--as", "bob", "approvals", "approve", rid, code=1).stderr
        assert "needs the 'approver' role" in no_role
        stale = cli.run(
            "--as", "dana", "approvals", "approve", rid, "--digest", "sha256:00", code=1
        ).stderr
        assert "digest" in stale
        out = cli.run(
            "--as", "dana", "approvals", "approve", rid, "--digest", item["digest"],
            "--comment", "numbers checked",
        ).stdout  # fmt: skip
        assert f"approval {rid} approved by dana" in out
        assert cli.wait_status(task_id, "completed") == "completed"
    assert ledger.read_text() == "sent to cfo\n"
    timeline = cli.run("tasks", "show", task_id).stdout
    assert "approved by dana" in timeline
    assert "numbers checked" in timeline
    again = cli.run("--as", "dana", "approvals", "deny", rid, code=1).stderr
    assert "approved already" in again


def test_the_initiator_cannot_approve_from_the_command_line(cli: CLI) -> None:
    ledger = cli.dir / "reports.txt"
    task_id = cli.start("report", "--arg", f"ledger={ledger}", "--arg", "recipient=cfo")
    with cli.worker():
        cli.wait_status(task_id, "awaiting_approval")
    (item,) = cli.json("approvals", "list")
    out = cli.run(
        "--as", "alice", "approvals", "approve", item["request_id"], code=1,
        HANDRAIL_TOKEN=cli.tokens["alice"],
    ).stderr  # fmt: skip
    assert "separation of duties" in out
    denied = cli.run(
        "--as", "dana", "approvals", "deny", item["request_id"], "--comment", "not this quarter"
    ).stdout
    assert "denied by dana" in denied
    with cli.worker():
        assert cli.wait_status(task_id, "failed") == "failed"
    shown = cli.run("tasks", "show", task_id).stdout
    assert "not this quarter" in shown
    assert not ledger.exists()
