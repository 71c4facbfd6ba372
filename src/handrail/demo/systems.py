"""The demo's pretend external systems, each a file in the demo's systems directory.

- ``contracts.json``: the contract repository and vendor register (read only);
- ``crm.json``: the CRM; renewal-date updates are deduplicated by idempotency key, and
  every request (applied or duplicate) is logged so the demo can prove what happened;
- ``outbox.jsonl``: sent e-mails, one line each, fsynced before the send returns;
- ``crm_activity.jsonl``: activity notes logged on the CRM record.

Every write reaches the disk before the call returns, as a real system's acknowledgement
would: a process killed right after a call cannot un-happen its effect.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

Log = Callable[[str], None]

SEED: dict[str, Any] = {
    "contracts": {
        "C-1042": {
            "contract_id": "C-1042",
            "title": "Data analytics platform subscription",
            "vendor_id": "V-77",
            "end_date": "2025-09-30",
            "auto_renew": True,
            "renewal_term_months": 12,
            "annual_value_eur": 48000,
            "notice_contact": "procurement@northwind.example",
        }
    },
    "vendors": {
        "V-77": {
            "vendor_id": "V-77",
            "name": "Northwind Analytics",
            "status": "active",
            "risk_rating": "low",
        }
    },
}


def _write_atomic(path: Path, value: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _append_line(path: Path, value: Any) -> int:
    """Append one JSON line durably; return how many lines the file holds now."""
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(value, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return _count_lines(path)


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open(encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def _silent(message: str) -> None:
    del message


class Systems:
    """The contract repository, CRM, outbox and activity log of the demo."""

    def __init__(self, root: Path, log: Log = _silent):
        self.root = root
        self.log = log
        self.contracts_path = root / "contracts.json"
        self.crm_path = root / "crm.json"
        self.outbox_path = root / "outbox.jsonl"
        self.activity_path = root / "crm_activity.jsonl"

    def files(self) -> list[Path]:
        return [self.contracts_path, self.crm_path, self.outbox_path, self.activity_path]

    def seed(self) -> None:
        """Create the systems with their starting data (the directory must be new)."""
        self.root.mkdir(parents=True, exist_ok=False)
        _write_atomic(self.contracts_path, SEED)
        crm = {
            "contracts": {
                cid: {"end_date": c["end_date"], "vendor_id": c["vendor_id"]}
                for cid, c in SEED["contracts"].items()
            },
            "applied_keys": {},
            "requests": [],
        }
        _write_atomic(self.crm_path, crm)

    # -- contract repository (read only) -------------------------------------------------

    def _source(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.contracts_path.read_text(encoding="utf-8"))
        return data

    def contract(self, contract_id: str) -> dict[str, Any]:
        contract: dict[str, Any] | None = self._source()["contracts"].get(contract_id)
        if contract is None:
            raise LookupError(f"no contract {contract_id}")
        self.log(f"contracts: read {contract_id} (ends {contract['end_date']})")
        return contract

    def vendor(self, vendor_id: str) -> dict[str, Any]:
        vendor: dict[str, Any] | None = self._source()["vendors"].get(vendor_id)
        if vendor is None:
            raise LookupError(f"no vendor {vendor_id}")
        self.log(f"vendors: {vendor['name']} is {vendor['status']}")
        return vendor

    # -- CRM -------------------------------------------------------------------------------

    def _crm(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.crm_path.read_text(encoding="utf-8"))
        return data

    def update_end_date(self, contract_id: str, new_end_date: str, key: str) -> dict[str, Any]:
        """Set a contract's end date, once per idempotency key: a repeated key returns the
        first outcome and changes nothing."""
        crm = self._crm()
        earlier: dict[str, Any] | None = crm["applied_keys"].get(key)
        if earlier is not None:
            crm["requests"].append({"key": key, "outcome": "duplicate"})
            _write_atomic(self.crm_path, crm)
            self.log(f"CRM: key {key} was applied already; duplicate ignored, nothing changed")
            return {**earlier, "deduplicated": True}
        record = crm["contracts"][contract_id]
        result = {
            "contract_id": contract_id,
            "previous_end_date": record["end_date"],
            "end_date": new_end_date,
            "update_id": f"upd-{len(crm['applied_keys']) + 1:04d}",
        }
        record["end_date"] = new_end_date
        crm["applied_keys"][key] = result
        crm["requests"].append({"key": key, "outcome": "applied"})
        _write_atomic(self.crm_path, crm)
        self.log(
            f"CRM: {contract_id} end date {result['previous_end_date']} -> {new_end_date} "
            f"(key {key}) written to disk"
        )
        return {**result, "deduplicated": False}

    def log_activity(self, contract_id: str, summary: str) -> dict[str, Any]:
        count = _append_line(self.activity_path, {"contract_id": contract_id, "summary": summary})
        activity_id = f"act-{count:04d}"
        self.log(f"CRM: activity {activity_id} logged on {contract_id}")
        return {"activity_id": activity_id}

    # -- e-mail outbox -------------------------------------------------------------------

    def send(self, to: str, subject: str, body: str) -> dict[str, Any]:
        count = _append_line(self.outbox_path, {"to": to, "subject": subject, "body": body})
        message_id = f"msg-{count:04d}"
        self.log(f"outbox: sent {message_id} to {to}: {subject!r}")
        return {"message_id": message_id, "to": to}

    # -- what happened ---------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """How many times each side effect happened, read from the files."""
        requests = self._crm()["requests"]
        return {
            "crm_updates": sum(1 for r in requests if r["outcome"] == "applied"),
            "crm_duplicates": sum(1 for r in requests if r["outcome"] == "duplicate"),
            "notices_sent": _count_lines(self.outbox_path),
            "activities_logged": _count_lines(self.activity_path),
        }

    def update_keys(self) -> list[str]:
        """The idempotency keys of every CRM update request, in order."""
        return [str(r["key"]) for r in self._crm()["requests"]]
