"""The demo's pretend external systems, each a file in the demo's systems directory.

- ``contracts.json``: the contract repository and vendor register (read only);
- ``crm.json``: the CRM: contract records with a version number each (optimistic locking),
  renewal-date updates deduplicated by idempotency key, and the permissions of the agent's
  CRM role;
- ``outbox.jsonl``: sent e-mails, one line each, fsynced before the send returns;
- ``crm_activity.jsonl``: activity notes logged on the CRM record;
- ``faults.json``: scripted misbehaviour, each fault consumed by the one request it hits;
- ``requests.jsonl``: every request a service received and how it answered, so the demo
  can prove what happened.

Every write reaches the disk before the call returns, as a real system's acknowledgement
would: a process killed right after a call cannot un-happen its effect.

The services fail the way HTTP services do (:mod:`handrail.demo.service_errors`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from handrail.demo.files import append_line, read_lines, write_atomic
from handrail.demo.service_errors import Forbidden, ServiceUnavailable, VersionConflict

Log = Callable[[str], None]

AGENT_ROLE = "renewals-agent"
ACTIVITY_PERMISSION = "activities:write"
# What the agent's CRM role may do at first: not write activities, until an admin grants it.
AGENT_GRANTS = ("contracts:read", "contracts:write")
VENDOR_RETRY_AFTER = 0.2
COLLEAGUE = "maria.k (procurement)"

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

# What goes wrong, once each: the vendor status service is restarting when first asked,
# and a colleague edits the contract in the CRM between the agent's read and its update.
SEED_FAULTS: dict[str, list[dict[str, Any]]] = {
    "vendor_status": [{"kind": "unavailable", "retry_after": VENDOR_RETRY_AFTER}],
    "crm_update": [
        {"kind": "concurrent_edit", "by": COLLEAGUE, "fields": {"owner": "Data Platform team"}}
    ],
}


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
        self.faults_path = root / "faults.json"
        self.requests_path = root / "requests.jsonl"

    def seed(self) -> None:
        """Create the systems with their starting data (the directory must be new)."""
        self.root.mkdir(parents=True, exist_ok=False)
        write_atomic(self.contracts_path, SEED)
        crm = {
            "contracts": {
                cid: {
                    "end_date": c["end_date"],
                    "vendor_id": c["vendor_id"],
                    "owner": "IT operations",
                    "version": 1,
                    "edited_by": None,
                }
                for cid, c in SEED["contracts"].items()
            },
            "applied_keys": {},
            "roles": {AGENT_ROLE: list(AGENT_GRANTS)},
        }
        write_atomic(self.crm_path, crm)
        write_atomic(self.faults_path, SEED_FAULTS)

    def _fault(self, operation: str) -> dict[str, Any] | None:
        """Take the next scripted fault for ``operation`` (durably: it happens once)."""
        faults: dict[str, list[dict[str, Any]]] = json.loads(
            self.faults_path.read_text(encoding="utf-8")
        )
        queue = faults.get(operation) or []
        if not queue:
            return None
        fault = queue.pop(0)
        write_atomic(self.faults_path, faults)
        return fault

    def _request(self, service: str, operation: str, outcome: str, **details: Any) -> None:
        append_line(
            self.requests_path,
            {"service": service, "operation": operation, "outcome": outcome, **details},
        )

    # -- contract repository and vendor status service (read only) ------------------------

    def _source(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.contracts_path.read_text(encoding="utf-8"))
        return data

    def contract(self, contract_id: str) -> dict[str, Any]:
        """The contract's terms, with its CRM record (end date, owner, version)."""
        terms: dict[str, Any] | None = self._source()["contracts"].get(contract_id)
        if terms is None:
            raise LookupError(f"no contract {contract_id}")
        record = self.crm_record(contract_id, quiet=True)
        contract = {
            **terms,
            "end_date": record["end_date"],
            "owner": record["owner"],
            "version": record["version"],
        }
        self.log(
            f"contracts: read {contract_id} (ends {contract['end_date']}, "
            f"CRM version {contract['version']})"
        )
        return contract

    def vendor(self, vendor_id: str) -> dict[str, Any]:
        fault = self._fault("vendor_status")
        if fault is not None:
            wait = float(fault["retry_after"])
            self._request("vendors", "status", "503", retry_after=wait)
            self.log(
                f"vendors: status service answered 503 Service Unavailable (Retry-After {wait}s)"
            )
            raise ServiceUnavailable(
                f"503 Service Unavailable: the vendor status service is restarting; "
                f"retry after {wait}s",
                headers={"Retry-After": str(wait)},
            )
        vendor: dict[str, Any] | None = self._source()["vendors"].get(vendor_id)
        if vendor is None:
            raise LookupError(f"no vendor {vendor_id}")
        self._request("vendors", "status", "200")
        self.log(f"vendors: {vendor['name']} is {vendor['status']}")
        return vendor

    # -- CRM -------------------------------------------------------------------------------

    def _crm(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.crm_path.read_text(encoding="utf-8"))
        return data

    def crm_record(self, contract_id: str, *, quiet: bool = False) -> dict[str, Any]:
        record: dict[str, Any] = self._crm()["contracts"][contract_id]
        if not quiet:
            self.log(f"CRM: read {contract_id}: version {record['version']}")
        return record

    def _concurrent_edit(self, crm: dict[str, Any], contract_id: str) -> None:
        """A colleague's edit, scripted to land just before the agent's first update."""
        fault = self._fault("crm_update")
        if fault is None:
            return
        record = crm["contracts"][contract_id]
        record.update(fault["fields"])
        record["version"] += 1
        record["edited_by"] = fault["by"]
        write_atomic(self.crm_path, crm)
        self._request("crm", "edit", "applied", by=fault["by"], fields=fault["fields"])
        changed = ", ".join(f"{k} = {v!r}" for k, v in fault["fields"].items())
        self.log(
            f"CRM: meanwhile {fault['by']} edits {contract_id} ({changed}): "
            f"now version {record['version']}"
        )

    def update_end_date(
        self, contract_id: str, new_end_date: str, expected_version: int, key: str
    ) -> dict[str, Any]:
        """Set a contract's end date if the record is still at ``expected_version``
        (optimistic locking), once per idempotency key: a repeated key returns the first
        outcome and changes nothing."""
        crm = self._crm()
        earlier: dict[str, Any] | None = crm["applied_keys"].get(key)
        if earlier is not None:
            self._request("crm", "update_end_date", "duplicate", key=key, version=expected_version)
            self.log(f"CRM: key {key} was applied already; duplicate ignored, nothing changed")
            return {**earlier, "deduplicated": True}
        self._concurrent_edit(crm, contract_id)
        record = crm["contracts"][contract_id]
        if record["version"] != expected_version:
            self._request("crm", "update_end_date", "conflict", key=key, version=expected_version)
            self.log(
                f"CRM: 409 Conflict: {contract_id} is at version {record['version']}, "
                f"the update expected {expected_version}; nothing changed"
            )
            raise VersionConflict(
                f"409 Conflict: contract {contract_id} is at version {record['version']}, not "
                f"{expected_version} (edited by {record['edited_by']})",
                current_version=record["version"],
            )
        result = {
            "contract_id": contract_id,
            "previous_end_date": record["end_date"],
            "end_date": new_end_date,
            "update_id": f"upd-{len(crm['applied_keys']) + 1:04d}",
            "version": record["version"] + 1,
        }
        record["end_date"] = new_end_date
        record["version"] += 1
        crm["applied_keys"][key] = result
        write_atomic(self.crm_path, crm)
        self._request("crm", "update_end_date", "applied", key=key, version=expected_version)
        self.log(
            f"CRM: {contract_id} end date {result['previous_end_date']} -> {new_end_date} "
            f"at version {expected_version} (key {key}) written to disk"
        )
        return {**result, "deduplicated": False}

    def log_activity(self, contract_id: str, summary: str) -> dict[str, Any]:
        if ACTIVITY_PERMISSION not in self._crm()["roles"][AGENT_ROLE]:
            self._request("crm", "log_activity", "403")
            self.log(f"CRM: 403 Forbidden: role {AGENT_ROLE} may not write activities")
            raise Forbidden(
                f"403 Forbidden: the agent's CRM role {AGENT_ROLE!r} may not write activities "
                f"(it lacks {ACTIVITY_PERMISSION})"
            )
        count = append_line(self.activity_path, {"contract_id": contract_id, "summary": summary})
        activity_id = f"act-{count:04d}"
        self._request("crm", "log_activity", "logged", activity_id=activity_id)
        self.log(f"CRM: activity {activity_id} logged on {contract_id}")
        return {"activity_id": activity_id}

    def grant(self, role: str, permission: str, *, by: str) -> None:
        """An administrator gives ``role`` a permission."""
        crm = self._crm()
        if permission not in crm["roles"][role]:
            crm["roles"][role].append(permission)
            write_atomic(self.crm_path, crm)
        self.log(f"CRM: {by} grants {permission} to role {role}")

    # -- e-mail outbox -------------------------------------------------------------------

    def send(self, to: str, subject: str, body: str) -> dict[str, Any]:
        count = append_line(self.outbox_path, {"to": to, "subject": subject, "body": body})
        message_id = f"msg-{count:04d}"
        self.log(f"outbox: sent {message_id} to {to}: {subject!r}")
        return {"message_id": message_id, "to": to}

    # -- what happened ---------------------------------------------------------------------

    def requests(self, service: str, operation: str) -> list[dict[str, Any]]:
        """Every request to one operation of a service, in order, with its outcome."""
        return [
            r
            for r in read_lines(self.requests_path)
            if r["service"] == service and r["operation"] == operation
        ]

    def outcomes(self, service: str, operation: str) -> list[str]:
        return [str(r["outcome"]) for r in self.requests(service, operation)]

    def counts(self) -> dict[str, int]:
        """How many times each side effect happened, read from the files."""
        updates = self.outcomes("crm", "update_end_date")
        return {
            "crm_updates": updates.count("applied"),
            "crm_duplicates": updates.count("duplicate"),
            "crm_conflicts": updates.count("conflict"),
            "notices_sent": len(read_lines(self.outbox_path)),
            "activities_logged": len(read_lines(self.activity_path)),
        }

    def update_keys(self) -> list[str]:
        """The idempotency keys of every CRM update request, in order."""
        return [str(r["key"]) for r in self.requests("crm", "update_end_date")]
