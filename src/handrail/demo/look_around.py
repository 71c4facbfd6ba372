"""The demo's last section: the status summary of its store, and where to look next (the
task's timeline, the audit log, the dashboard)."""

from __future__ import annotations

import shlex

from rich.console import Console

from handrail.cli import status_render
from handrail.demo.harness import TASK_ID, Paths, heading, note
from handrail.monitoring import Monitor, default_alert_rules
from handrail.store.url import open_store


def status(out: Console, paths: Paths) -> None:
    """Print what `handrail status` prints for the demo's store."""
    heading(out, "11. The store at a glance (as `handrail status` prints it)")
    store = open_store(str(paths.db))
    try:
        snapshot = Monitor(store, totals=False).snapshot()
        firing = [
            (rule.name, finding)
            for rule in default_alert_rules()
            for finding in rule.check(snapshot)
        ]
        out.print(status_render.status_view(snapshot, firing))
    finally:
        store.close()


def where_to_look(out: Console, paths: Paths, *, kept: bool) -> None:
    """The commands that open the demo's store: status, timeline, the dashboard."""
    if kept:
        db = shlex.quote(str(paths.db))
        principals = shlex.quote(str(paths.directory / "principals.toml"))
        note(out, "look around:", "dim")
    else:
        db, principals = "demo.db", "principals.toml"
        note(out, "to look around, keep a store: `handrail demo --db demo.db`; then:", "dim")
    lines = [
        f"handrail --db {db} status",
        f"handrail --db {db} tasks show {TASK_ID}",
        "handrail principals add you --role operator --role approver --role auditor "
        f"--file {principals}",
        f"handrail --db {db} --principals {principals} serve --port 8080",
        "  (the dashboard: pip install 'handrail[server]'; open http://127.0.0.1:8080/ and "
        "sign in with the token printed above)",
    ]
    for line in lines:
        note(out, f"  {line}", "dim")
