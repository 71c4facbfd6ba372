"""A small app for the CLI end-to-end tests (imported by `handrail --app cliapp:app`).

Its store is ``$HANDRAIL_DB``. ``charge_card`` appends to a ledger file and then, when
``$CLIAPP_CRASH_IN`` names it, kills its own process with SIGKILL: the effect is on disk,
its result is not journaled, and the tool is neither idempotent nor keyed, so the step is
left in doubt for a human.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from handrail import App, TaskContext

app = App()

NOT_AN_APP = "just a string"


def _crash_point(tool: str) -> None:
    if os.environ.get("CLIAPP_CRASH_IN") == tool:
        os.kill(os.getpid(), signal.SIGKILL)


@app.tool(idempotent=True, reversibility="fully_reversible")
def lookup_greeting(name: str) -> str:
    return f"Hello, {name}!"


@app.tool(reversibility="partially_reversible")
def charge_card(ledger: str, account: str, amount: int) -> dict[str, object]:
    with open(ledger, "a", encoding="utf-8") as f:
        f.write(f"{account} {amount}\n")
        f.flush()
        os.fsync(f.fileno())
    _crash_point("charge_card")
    return {"charge_id": f"ch-{account}-{amount}"}


@app.tool(idempotent=True)
def check_marker(marker: str) -> str:
    if not Path(marker).exists():
        raise FileNotFoundError(f"marker {marker} is missing")
    return "marker present"


@app.workflow
def greet(ctx: TaskContext, name: str) -> str:
    ctx.reason(f"The user wants a greeting for {name}; look it up.")
    return str(lookup_greeting(name))


@app.workflow
def charge(ctx: TaskContext, ledger: str, account: str, amount: int) -> dict[str, object]:
    ctx.reason(f"Charge account {account} {amount} cents for the order.")
    receipt = charge_card(ledger, account, amount)
    ctx.reason("The charge went through; greet the customer.")
    greeting = lookup_greeting(account)
    return {"receipt": receipt, "greeting": greeting}


@app.workflow
def flaky(ctx: TaskContext, marker: str) -> str:
    ctx.reason("Proceed only once the marker file exists.")
    return str(check_marker(marker))


@app.tool(
    reversibility="irreversible",
    describe="Send the quarterly report to {recipient}",
    expected_outcome="{recipient} receives the report; it cannot be unsent",
)
def send_report(ledger: str, recipient: str) -> str:
    with open(ledger, "a", encoding="utf-8") as f:
        f.write(f"sent to {recipient}\n")
    return f"sent to {recipient}"


@app.workflow(agent="report-bot")
def report(ctx: TaskContext, ledger: str, recipient: str) -> str:
    ctx.reason(f"The quarter closed; {recipient} gets the report.")
    return str(send_report(ledger, recipient))
