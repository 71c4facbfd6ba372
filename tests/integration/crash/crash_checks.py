"""What the crash harness checks, as pure functions over journals, effects and tool runs.

A scenario is a chain of child runs, some SIGKILLed. After each kill the harness takes a
:class:`Snapshot` (journal, effects file, calls log). The journal after snapshot *i* up to
the next snapshot (or the end) is *window i*. Within a window every step's events must
follow the script its state at the snapshot dictates:

- completed (or failed) at the snapshot: nothing (a finished step never runs again);
- not started: ``started``, ``done`` (its first run; ``failed`` for the failing lookup);
- in doubt: its tool kind's recovery (:meth:`crash_app.Kind.recovery`), e.g. ``rerun,
  done`` for an idempotent tool, ``reconcile`` when reconcile finds the effect,
  ``intervention, mark_done`` for an email whose effect is there; or, if an operator already
  answered, ``mark_done`` / ``retry, done``.

A window that ends in another kill may stop early (a prefix of the script); the last window
must play it out. Tool runs are counted from the calls log: every durable intent (step
started or retried) is one run of the tool, except where a kill fell between the intent and
the run; a run without an intent would break write-ahead.

Irreversible calls wait for a human's approval before their intent is journaled (DESIGN
invariant 4); the harness approves between runs and notes what the effects file and the
calls log held at that moment (:class:`Approved`). :func:`check_approvals` holds the
journal, the harness's notes and the fsynced effects against each other: one request and
one decision per irreversible step, in the order request, decision, intent; its tool had
neither run nor taken effect when the decision was journaled; at every kill, each
irreversible effect in the file has its decision in the journal; and it took effect once.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crash_app import APPROVER, TIME_KEYS, TOOL_KINDS, Effect, Kind

from handrail.journal import Event, EventKind, StepStatus, TaskState, TaskStatus, fold
from handrail.tools import idempotency_key

Calls = Sequence[tuple[int, str]]


@dataclass(frozen=True, slots=True)
class InDoubt:
    """The step a kill left in doubt, and what recovery must do with it."""

    step: int
    tool: str
    kind: Kind
    effect_present: bool
    open_intervention: bool
    authorized: bool

    def script(self) -> list[str]:
        if self.open_intervention:  # the operator answers from the effects file
            return ["mark_done"] if self.effect_present else ["retry", "done"]
        if self.authorized:  # answered "retry" already; the restart re-runs it
            return ["retry", "done"]
        return self.kind.recovery(self.effect_present)

    def describe(self) -> str:
        effect = "present" if self.effect_present else "absent"
        extra = ", intervention open" if self.open_intervention else ""
        extra += ", retry authorized" if self.authorized else ""
        return f"step {self.step} ({self.tool}, {self.kind.value}; effect {effect}{extra})"

    def tag(self, trail: Sequence[str]) -> str:
        prefix = "open:" if self.open_intervention else "authorized:" if self.authorized else ""
        effect = "effect" if self.effect_present else "no-effect"
        return f"{prefix}{self.kind.value}:{effect}:{'>'.join(trail)}"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a killed child left behind."""

    run: int
    kill: str
    events: list[Event]
    state: TaskState
    effects: list[Effect]
    calls: list[tuple[int, str]]

    def in_doubt(self) -> list[InDoubt]:
        found: list[InDoubt] = []
        for step in sorted(self.state.steps.values(), key=lambda s: s.index):
            if step.status is not StepStatus.IN_PROGRESS:
                continue
            present = any(e.step == step.index and e.tool == step.name for e in self.effects)
            opened = any(i.step_index == step.index for i in self.state.open_interventions())
            found.append(
                InDoubt(
                    step.index,
                    step.name,
                    TOOL_KINDS[step.name],
                    present,
                    opened,
                    step.rerun_authorized,
                )
            )
        return found


def intents(events: Sequence[Event]) -> Counter[int]:
    """Durable intents per step: each allows one run of its tool."""
    kinds = (EventKind.STEP_STARTED, EventKind.STEP_RETRIED)
    return Counter(e.step_index for e in events if e.kind in kinds and e.step_index is not None)


def runs(calls: Calls) -> Counter[int]:
    return Counter(step for step, _ in calls)


def check_shape(events: Sequence[Event], task_id: str) -> list[str]:
    """seq 0..n without gaps, one task, claim epochs increasing."""
    problems: list[str] = []
    seqs = [e.seq for e in events]
    if seqs != list(range(len(events))):
        problems.append(f"journal seqs are {seqs}, not 0..{len(events) - 1}")
    if any(e.task_id != task_id for e in events):
        problems.append("the journal holds events of another task")
    epochs = [int((e.data or {})["epoch"]) for e in events if e.kind is EventKind.TASK_CLAIMED]
    if epochs != sorted(set(epochs)):
        problems.append(f"claim epochs do not increase: {epochs}")
    return problems


def check_snapshot(
    snap: Snapshot,
    *,
    start: int,
    expected: Sequence[tuple[str, int | None, str | None]] | None,
    previous: Snapshot | None,
) -> list[str]:
    """What a SIGKILL left: the killed run's committed writes and nothing else (``expected``
    are the (kind, step, name) of the events the un-killed run wrote before this point,
    after the ``start`` events the journal held when the run began), and write-ahead order."""
    problems = check_shape(snap.events, snap.state.task_id)
    if expected is not None:
        found = [(e.kind.value, e.step_index, e.step_name) for e in snap.events[start:]]
        if found != list(expected):
            problems.append(
                f"the killed run left {found} in the journal, but the writes it made before "
                f"the kill were {list(expected)}"
            )
    steps = snap.state.steps
    for effect in snap.effects:
        if effect.step not in steps:
            problems.append(
                f"step {effect.step} ({effect.tool}) took effect with no intent in the journal "
                "(write-ahead broken)"
            )
    for index in steps:
        if index + 1 in steps and steps[index].status is StepStatus.IN_PROGRESS:
            problems.append(f"step {index + 1} started while step {index}'s result was not durable")
    doubt = snap.in_doubt()
    if len(doubt) > 1:
        problems.append(f"more than one step in doubt: {[d.step for d in doubt]}")
    problems += _check_runs(
        snap.events, snap.calls, previous, snap, where=f"after kill {snap.kill}"
    )
    return problems


def _gaps(events: Sequence[Event], calls: Calls) -> dict[int, int]:
    made, ran = intents(events), runs(calls)
    return {step: made[step] - ran[step] for step in set(made) | set(ran)}


def _check_runs(
    events: Sequence[Event],
    calls: Calls,
    previous: Snapshot | None,
    snap: Snapshot | None,
    *,
    where: str,
) -> list[str]:
    """Intents minus tool runs (the *gap*) never goes negative, and grows by at most one per
    kill, for the step the kill left in doubt."""
    problems: list[str] = []
    gaps = _gaps(events, calls)
    before = _gaps(previous.events, previous.calls) if previous is not None else {}
    doubt = {d.step for d in snap.in_doubt()} if snap is not None else set()
    names = dict(calls)
    names.update(
        {e.step_index: e.step_name for e in events if e.step_index is not None and e.step_name}
    )
    for step, gap in sorted(gaps.items()):
        if TOOL_KINDS.get(names.get(step, "?")) in (Kind.BUILTIN, Kind.TIMER):
            continue  # no tool of ours runs: nothing to count
        grew = gap - before.get(step, 0)
        if gap < 0:
            problems.append(
                f"{where}: step {step} ran {-gap} more time(s) than it has durable intents "
                "(a run without a journaled intent)"
            )
        elif grew not in ((0, 1) if step in doubt else (0,)):
            problems.append(
                f"{where}: step {step} has {gap} durable intent(s) that never ran, "
                f"{before.get(step, 0)} at the previous kill: each intent runs the tool once, "
                "unless a kill falls in between"
            )
    return problems


def trail(window: Sequence[Event], step: int) -> list[str]:
    """What the journal did with ``step`` in ``window``, in the words of :class:`Kind`."""
    out: list[str] = []
    for e in window:
        if e.step_index != step:
            continue
        if e.kind is EventKind.STEP_STARTED:
            out.append("started")
        elif e.kind is EventKind.STEP_RETRIED:
            reason = str((e.data or {}).get("reason", ""))
            out.append("retry" if "operator" in reason else "rerun")
        elif e.kind is EventKind.STEP_COMPLETED:
            via = str((e.data or {}).get("via"))
            out.append({"reconcile": "reconcile", "mark_done": "mark_done"}.get(via, "done"))
        elif e.kind is EventKind.STEP_FAILED:
            out.append("failed")
        elif e.kind is EventKind.INTERVENTION_RAISED:
            out.append("intervention")
    return out


@dataclass(frozen=True, slots=True)
class Approved:
    """An approval request the harness approved, after child run ``run``, and how many
    effect lines and tool runs of the request's step the effects file and the calls log
    held when it did (the decision is journaled while no child runs)."""

    run: int
    request_id: str
    step: int
    tool: str
    effects: int
    calls: int


@dataclass(frozen=True, slots=True)
class Final:
    """The end of a scenario."""

    task_id: str
    events: list[Event]
    status: TaskStatus | None
    lease_owner: str | None
    effects: list[Effect]
    calls: list[tuple[int, str]]
    approved: Sequence[Approved] = ()


def check_windows(snapshots: Sequence[Snapshot], final: Final, tags: set[str]) -> list[str]:
    """Each window's events per step follow the script of the step's state at its start."""
    problems: list[str] = []
    for i, snap in enumerate(snapshots):
        last = i == len(snapshots) - 1
        end = final.events if last else snapshots[i + 1].events
        window = end[len(snap.events) :]
        doubt = {d.step: d for d in snap.in_doubt()}
        steps = {e.step_index for e in window if e.step_index is not None} | set(doubt)
        for step in sorted(steps):
            got = trail(window, step)
            state = snap.state.steps.get(step)
            if step in doubt:
                want = doubt[step].script()
                what = f"in-doubt {doubt[step].describe()}"
                if last:
                    tags.add(doubt[step].tag(got))
            elif state is None:
                name = next((e.step_name for e in window if e.step_index == step), None)
                want = TOOL_KINDS.get(name or "?", Kind.IDEMPOTENT).first_run()
                what = f"step {step} ({name}; not started at the kill)"
            else:
                want, what = [], f"step {step} ({state.name}, {state.status.value} at the kill)"
            if got != want and not (not last and got == want[: len(got)]):
                problems.append(
                    f"after kill {snap.kill}: {what} went {got or 'nowhere'}, expected {want}"
                )
        if last and not doubt:
            tags.add("none")
    return problems


def check_final(
    final: Final,
    snapshots: Sequence[Snapshot],
    *,
    baseline_result: dict[str, Any],
    baseline_effects: Sequence[Effect],
    baseline_steps: Sequence[tuple[str, StepStatus]],
    tags: set[str],
) -> list[str]:
    """The task completed like the un-killed run, nothing ran twice, history was kept."""
    events = final.events
    problems = check_shape(events, final.task_id)
    state = fold(events, final.task_id)

    # -- the journal ---------------------------------------------------------------------
    for snap in snapshots:
        if list(events[: len(snap.events)]) != snap.events:
            problems.append(f"events written before kill {snap.kill} were changed afterwards")
    if final.status is not TaskStatus.COMPLETED or state.status is not TaskStatus.COMPLETED:
        problems.append(f"the task ended {final.status} (its journal says {state.status.value})")
    if final.lease_owner is not None:
        problems.append(f"the finished task is still leased to {final.lease_owner}")
    if sum(e.kind is EventKind.TASK_COMPLETED for e in events) != 1 or (
        events and events[-1].kind is not EventKind.TASK_COMPLETED
    ):
        problems.append("the journal does not end with its only task_completed event")
    steps = [(state.steps[i].name, state.steps[i].status) for i in sorted(state.steps)]
    if steps != list(baseline_steps):
        problems.append(
            f"steps and their ends {steps} differ from the un-killed run's {list(baseline_steps)}"
        )
    if state.open_interventions():
        problems.append("interventions are still open")
    if state.open_approvals():
        problems.append("approval requests are still pending")
    problems += check_windows(snapshots, final, tags)
    problems += check_approvals(
        events, final.effects, final.calls, final.approved, snapshots, task_id=final.task_id
    )
    for snap in snapshots:
        tags.update(approval_tags(snap))

    # -- the result ----------------------------------------------------------------------
    result: dict[str, Any] = state.result if isinstance(state.result, dict) else {}
    want = {k: v for k, v in baseline_result.items() if k not in TIME_KEYS}
    got = {k: v for k, v in result.items() if k not in TIME_KEYS}
    if got != want:
        problems.append(f"result {got} differs from the un-killed run's {want}")
    nows = [
        json.loads(s.outputs_json or "null")
        for _, s in sorted(state.steps.items())
        if s.name == "handrail.now"
    ]
    if [result.get(k) for k in TIME_KEYS] != nows:
        problems.append(
            f"result times {[result.get(k) for k in TIME_KEYS]} are not the journaled "
            f"ctx.now() values {nows}"
        )

    # -- effects -------------------------------------------------------------------------
    problems += _check_effects(final, snapshots, baseline_effects, result)

    # -- tool runs -----------------------------------------------------------------------
    problems += _check_runs(
        events, final.calls, snapshots[-1] if snapshots else None, None, where="at the end"
    )
    ran = runs(final.calls)
    for snap in snapshots:
        ran_then = runs(snap.calls)
        for index, step in snap.state.steps.items():
            if step.status is not StepStatus.IN_PROGRESS and ran[index] != ran_then[index]:
                problems.append(
                    f"step {index} ({step.name}) was {step.status.value} at kill {snap.kill} "
                    f"but ran again ({ran_then[index]} -> {ran[index]} runs)"
                )
    return problems


def _check_effects(
    final: Final,
    snapshots: Sequence[Snapshot],
    baseline_effects: Sequence[Effect],
    result: dict[str, Any],
) -> list[str]:
    problems: list[str] = []
    by_step: dict[int, list[Effect]] = defaultdict(list)
    for effect in final.effects:
        by_step[effect.step].append(effect)
        if effect.key is not None and effect.key != idempotency_key(final.task_id, effect.step):
            problems.append(f"step {effect.step} ran with a key that is not its stable key")
    tools = {e.step: e.tool for e in baseline_effects}
    completed_at_a_kill = {
        i
        for snap in snapshots
        for i, s in snap.state.steps.items()
        if s.status is StepStatus.COMPLETED
    }
    for step, lines in sorted(by_step.items()):
        tool = tools.get(step)
        if tool is None or any(e.tool != tool for e in lines):
            problems.append(f"unexpected effects for step {step}: {[e.line for e in lines]}")
            continue
        kind = TOOL_KINDS[tool]
        distinct = sorted({e.line for e in lines})
        if kind.idempotent_effect:
            if len(distinct) != 1:
                problems.append(
                    f"idempotent step {step} ({tool}) left different effects {distinct} "
                    "(a replayed value changed?)"
                )
        elif len(lines) != 1:
            problems.append(
                f"step {step} ({tool}, {kind.value}) took effect {len(lines)} times: "
                f"{[e.line for e in lines]}"
            )
        if step in completed_at_a_kill:
            first = min(
                len([e for e in s.effects if e.step == step])
                for s in snapshots
                if s.state.steps.get(step) is not None
                and s.state.steps[step].status is StepStatus.COMPLETED
            )
            if len(lines) != first:
                problems.append(
                    f"step {step} ({tool}) was completed at a kill but took effect again "
                    f"({first} -> {len(lines)} effects)"
                )
    for step, tool in sorted(tools.items()):
        if step not in by_step:
            problems.append(f"step {step} ({tool}) never took effect")
    if _normal(final.effects) != _normal(baseline_effects):
        problems.append(
            f"effects {_normal(final.effects)} differ from the un-killed run's "
            f"{_normal(baseline_effects)}"
        )
    for effect in final.effects:
        name = effect.output.get("name") if effect.tool == "set_value" else None
        if name in TIME_KEYS and effect.output.get("value") != result.get(str(name)):
            problems.append(
                f"step {effect.step} set {name}={effect.output.get('value')}, but the task's "
                f"{name} is {result.get(str(name))} (ctx.now() not replayed?)"
            )
    return problems


def _normal(effects: Sequence[Effect]) -> list[tuple[int, str, str, str]]:
    """Effects without repeats, keys and times: comparable across runs."""
    seen: set[str] = set()
    out: list[tuple[int, str, str, str]] = []
    for effect in effects:
        if effect.line in seen:
            continue
        seen.add(effect.line)
        output = dict(effect.output)
        if effect.tool == "set_value" and output.get("name") in TIME_KEYS:
            output["value"] = "<time>"
        key = "none" if effect.key is None else "<key>"
        out.append((effect.step, effect.tool, key, json.dumps(output, sort_keys=True)))
    return out


# -- approvals -----------------------------------------------------------------------------


def approval_tags(snap: Snapshot) -> set[str]:
    """Where a kill left an irreversible call's approval: ``approval:<kind>:pending`` (the
    request journaled, nobody decided yet) or ``approval:<kind>:approved`` (decided, the
    call's intent not journaled yet)."""
    tags: set[str] = set()
    for approval in snap.state.approvals.values():
        kind = TOOL_KINDS.get(approval.request.tool, Kind.PLAIN).value
        if approval.open:
            tags.add(f"approval:{kind}:pending")
        elif approval.status == "approved" and approval.request.step_index not in snap.state.steps:
            tags.add(f"approval:{kind}:approved")
    return tags


def check_approvals(
    events: Sequence[Event],
    effects: Sequence[Effect],
    calls: Calls,
    approved: Sequence[Approved],
    snapshots: Sequence[Snapshot] = (),
    *,
    task_id: str,
) -> list[str]:
    """No irreversible call ran, let alone took effect, before a named approver's decision
    was in the journal; each took effect once; only irreversible calls asked."""
    problems: list[str] = []
    state = fold(events, task_id)
    requests: dict[int, list[Event]] = defaultdict(list)
    decisions: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        data = e.data or {}
        if e.kind is EventKind.APPROVAL_REQUESTED and e.step_index is not None:
            requests[e.step_index].append(e)
        elif e.kind is EventKind.APPROVAL_DECIDED:
            decisions[str(data.get("request_id"))].append(e)
        elif e.kind in (EventKind.APPROVAL_QUEUED, EventKind.APPROVAL_REMINDED):
            problems.append(f"unexpected {e.kind.value} for step {e.step_index} (seq {e.seq})")
    notes: dict[str, list[Approved]] = defaultdict(list)
    for note in approved:
        notes[note.request_id].append(note)
    asked = {str((e.data or {}).get("request_id")) for es in requests.values() for e in es}
    for rid in sorted((set(notes) | set(decisions)) - asked):
        problems.append(f"approval {rid} was decided but never requested in this journal")
    for index, step in sorted(state.steps.items()):
        kind = TOOL_KINDS.get(step.name, Kind.PLAIN)
        asks = requests.get(index, [])
        if not kind.irreversible:
            if asks:
                problems.append(
                    f"step {index} ({step.name}, {kind.value}) asked for approval "
                    f"{len(asks)} time(s); only irreversible calls need it"
                )
            continue
        what = f"irreversible step {index} ({step.name})"
        if len(asks) != 1:
            problems.append(f"{what} has {len(asks)} approval requests, not exactly one")
            continue
        request = asks[0]
        rid = str((request.data or {}).get("request_id"))
        decided = decisions.get(rid, [])
        if len(decided) != 1:
            problems.append(f"{what}: approval {rid} was decided {len(decided)} times, not once")
            continue
        decision = decided[0]
        if (decision.data or {}).get("decision") != "approved" or decision.actor != APPROVER:
            problems.append(
                f"{what}: approval {rid} was {(decision.data or {}).get('decision')} by "
                f"{decision.actor}, not approved by {APPROVER}"
            )
        intent = next(
            (e for e in events if e.kind is EventKind.STEP_STARTED and e.step_index == index),
            None,
        )
        if intent is None or not request.seq < decision.seq < intent.seq:
            problems.append(
                f"{what}: request (seq {request.seq}), decision (seq {decision.seq}) and intent "
                f"(seq {None if intent is None else intent.seq}) are not in that order"
            )
        elif (intent.data or {}).get("approval") != rid or not intent.requires_human_approval:
            problems.append(f"{what}: its intent does not name approval {rid}: {intent.data}")
        mine = notes.get(rid, [])
        if len(mine) != 1:
            problems.append(f"{what}: the harness approved {rid} {len(mine)} times, not once")
        for note in mine:
            if note.effects or note.calls:
                problems.append(
                    f"{what}: its tool had run {note.calls} time(s) and taken effect "
                    f"{note.effects} time(s) before approval {rid} was decided"
                )
        took = [e.line for e in effects if e.step == index]
        if len(took) != 1:
            problems.append(f"{what} took effect {len(took)} times, not once: {took}")
    for snap in snapshots:
        problems += _effects_approved(snap)
    return problems


def _effects_approved(snap: Snapshot) -> list[str]:
    """At a kill, every irreversible call that ran (calls log) or took effect (effects file)
    has its approval decided in the journal, before its intent."""
    problems: list[str] = []
    ran = [(e.step, e.tool, "took effect") for e in snap.effects]
    ran += [(step, tool, "ran") for step, tool in snap.calls]
    for step, tool, did in sorted(set(ran)):
        if not TOOL_KINDS.get(tool, Kind.PLAIN).irreversible:
            continue
        approval = snap.state.approval_for_step(step)
        decided = next(
            (
                e
                for e in snap.events
                if e.kind is EventKind.APPROVAL_DECIDED
                and approval is not None
                and (e.data or {}).get("request_id") == approval.request_id
            ),
            None,
        )
        intent = next(
            (e for e in snap.events if e.kind is EventKind.STEP_STARTED and e.step_index == step),
            None,
        )
        if approval is None or approval.status != "approved" or decided is None:
            problems.append(
                f"after kill {snap.kill}: irreversible step {step} ({tool}) {did} without an "
                "approval decided in the journal"
            )
        elif intent is None or intent.seq < decided.seq:
            problems.append(
                f"after kill {snap.kill}: irreversible step {step} ({tool}) {did}, but its "
                "intent is missing or precedes its approval"
            )
    return problems
