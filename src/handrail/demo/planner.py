"""The demo's scripted planner: what an LLM agent would decide, without an LLM.

:func:`next_action` is a pure function of the contract id and what happened so far; the
workflow calls it through ``ctx.step``, so each decision is journaled (and replayed, not
re-decided, after a crash) exactly as an LLM call would be.

A decision is ``{"action": tool name or "finish", "args": {...}, "agent_reasoning": "..."}``
(``"result"`` instead of ``"args"`` for ``finish``).
"""

from __future__ import annotations

import calendar
from datetime import date
from typing import Any

History = list[dict[str, Any]]


def add_months(day: date, months: int) -> date:
    """``day`` moved by ``months`` calendar months (clamped to the month's last day)."""
    total = day.month - 1 + months
    year, month = day.year + total // 12, total % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _decide(action: str, reasoning: str, **args: Any) -> dict[str, Any]:
    return {"action": action, "args": args, "agent_reasoning": reasoning}


def _finish(reasoning: str, **result: Any) -> dict[str, Any]:
    return {"action": "finish", "result": result, "agent_reasoning": reasoning}


def next_action(contract_id: str, history: History) -> dict[str, Any]:
    """The next step of the contract-renewal agent."""
    done = {h["action"]: h["result"] for h in history}
    if "fetch_contract" not in done:
        return _decide(
            "fetch_contract",
            f"I need the terms of contract {contract_id} before deciding on its renewal.",
            contract_id=contract_id,
        )
    contract = done["fetch_contract"]
    if not contract["auto_renew"]:
        return _finish("The contract does not auto-renew; a human negotiates it.", renewed=False)
    if "check_vendor_status" not in done:
        return _decide(
            "check_vendor_status",
            f"The contract ends {contract['end_date']} and auto-renews; first confirm that "
            f"vendor {contract['vendor_id']} is still in good standing.",
            vendor_id=contract["vendor_id"],
        )
    vendor = done["check_vendor_status"]
    if vendor["status"] != "active":
        return _finish(
            f"Vendor {vendor['name']} is {vendor['status']}; I will not renew.", renewed=False
        )
    term = int(contract["renewal_term_months"])
    new_end = add_months(date.fromisoformat(contract["end_date"]), term).isoformat()
    if "update_renewal_date" not in done:
        return _decide(
            "update_renewal_date",
            f"{vendor['name']} is {vendor['status']} with {vendor['risk_rating']} risk, so "
            f"the contract renews for {term} months: move its end date from "
            f"{contract['end_date']} to {new_end} in the CRM (the record I read is at version "
            f"{contract['version']}).",
            contract_id=contract_id,
            new_end_date=new_end,
            expected_version=contract["version"],
        )
    if "draft_renewal_notice" not in done:
        return _decide(
            "draft_renewal_notice",
            "The CRM holds the new date; draft the renewal notice the vendor is owed.",
            contract=contract,
            vendor_name=vendor["name"],
            new_end_date=new_end,
        )
    draft = done["draft_renewal_notice"]
    if "send_renewal_notice" not in done:
        return _decide(
            "send_renewal_notice",
            f"The draft names the right contract and date; send it to {draft['to']}.",
            to=draft["to"],
            subject=draft["subject"],
            body=draft["body"],
        )
    sent = done["send_renewal_notice"]
    if "log_crm_activity" not in done:
        return _decide(
            "log_crm_activity",
            "Record on the CRM contract that the renewal notice went out.",
            contract_id=contract_id,
            summary=f"Renewed to {new_end}; notice {sent['message_id']} sent to {sent['to']}.",
        )
    return _finish(
        f"Contract {contract_id} is renewed to {new_end} and the vendor is notified.",
        renewed=True,
        contract_id=contract_id,
        new_end_date=new_end,
        notice=sent["message_id"],
        activity=done["log_crm_activity"]["activity_id"],
    )
