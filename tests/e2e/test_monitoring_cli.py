"""`handrail status` and `handrail metrics` end to end: real processes on a real SQLite
file, with tasks run by a real `handrail worker` (issue 6)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from handrail.auth import add_principal

HERE = Path(__file__).resolve().parent
HANDRAIL = Path(sys.executable).with_name("handrail")
APP = "cliapp:app"


class Shell:
    def __init__(self, tmp_path: Path):
        self.dir = tmp_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("HANDRAIL_")}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p
        )
        env["HANDRAIL_DB"] = str(tmp_path / "handrail.db")
        env["COLUMNS"] = "200"
        principals = tmp_path / "principals.toml"
        env["HANDRAIL_TOKEN"] = add_principal(principals, "alice", ["operator"])
        env["HANDRAIL_PRINCIPALS"] = str(principals)
        self.env = env

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [str(HANDRAIL), *args],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout

    def status(self, *args: str) -> Any:
        return json.loads(self.run("--app", APP, "status", "--json", *args))


def test_status_and_metrics_follow_the_tasks_a_worker_runs(tmp_path: Path) -> None:
    sh = Shell(tmp_path)
    for name in ("Ann", "Bo"):
        sh.run("--app", APP, "--as", "alice", "tasks", "start", "greet", "--arg", f"name={name}")

    before = sh.status()
    (queue,) = before["queues"]
    assert (queue["queue"], queue["statuses"], queue["due"]) == ("default", {"pending": 2}, 2)
    assert before["oldest_pending_age_seconds"] >= 0
    assert before["stuck"] == before["missed_approvals"] == before["alerts"] == []
    assert before["tools"] == []

    worker = subprocess.Popen(
        [str(HANDRAIL), "--app", APP, "worker", "--poll-interval", "0.05", "--worker-id", "w1"],
        cwd=tmp_path,
        env=sh.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = json.loads(sh.run("tasks", "list", "--status", "completed", "--json"))
            if len(done) == 2:
                break
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert len(done) == 2

    after = sh.status("--window", "600")
    assert after["window_seconds"] == 600
    assert after["queues"] == []
    (greeting,) = after["tools"]
    assert (greeting["tool"], greeting["calls"], greeting["success_rate"]) == (
        "lookup_greeting",
        2,
        1.0,
    )
    assert after["interventions"]["finished"] == 2
    assert after["interventions"]["ratio"] == 0.0

    screen = sh.run("--app", APP, "status")
    for part in ("handrail status at", "Queues: no unfinished tasks", "Stuck tasks: none"):
        assert part in screen
    assert "lookup_greeting" in screen
    assert "Alerts: none firing" in screen

    families = {f.name: f for f in text_string_to_metric_families(sh.run("metrics"))}
    calls = {
        (s.labels["tool"], s.labels["outcome"], s.labels["failure_class"]): s.value
        for s in families["handrail_tool_calls"].samples
        if s.name == "handrail_tool_calls_total"
    }
    assert calls == {("lookup_greeting", "success", "none"): 2.0}
    assert families["handrail_window_tasks_finished"].samples[0].value == 2.0
    assert families["handrail_tool_call_duration_seconds"].type == "histogram"
