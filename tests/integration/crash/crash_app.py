"""The crash-test workflow: tools of every recovery kind, each leaving its effect in a file.

Every tool call appends one line to a *calls* log (the tool ran) and, unless a keyed tool
finds its key there already, one line to an *effects* file (the side effect happened)::

    <step_index> <tool> <idempotency key or "none"> <output as JSON>

Both are opened with ``O_APPEND`` and fsynced before the tool returns, so what the files
hold after a SIGKILL is exactly what the tools did. The effects file plays "the target
system": ``reconcile`` functions and the test's human operator read it to learn whether an
in-doubt call took effect, and the output a tool returned is on its line.

The file is imported by the child process (``crash_child.py``) and by the harness; it keeps
its imports small because every child pays for them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from handrail import NOT_DONE, App, TaskContext, ToolCall, ToolCallFailed, Workflow, current_task

WORKFLOW = "crash_order"
ORDER_ID = "A-17"
AMOUNT = 120
SLEEP_SECONDS = 0.02
INITIATOR = "crash-test-initiator"
"""Who starts the task: by separation of duties, not allowed to approve its gated calls."""
APPROVER = "approver-ann"
"""The named human who approves every irreversible call (DESIGN invariant 4)."""


class Kind(StrEnum):
    """What a step's tool is, as far as crash recovery is concerned."""

    BUILTIN = "builtin"  # ctx.now(): recorded value, no effect
    TIMER = "timer"  # ctx.sleep(): a durable due time, no effect
    STEP = "step"  # ctx.step(): safe to re-run (an LLM call); its effect line is idempotent
    IDEMPOTENT = "idempotent"  # "set x = v": the same line twice means the same state
    KEYED = "keyed"  # takes an idempotency key and deduplicates by it
    RECONCILABLE = "reconcilable"  # not idempotent; reconcile() reads the effects file
    PLAIN = "plain"  # not idempotent, no key, no reconcile: a human decides
    IRREVERSIBLE = "irreversible"
    IRREVERSIBLE_KEYED = "irreversible_keyed"  # a key does not make re-running it automatic
    IRREVERSIBLE_RECONCILABLE = "irreversible_reconcilable"
    FAILING = "failing"  # idempotent, raises every time: the workflow catches ToolCallFailed

    @property
    def reruns_in_doubt(self) -> bool:
        """The engine re-runs an in-doubt call of this kind on its own."""
        return self in _SAFE

    @property
    def irreversible(self) -> bool:
        """Every call waits for a human's approval before its intent is journaled."""
        return self in (Kind.IRREVERSIBLE, Kind.IRREVERSIBLE_KEYED, Kind.IRREVERSIBLE_RECONCILABLE)

    @property
    def reconciles(self) -> bool:
        return self in (Kind.RECONCILABLE, Kind.IRREVERSIBLE_RECONCILABLE)

    @property
    def idempotent_effect(self) -> bool:
        """Two identical effect lines of one step are one effect ("set x = v" twice). Any
        other kind's second line is a repeat (a keyed tool skips a key it has seen, so it
        never writes one)."""
        return self in (Kind.STEP, Kind.IDEMPOTENT)

    def recovery(self, effect_present: bool) -> list[str]:
        """How recovery settles an in-doubt call of this kind, as the journal shows it:
        ``rerun`` (retried on its own), ``reconcile`` (completed with reconcile's output),
        ``intervention`` (a human is asked), then ``mark_done`` / ``retry`` (the human's
        answer: the operator in the tests marks it done iff the effect is there), ``done``
        (the step's own result)."""
        if self is Kind.TIMER:
            return ["done"]
        if self is Kind.FAILING:
            return ["rerun", "failed"]
        if self.reruns_in_doubt:
            return ["rerun", "done"]
        if self.reconciles and effect_present:
            return ["reconcile"]
        if self is Kind.RECONCILABLE:
            return ["rerun", "done"]  # reconcile said NOT_DONE
        # plain, irreversible (keyed or not), irreversible whose reconcile says NOT_DONE
        return (
            ["intervention", "mark_done"] if effect_present else ["intervention", "retry", "done"]
        )

    def first_run(self) -> list[str]:
        """The journal of a step's first run: intent, then result."""
        return ["started", "failed" if self is Kind.FAILING else "done"]


_SAFE = frozenset({Kind.BUILTIN, Kind.TIMER, Kind.STEP, Kind.IDEMPOTENT, Kind.KEYED, Kind.FAILING})

TOOL_KINDS: dict[str, Kind] = {
    "handrail.now": Kind.BUILTIN,
    "handrail.sleep": Kind.TIMER,
    "plan": Kind.STEP,
    "lookup_coupon": Kind.FAILING,
    "set_value": Kind.IDEMPOTENT,
    "reserve_stock": Kind.KEYED,
    "charge_card": Kind.KEYED,
    "create_ticket": Kind.RECONCILABLE,
    "send_email": Kind.PLAIN,
    "send_sms": Kind.PLAIN,
    "wire_transfer": Kind.IRREVERSIBLE,
    "post_ledger": Kind.IRREVERSIBLE_RECONCILABLE,
    "ship_parcel": Kind.IRREVERSIBLE_KEYED,
}

TIME_KEYS = ("started_at", "finished_at")
"""Result keys (and ``set_value`` names) that hold a ``ctx.now()`` value: they differ from
run to run, so comparisons with the un-killed run leave them out."""


# -- the effects file ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Effect:
    """One line of the effects file."""

    step: int
    tool: str
    key: str | None
    output: Any
    line: str


def format_effect(step: int, tool: str, key: str | None, output: Any) -> str:
    payload = json.dumps(output, sort_keys=True, separators=(",", ":"))
    return f"{step} {tool} {key or 'none'} {payload}\n"


def read_effects(path: Path) -> list[Effect]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    found: list[Effect] = []
    for line in text.splitlines():
        step, tool, key, payload = line.split(" ", 3)
        found.append(
            Effect(int(step), tool, None if key == "none" else key, json.loads(payload), line)
        )
    return found


def read_calls(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [(int(step), tool) for step, tool in (ln.split(" ") for ln in text.splitlines())]


def append_durably(path: Path, line: str) -> None:
    """Append ``line`` with one write and fsync it: after a SIGKILL it is there or not."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(slots=True)
class Recorder:
    """Where the tools of this process write, and who hears of each effect."""

    effects: Path
    calls: Path
    on_effect: Callable[[int, str], None] | None = None


_recorder: Recorder | None = None


def configure(recorder: Recorder) -> None:
    global _recorder
    _recorder = recorder


def _files() -> Recorder:
    if _recorder is None:
        raise RuntimeError("crash_app.configure() was not called")
    return _recorder


def _current_step() -> int:
    ctx = current_task()
    if ctx is None:
        raise RuntimeError("crash tools run inside the crash workflow only")
    return ctx.step_index - 1  # the context counted this step already


def _call(tool: str) -> int:
    """Log that ``tool`` runs now; return its step index."""
    step = _current_step()
    append_durably(_files().calls, f"{step} {tool}\n")
    return step


def _effect(tool: str, output: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    files = _files()
    step = _call(tool)
    if key is not None:
        for seen in read_effects(files.effects):
            if seen.key == key:
                return dict(seen.output)  # done already: the deduplicating target system
    append_durably(files.effects, format_effect(step, tool, key, output))
    if files.on_effect is not None:
        files.on_effect(step, tool)  # the child may die here: effect durable, result not
    return output


def reconcile_from_effects(call: ToolCall) -> Any:
    """Ask the target system whether the in-doubt call took effect."""
    for seen in read_effects(_files().effects):
        if seen.step == call.step_index and seen.tool == call.tool:
            return seen.output
    return NOT_DONE


# -- the tools -----------------------------------------------------------------------------


def set_value(name: str, value: Any) -> dict[str, Any]:
    return _effect("set_value", {"name": name, "value": value})


def make_plan(order_id: str, amount: int) -> dict[str, Any]:
    return _effect("plan", {"order": order_id, "sku": f"sku-{amount % 7}", "qty": amount // 40})


def lookup_coupon(code: str) -> dict[str, Any]:
    _call("lookup_coupon")
    raise LookupError(f"no coupon {code!r}")


def reserve_stock(sku: str, qty: int, idempotency_key: str | None = None) -> dict[str, Any]:
    return _effect("reserve_stock", {"reservation": f"res-{sku}-{qty}"}, key=idempotency_key)


def charge_card(amount: int, idempotency_key: str | None = None) -> dict[str, Any]:
    return _effect("charge_card", {"charge": f"ch-{amount}"}, key=idempotency_key)


def create_ticket(title: str) -> dict[str, Any]:
    return _effect("create_ticket", {"ticket": f"T-{title}"})


def send_email(to: str, subject: str) -> dict[str, Any]:
    return _effect("send_email", {"message": f"mail:{to}:{subject}"})


def send_sms(number: str, text: str) -> dict[str, Any]:
    return _effect("send_sms", {"sms": f"sms:{number}:{text}"})


def wire_transfer(amount: int, iban: str) -> dict[str, Any]:
    return _effect("wire_transfer", {"transfer": f"wt-{amount}-{iban[-4:]}"})


def post_ledger(order_id: str, amount: int) -> dict[str, Any]:
    return _effect("post_ledger", {"ledger": f"L-{order_id}-{amount}"})


def ship_parcel(address: str, idempotency_key: str | None = None) -> dict[str, Any]:
    return _effect("ship_parcel", {"parcel": f"P-{address}"}, key=idempotency_key)


def build(app: App, *, misdeclared: Iterable[str] = ()) -> Workflow:
    """Register the tools and the workflow on ``app``.

    ``misdeclared`` names tools to register as idempotent although their effects are not:
    the harness's own self-test, which must catch the repeats that lie lets through.
    """
    lie = frozenset(misdeclared)

    def idem(name: str, default: bool) -> bool:
        return True if name in lie else default

    t_set = app.tool(name="set_value", reversibility="fully_reversible", idempotent=True)(set_value)
    t_lookup = app.tool(name="lookup_coupon", reversibility="fully_reversible", idempotent=True)(
        lookup_coupon
    )
    t_reserve = app.tool(name="reserve_stock", idempotency_key=True)(reserve_stock)
    t_charge = app.tool(name="charge_card", idempotency_key=True)(charge_card)
    t_ticket = app.tool(
        name="create_ticket",
        idempotent=idem("create_ticket", False),
        reconcile=reconcile_from_effects,
    )(create_ticket)
    t_email = app.tool(name="send_email", idempotent=idem("send_email", False))(send_email)
    t_sms = app.tool(name="send_sms", idempotent=idem("send_sms", False))(send_sms)
    t_wire = app.tool(name="wire_transfer", reversibility="irreversible")(wire_transfer)
    t_ledger = app.tool(
        name="post_ledger", reversibility="irreversible", reconcile=reconcile_from_effects
    )(post_ledger)
    t_ship = app.tool(name="ship_parcel", reversibility="irreversible", idempotency_key=True)(
        ship_parcel
    )

    @app.workflow(name=WORKFLOW)
    def crash_order(ctx: TaskContext, order_id: str, amount: int) -> dict[str, Any]:
        started = ctx.now()  # 0
        t_set("started_at", started)  # 1
        plan = ctx.step("plan", make_plan, order_id, amount)  # 2
        try:
            coupon = t_lookup(f"{order_id}-promo")["discount"]  # 3: fails, recorded as failed
        except ToolCallFailed as exc:
            coupon = f"none ({exc.error_type})"
        reservation = t_reserve(plan["sku"], plan["qty"])  # 4
        charge = t_charge(amount)  # 5
        ticket = t_ticket(f"{order_id}-fulfil")  # 6
        mail = t_email("customer@example.com", f"order {order_id} confirmed")  # 7
        t_set("status", "charged")  # 8
        ctx.sleep(SLEEP_SECONDS)  # 9: the task is released and claimed again when due
        # Steps 10, 11 and 13 are irreversible: each one's run ends at its approval request
        # (the task awaits approval, no worker holds it); the next run, after the harness
        # approved, journals its intent and runs it.
        wire = t_wire(amount, "DE89370400440532013000")  # 10
        ledger = t_ledger(order_id, amount)  # 11
        invoice = t_ticket(f"{order_id}-invoice")  # 12
        parcel = t_ship("1 Main St")  # 13
        sms = t_sms("+15550100", f"order {order_id} shipped")  # 14
        finished = ctx.now()  # 15
        t_set("finished_at", finished)  # 16
        done = t_set("status", "done")  # 17
        return {
            "order": order_id,
            "plan": plan,
            "coupon": coupon,
            "outputs": [reservation, charge, ticket, mail, wire, ledger, invoice, parcel, sms],
            "status": done["value"],
            "started_at": started,
            "finished_at": finished,
        }

    return crash_order
