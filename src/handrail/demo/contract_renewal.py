"""The demo's agent: renew a contract that auto-renews, and tell the vendor.

:func:`build_app` makes the App: six tools of mixed kinds over the demo's pretend systems,
and the ``renew_contract`` workflow, a loop that asks the scripted planner for the next
action (a journaled step, as an LLM call would be) and performs it.

========================  ====================================  ==========================
tool                      kind                                  after a crash, in doubt
========================  ====================================  ==========================
fetch_contract            idempotent read                       re-run
check_vendor_status       idempotent read                       re-run
update_renewal_date       CRM write, deduplicated by key,       re-run with the same key
                          optimistic locking (version)
draft_renewal_notice      idempotent, pure                      re-run
send_renewal_notice       irreversible e-mail                   wait for a human
log_crm_activity          reversible CRM note, not idempotent   wait for a human
========================  ====================================  ==========================

Two calls are gated by an approval before they run:

- ``update_renewal_date`` (partially reversible, low risk): every call asks, and the
  request approves itself at its deadline (``auto_approve_after``) if nobody answers;
- ``send_renewal_notice`` (irreversible): it waits for :data:`APPROVER` to approve it by
  name; handrail never auto-approves it (unanswered for an hour, it is denied).

How their failures are handled (the systems script one of each):

- ``check_vendor_status``: a 503 with ``Retry-After`` is *transient*: retried after a
  durable back-off (a due time in the journal), which the worker waits for;
- ``update_renewal_date``: a 409 version conflict is *stale data*: the ``refresh`` hook
  re-reads the record's version and the call is retried at once with it, same key;
- ``log_crm_activity``: a 403 is a *permission* failure: an intervention for a human.

``crash_after`` names a tool whose call kills the process with SIGKILL once its effect is
on disk, before handrail can journal the result: the crash the demo recovers from.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from handrail import App, ApprovalPolicy, RetryPolicy, TaskContext, ToolCall
from handrail.demo.planner import History, next_action
from handrail.demo.systems import Log, Systems

WORKFLOW = "renew_contract"
PLANNER_STEP = "plan_next_action"
MAX_DECISIONS = 20

# Small and without jitter, so the demo is fast and prints the same story every time. The
# vendor service's Retry-After (0.2 s) is longer than the first back-off, so it wins.
DEMO_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.1, multiplier=2.0, jitter=False)
# A back-off due within this many seconds is waited for in the driving thread.
MAX_INLINE_WAIT = 2.0

APPROVER = "dana"
"""The principal who approves the renewal notice (and resolves the intervention): a name
the CLI's principals file accepts, as in ``handrail --as dana approvals approve``."""
APPROVER_ROLE = "CRM admin"

# The low-risk CRM update approves itself this long after it asks, if nobody answers.
# Short so the demo stays fast (the worker waits for it inline, within MAX_INLINE_WAIT);
# production would give a human minutes to look first.
AUTO_APPROVE_AFTER = 0.3

UPDATE_APPROVAL = ApprovalPolicy(
    require="always",
    auto_approve_after=AUTO_APPROVE_AFTER,
    auto_deny_after=None,
    expected_outcome=(
        "the CRM shows contract {contract_id} ending {new_end_date}; the old date can be "
        "written back, but the change stays in the CRM's history"
    ),
)
# Irreversible: handrail refuses auto_approve_after here. Unanswered, the request is
# denied after the default auto_deny_after (an hour).
NOTICE_APPROVAL = ApprovalPolicy(approvers=(APPROVER,))


def build_app(
    store: str | os.PathLike[str],
    systems_dir: Path,
    *,
    worker_id: str | None = None,
    crash_after: str | None = None,
    log: Log = print,
) -> App:
    """The contract-renewal App on ``store``, its tools acting on ``systems_dir``."""
    systems = Systems(systems_dir, log=log)
    app = App(store, worker_id=worker_id, max_inline_wait=MAX_INLINE_WAIT)

    def crash_point(tool: str) -> None:
        if crash_after == tool:
            log(
                f"!! simulated crash: SIGKILL now, after {tool}'s effect is on disk and "
                "before handrail journals its result"
            )
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    @app.tool(
        name="fetch_contract",
        idempotent=True,
        reversibility="fully_reversible",
        describe="Read contract {contract_id}",
        data_accessed=["contracts"],
    )
    def fetch_contract(contract_id: str) -> dict[str, Any]:
        contract = systems.contract(contract_id)
        crash_point("fetch_contract")
        return contract

    @app.tool(
        name="check_vendor_status",
        idempotent=True,
        retry=DEMO_RETRY,
        reversibility="fully_reversible",
        describe="Check the standing of vendor {vendor_id}",
        data_accessed=["vendors"],
    )
    def check_vendor_status(vendor_id: str) -> dict[str, Any]:
        vendor = systems.vendor(vendor_id)
        crash_point("check_vendor_status")
        return vendor

    def reread_version(call: ToolCall, error: BaseException) -> dict[str, Any]:
        """After a version conflict: the record's current version, for the retry."""
        del error
        return {"expected_version": systems.crm_record(call.kwargs["contract_id"])["version"]}

    # Keyword-only: handrail rebinds refreshed arguments positionally where a parameter
    # allows it, which would take them out of ``call.kwargs`` (and name them nowhere in
    # the journaled inputs).
    @app.tool(
        name="update_renewal_date",
        idempotency_key=True,
        retry=DEMO_RETRY,
        refresh=reread_version,
        reversibility="partially_reversible",
        approval=UPDATE_APPROVAL,
        describe="Set the end date of contract {contract_id} to {new_end_date} in the CRM",
        data_modified=["crm.contracts.end_date"],
    )
    def update_renewal_date(
        *, contract_id: str, new_end_date: str, expected_version: int, idempotency_key: str
    ) -> dict[str, Any]:
        result = systems.update_end_date(
            contract_id, new_end_date, expected_version, idempotency_key
        )
        crash_point("update_renewal_date")
        return result

    @app.tool(
        name="draft_renewal_notice",
        idempotent=True,
        reversibility="fully_reversible",
        describe="Draft the renewal notice for {vendor_name}",
    )
    def draft_renewal_notice(
        contract: dict[str, Any], vendor_name: str, new_end_date: str
    ) -> dict[str, Any]:
        crash_point("draft_renewal_notice")
        return {
            "to": contract["notice_contact"],
            "subject": f"Renewal of contract {contract['contract_id']}",
            "body": (
                f"Dear {vendor_name},\n\nContract {contract['contract_id']} "
                f"({contract['title']}) renews under its terms until {new_end_date}.\n"
            ),
        }

    @app.tool(
        name="send_renewal_notice",
        reversibility="irreversible",
        approval=NOTICE_APPROVAL,
        expected_outcome="{to} receives the renewal notice; an e-mail cannot be unsent",
        describe="E-mail the renewal notice to {to}",
        data_accessed=["crm.contacts"],
    )
    def send_renewal_notice(to: str, subject: str, body: str) -> dict[str, Any]:
        sent = systems.send(to, subject, body)
        crash_point("send_renewal_notice")
        return sent

    @app.tool(
        name="log_crm_activity",
        reversibility="fully_reversible",
        describe="Log a CRM activity on {contract_id}",
        data_modified=["crm.activities"],
    )
    def log_crm_activity(contract_id: str, summary: str) -> dict[str, Any]:
        activity = systems.log_activity(contract_id, summary)
        crash_point("log_crm_activity")
        return activity

    tools: dict[str, Callable[..., Any]] = {
        "fetch_contract": fetch_contract,
        "check_vendor_status": check_vendor_status,
        "update_renewal_date": update_renewal_date,
        "draft_renewal_notice": draft_renewal_notice,
        "send_renewal_notice": send_renewal_notice,
        "log_crm_activity": log_crm_activity,
    }

    @app.workflow(name=WORKFLOW)
    def renew_contract(ctx: TaskContext, contract_id: str) -> dict[str, Any]:
        history: History = []
        for _ in range(MAX_DECISIONS):
            decision = ctx.step(PLANNER_STEP, next_action, contract_id, history)
            if decision["action"] == "finish":
                result: dict[str, Any] = decision["result"]
                return result
            ctx.reason(decision["agent_reasoning"])
            output = tools[decision["action"]](**decision["args"])
            history.append({"action": decision["action"], "result": output})
        raise RuntimeError(f"the planner did not finish within {MAX_DECISIONS} decisions")

    return app
