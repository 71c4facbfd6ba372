"""A process that seals the audit log's drafts and SIGKILLs itself partway (see
test_audit_seal_crash.py): ``python -m sealapp <store url> <mode>``.

Sealing goes in batches of 100. ``sealed``: killed after sealing the second batch in
memory, before writing it; ``mid``: inside the transaction that writes the second batch
(records inserted, drafts not deleted, nothing committed); ``after``: once the second
batch has committed, as the third is read.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import handrail.audit.log as audit_log
from handrail.store.url import open_store


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(url: str, mode: str) -> None:
    audit_log.DRAFT_BATCH = 100
    store = open_store(url)
    log = store.audit_log()
    backend: Any = sys.modules[type(log).__module__]
    calls = {"seal": 0, "insert": 0}
    seal, insert = audit_log.seal_drafts, backend.insert_audit_records

    def sealing(drafts: Any, vault: Any) -> Any:
        calls["seal"] += 1
        if mode == "after" and calls["seal"] == 3:
            die()
        rows = seal(drafts, vault)
        if mode == "sealed" and calls["seal"] == 2:
            die()
        return rows

    def inserting(conn: Any, rows: Any) -> Any:
        calls["insert"] += 1
        written = insert(conn, rows)
        if mode == "mid" and calls["insert"] == 2:
            die()
        return written

    audit_log.seal_drafts = sealing
    backend.insert_audit_records = inserting
    log.seal_drafts()
    raise SystemExit("sealed everything without being killed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
