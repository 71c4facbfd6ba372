"""The crash harness: SIGKILL a real worker process at every write boundary and inside every
tool, restart it, play the human operator, and check that nothing ran twice.

A *kill point* is a place in a run: right before or right after one of the process's store
writes (``before:write:N`` / ``after:write:N``), or inside a tool right after its effect was
fsynced (``after:effect:N``); or inside a write's transaction, its statements run and its
COMMIT not (``mid:write:N``). The un-killed task takes several child runs, one more per
irreversible call: each such call's run ends with its approval request journaled, and the
harness approves before the next. The un-killed runs' traces list every write and effect of
each run in order, so :func:`kill_points` covers all of them (a kill in run *r* > 0 lets
runs 0..r-1 go through first, as the un-killed task did). A :class:`Chain` says which
successive child runs of one task die where (most chains kill once; :func:`recovery_chains`
kills a second time, inside the recovery of a first kill). :meth:`CrashHarness.run_chain`

1. runs the children of the chain: each killed one must die by SIGKILL at its point and
   leave exactly the writes it made before (see :func:`crash_checks.check_snapshot`);
2. after the chain's kills, restarts the child with the same ``worker_id`` until the task
   completes; whenever the task awaits an intervention, acts as the operator: ``mark_done``
   with the output found in the effects file if the effect is there, ``retry`` if not;
   whenever it awaits approval (killed runs included), acts as the approver
   (``crash_app.APPROVER``) and approves each pending request once, noting what the effects
   file and calls log held at that moment;
3. checks the end against the un-killed run (:func:`crash_checks.check_final`), and the
   approvals against the journal and the effects (:func:`crash_checks.check_approvals`).

A chain's problems are collected as sentences, not raised, so one test reports them all.
Children are real processes, forked by a pre-imported fork server (:class:`ForkServer`) or
started as fresh interpreters; chains run in a small thread pool, each in its own directory,
task and worker id. With the fork server, a thread's runs go to its *resident*: a process
that runs one run after another with its store open, like a long-lived worker, until a kill
point SIGKILLs it (a task now takes a run per approval; see :class:`CrashHarness`).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crash_app import APPROVER, TOOL_KINDS, Effect, Kind, read_calls, read_effects
from crash_checks import Approved, Final, Snapshot, check_approvals, check_final, check_snapshot

from handrail import SystemClock
from handrail.decisions import decide, list_approvals
from handrail.errors import HandrailError
from handrail.journal import EventKind, Intervention, StepStatus, TaskStatus, fold
from handrail.ops import resolve_intervention
from handrail.store.base import Store
from handrail.store.url import open_store

CHILD = Path(__file__).with_name("crash_child.py")
OPERATOR = "crash-test-operator"
MAX_RESTARTS = 10  # after a chain's kills: 3 approvals and up to 2 interventions, and slack
CHILD_TIMEOUT = 60.0

JournalEntry = tuple[str, int | None, str | None]
"""An event as the trace and the checks compare it: (kind, step index, step name)."""

Traces = Mapping[int, Sequence["TraceEntry"]]
"""The traces of the un-killed runs of a task, by run."""


# -- backends and scenarios ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backend:
    """Where the tasks live: a SQLite file per scenario, or one PostgreSQL database that all
    scenarios of a test share (each with its own task and worker id)."""

    name: str
    url: str | None = None

    def store_url(self, workdir: Path) -> str:
        return self.url if self.url is not None else str(workdir / "handrail.db")


@dataclass(frozen=True, slots=True)
class Scenario:
    """One task driven by children: its store, its files, its identities."""

    label: str
    workdir: Path
    url: str
    task_id: str
    worker_id: str

    @property
    def effects(self) -> Path:
        return self.workdir / "effects.log"

    @property
    def calls(self) -> Path:
        return self.workdir / "calls.log"


# -- traces and kill points ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One store write or one effect of a child run, in order."""

    type: str  # "write" or "effect"
    n: int  # the process's n-th write (or effect)
    op: str | None = None
    events: tuple[JournalEntry, ...] = ()
    step: int | None = None
    tool: str | None = None
    commits: int | None = None  # the transactions a write committed

    def describe(self) -> str:
        if self.type == "effect":
            return f"effect of step {self.step} ({self.tool})"
        events = ", ".join(k if i is None else f"{k}#{i}" for k, i, _ in self.events)
        return f"{self.op}[{events}]"

    def concerns(self, step: int) -> bool:
        if self.type == "effect":
            return self.step == step
        return any(i == step for _, i, _ in self.events)


def read_trace(path: Path) -> list[TraceEntry]:
    entries: list[TraceEntry] = []
    for line in path.read_text().splitlines():
        raw = json.loads(line)
        entries.append(
            TraceEntry(
                type=raw["type"],
                n=raw["n"],
                op=raw.get("op"),
                events=tuple((str(k), i, name) for k, i, name in raw.get("events", [])),
                step=raw.get("step"),
                tool=raw.get("tool"),
                commits=raw.get("commits"),
            )
        )
    return entries


def journal_of(entries: Sequence[TraceEntry]) -> tuple[JournalEntry, ...]:
    """The events the writes among ``entries`` committed."""
    return tuple(ev for entry in entries if entry.type == "write" for ev in entry.events)


@dataclass(frozen=True, slots=True)
class Chain:
    """Which child runs of one task die where.

    ``kills[i]`` is run *i*'s ``HR_KILL`` (``None``: not killed); runs past the end are not
    killed. ``expected[i]`` is what killed run *i* must leave in the journal: the events
    the un-killed run made before that point.
    """

    label: str
    kills: tuple[str | None, ...]
    expected: tuple[tuple[JournalEntry, ...] | None, ...]
    description: str

    def then(
        self, run: int, kill: str, expected: tuple[JournalEntry, ...], what: str, label: str
    ) -> Chain:
        pad = run - len(self.kills)
        return Chain(
            label=f"{self.label}-{label}",
            kills=(*self.kills, *([None] * pad), kill),
            expected=(*self.expected, *([None] * pad), expected),
            description=f"{self.description}; then in restart {run}: {what}",
        )


def _points(entries: Sequence[TraceEntry], *, mid: bool = False) -> list[tuple[str, int, str, str]]:
    """(HR_KILL, trace position, label, description) of every kill point of one run; with
    ``mid``, also inside each write's transaction."""
    points: list[tuple[str, int, str, str]] = []
    for pos, entry in enumerate(entries):
        what = entry.describe()
        if entry.type == "write":
            moments = (("before", pos), ("mid", pos), ("after", pos + 1))
            for when, at in moments if mid else (moments[0], moments[2]):
                label = f"{when}-w{entry.n:02d}"
                points.append(
                    (f"{when}:write:{entry.n}", at, label, f"{when} write {entry.n}: {what}")
                )
        else:
            label = f"after-e{entry.n:02d}"
            points.append((f"after:effect:{entry.n}", pos + 1, label, f"inside the tool: {what}"))
    return points


def kill_points(traces: Traces, *, mid_transaction: bool = False) -> list[Chain]:
    """A chain killing run *r* at each kill point of the un-killed run *r*, for every run of
    the un-killed task (``traces``; with ``mid_transaction``, also inside each write's
    transaction). Runs before *r* are not killed."""
    chains: list[Chain] = []
    for run, trace in sorted(traces.items()):
        for kill, pos, label, what in _points(trace, mid=mid_transaction):
            i = len(chains)
            chains.append(
                Chain(
                    f"k{i:03d}-{label}" if run == 0 else f"k{i:03d}-r{run}-{label}",
                    (*([None] * run), kill),
                    (*([None] * run), journal_of(trace[:pos])),
                    what if run == 0 else f"in run {run}: {what}",
                )
            )
    return chains


def killed_run(chain: Chain) -> int:
    """The run a chain kills last."""
    return max(i for i, kill in enumerate(chain.kills) if kill is not None)


def doubt_at(traces: Traces, chain: Chain) -> tuple[int, Kind, bool] | None:
    """The step a single-kill chain leaves in doubt: (step, kind, effect there)."""
    run = killed_run(chain)
    expected = chain.expected[run] or ()
    started = {i: name for kind, i, name in expected if kind == "step_started" and i is not None}
    done = {i for kind, i, _ in expected if kind in ("step_completed", "step_failed")}
    open_steps = sorted(set(started) - done)
    if not open_steps:
        return None
    step = open_steps[0]
    trace = traces[run]
    before = trace[: _position(trace, chain.kills[run] or "")]
    present = any(e.type == "effect" and e.step == step for e in before)
    return step, TOOL_KINDS[started[step] or "?"], present


def _position(trace: Sequence[TraceEntry], kill: str) -> int:
    for k, pos, _, _ in _points(trace, mid=True):
        if k == kill:
            return pos
    raise ValueError(f"no kill point {kill}")


def representatives(traces: Traces, chains: Sequence[Chain]) -> list[Chain]:
    """The first single-kill chain for each (tool kind, effect there or not) left in doubt."""
    seen: set[tuple[Kind, bool]] = set()
    chosen: list[Chain] = []
    for chain in chains:
        doubt = doubt_at(traces, chain)
        if doubt is None or (doubt[1], doubt[2]) in seen:
            continue
        seen.add((doubt[1], doubt[2]))
        chosen.append(chain)
    return chosen


def recovery_chains(first: Chain, step: int, traces: Traces) -> list[Chain]:
    """Chains that kill ``first``'s recovery at each point where it deals with ``step``,
    the step ``first`` left in doubt: retrying it, reconciling it, raising its intervention,
    its effect, its result. ``traces`` are the un-killed runs' traces by run (those before
    ``first``'s kill are left out)."""

    def ends(entry: TraceEntry, kinds: tuple[str, ...]) -> bool:
        return any(i == step and kind in kinds for kind, i, _ in entry.events)

    finished = ("step_completed", "step_failed")
    chains: list[Chain] = []
    for run, entries in sorted(traces.items()):
        if run <= killed_run(first):
            continue  # an un-killed run before the first kill
        body = [e for e in entries if e.op not in ("release_worker", "claim_task")]
        if not body or not body[0].concerns(step):
            break  # settled already (an operator marked it done)
        stop = next(
            (i + 1 for i, e in enumerate(body) if ends(e, (*finished, "intervention_raised"))),
            len(body),
        )
        last = entries.index(body[stop - 1]) + 1
        for kill, pos, label, what in _points(entries[:last]):
            entry = entries[pos - 1] if kill.startswith("after") else entries[pos]
            if entry.op in ("release_worker", "claim_task"):
                continue
            chains.append(first.then(run, kill, journal_of(entries[:pos]), what, f"r{run}-{label}"))
        if ends(body[stop - 1], finished):
            break
    return chains


# -- starting children ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChildResult:
    returncode: int | None  # as subprocess has it: -9 for SIGKILL
    stdout: str
    stderr: str


class _Pending:
    __slots__ = ("done", "pid", "returncode")

    def __init__(self) -> None:
        self.pid: int | None = None
        self.returncode: int | None = None
        self.done = threading.Event()


class ForkServer:
    """The parent's end of ``crash_child.py --serve``: children forked from an interpreter
    that imported everything once, instead of a fresh interpreter each (see
    :func:`crash_child.serve`). Thread-safe."""

    def __init__(self, log: Path):
        self._log = log.open("wb")
        self._proc = subprocess.Popen(
            [sys.executable, str(CHILD), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._pending: dict[int, _Pending] = {}
        self._reader = threading.Thread(target=self._read, name="crash-fork-server", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            message = json.loads(line)
            with self._lock:
                pending = self._pending[message["id"]]
            if "pid" in message:
                pending.pid = message["pid"]
            else:
                pending.returncode = message["returncode"]
                pending.done.set()
        with self._lock:  # the server is gone: nobody will answer
            for pending in self._pending.values():
                pending.done.set()

    def run(
        self,
        env: dict[str, str],
        stdout: Path,
        stderr: Path,
        timeout: float,
        *,
        lane: str | None = None,
    ) -> int | None:
        """Run a child; with a ``lane``, that lane's resident runs it (see
        :func:`crash_child.serve`)."""
        pending = _Pending()
        request: dict[str, Any] = {"env": env, "stdout": str(stdout), "stderr": str(stderr)}
        if lane is not None:
            request["lane"] = lane
        with self._lock:
            ident = next(self._ids)
            self._pending[ident] = pending
            assert self._proc.stdin is not None
            self._proc.stdin.write((json.dumps({"id": ident, **request}) + "\n").encode())
            self._proc.stdin.flush()
        try:
            if not pending.done.wait(timeout):
                if pending.pid is not None:
                    os.kill(pending.pid, signal.SIGKILL)
                raise TimeoutError(f"a crash child ran for more than {timeout}s")
            return pending.returncode
        finally:
            with self._lock:
                del self._pending[ident]

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=CHILD_TIMEOUT)
        finally:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            assert self._proc.stdout is not None
            self._reader.join(timeout=10)
            self._proc.stdout.close()
            self._log.close()


# -- the harness ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Baseline:
    """The un-killed task: its runs' traces (one run per approval, and one more)."""

    traces: dict[int, list[TraceEntry]]
    result: dict[str, Any]
    effects: list[Effect]
    steps: list[tuple[str, StepStatus]]  # name and how it ended, by index
    approved: list[Approved]

    @property
    def entries(self) -> list[TraceEntry]:
        """Every run's writes and effects, run after run."""
        return [e for _, trace in sorted(self.traces.items()) for e in trace]


@dataclass(slots=True)
class Outcome:
    chain: Chain
    problems: list[str] = field(default_factory=list)
    tags: set[str] = field(default_factory=set)
    interventions: list[tuple[int | None, str]] = field(default_factory=list)
    approvals: list[Approved] = field(default_factory=list)
    runs: int = 0
    traces: dict[int, list[TraceEntry]] = field(default_factory=dict)

    def report(self) -> str:
        head = f"{self.chain.label} (kills {self.chain.kills}; {self.chain.description}):"
        return "\n".join([head] + [f"  - {p}" for p in self.problems])


class CrashHarness:
    """Runs the crash workflow in child processes on one backend, under ``root``.

    Use it as a context manager: children come from a :class:`ForkServer`, or, with
    ``fork_server=False`` (or env ``HANDRAIL_CRASH_SUBPROCESS=1``), each from a fresh
    ``python crash_child.py``. With the fork server, each harness thread's runs go to its
    *resident*, a worker process that runs them one after another with its store kept
    open, until a run's kill point SIGKILLs it (the thread's next run starts a new one):
    a task takes a run per approval, and opening a PostgreSQL store costs more than a run.
    ``residents=False`` (or env ``HANDRAIL_CRASH_RESIDENTS=0``) forks a fresh child for
    every run instead. The harness's own view of the tasks (journals, approvals,
    interventions) is one store per SQLite scenario, and one store for all scenarios on a
    shared PostgreSQL database (its pool is thread-safe: one connection and migration
    check for the whole test, not one per chain)."""

    def __init__(
        self,
        backend: Backend,
        root: Path,
        *,
        misdeclared: Sequence[str] = (),
        fork_server: bool | None = None,
        residents: bool | None = None,
    ):
        self.backend = backend
        self.root = root
        self.misdeclared = tuple(misdeclared)
        self.clock = SystemClock()
        if fork_server is None:
            fork_server = os.environ.get("HANDRAIL_CRASH_SUBPROCESS") != "1"
        self._fork_server = fork_server
        if residents is None:
            residents = os.environ.get("HANDRAIL_CRASH_RESIDENTS") != "0"
        self._residents = residents
        self._server: ForkServer | None = None
        self._runs = itertools.count()
        self._shared: Store | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> CrashHarness:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._fork_server:
            self._server = ForkServer(self.root / "fork-server.log")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._shared is not None:
            self._shared.close()
            self._shared = None

    @contextmanager
    def _store(self, sc: Scenario) -> Iterator[Store]:
        """The harness's store for ``sc``."""
        if self.backend.url is None:
            store = open_store(sc.url)
            try:
                yield store
            finally:
                store.close()
            return
        with self._lock:
            if self._shared is None:
                self._shared = open_store(self.backend.url)
        yield self._shared

    def scenario(self, label: str) -> Scenario:
        workdir = self.root / label
        workdir.mkdir(parents=True, exist_ok=True)
        return Scenario(
            label=label,
            workdir=workdir,
            url=self.backend.store_url(workdir),
            task_id=f"crash-{label}",
            worker_id=f"crash-worker-{label}",
        )

    def child(
        self, sc: Scenario, *, kill: str | None = None, trace: Path | None = None
    ) -> ChildResult:
        env = dict(os.environ)
        env.update(
            HR_STORE_URL=sc.url,
            HR_TASK_ID=sc.task_id,
            HR_WORKER_ID=sc.worker_id,
            HR_EFFECTS=str(sc.effects),
            HR_CALLS=str(sc.calls),
            HR_KILL=kill or "",
            HR_TRACE="" if trace is None else str(trace),
            HR_MISDECLARE=",".join(self.misdeclared),
        )
        n = next(self._runs)
        stdout, stderr = sc.workdir / f"child-{n}.out", sc.workdir / f"child-{n}.err"
        if self._server is not None:
            lane = threading.current_thread().name if self._residents else None
            returncode = self._server.run(env, stdout, stderr, CHILD_TIMEOUT, lane=lane)
        else:
            with stdout.open("wb") as out, stderr.open("wb") as err:
                proc = subprocess.run(
                    [sys.executable, str(CHILD)],
                    env=env,
                    stdout=out,
                    stderr=err,
                    timeout=CHILD_TIMEOUT,
                    check=False,
                )
            returncode = proc.returncode
        return ChildResult(returncode, stdout.read_text(), stderr.read_text())

    def baseline(self) -> Baseline:
        """Run the task without a kill, tracing every write and effect: a run that ends at
        each irreversible call's approval request, and one that completes the task."""
        outcome = self.run_chain(Chain("baseline", (), (), "no kill"), None, trace=True)
        irreversible = sum(kind.irreversible for kind in TOOL_KINDS.values())
        if (
            outcome.problems
            or list(outcome.traces) != list(range(irreversible + 1))
            or [a.run for a in outcome.approvals] != list(range(irreversible))
            or outcome.interventions
        ):
            raise AssertionError(
                f"the un-killed task went wrong: {outcome.problems}; runs {list(outcome.traces)}"
                f", approvals {outcome.approvals}, interventions {outcome.interventions}"
            )
        sc = self.scenario("baseline")
        with self._store(sc) as store:
            events = store.load_events(sc.task_id)
        state = fold(events, sc.task_id)
        # the runs' writes, with the harness's decisions between them, are the journal
        traced: list[JournalEntry] = []
        for run, trace in sorted(outcome.traces.items()):
            traced += journal_of(trace)
            traced += [
                (EventKind.APPROVAL_DECIDED.value, a.step, a.tool)
                for a in outcome.approvals
                if a.run == run
            ]
        journal = [(e.kind.value, e.step_index, e.step_name) for e in events]
        if traced != journal:
            raise AssertionError(f"the traces {traced} are not the journal {journal}")
        effects = read_effects(sc.effects)
        problems = check_approvals(
            events, effects, read_calls(sc.calls), outcome.approvals, task_id=sc.task_id
        )
        if problems:
            raise AssertionError(f"the un-killed task's approvals went wrong: {problems}")
        return Baseline(
            traces=outcome.traces,
            result=state.result,
            effects=effects,
            steps=[(state.steps[i].name, state.steps[i].status) for i in sorted(state.steps)],
            approved=outcome.approvals,
        )

    def run_all(
        self,
        chains: Sequence[Chain],
        baseline: Baseline | None,
        *,
        trace: bool = False,
        workers: int | None = None,
    ) -> list[Outcome]:
        """Run ``chains`` in parallel (each in its own scenario); outcomes in their order."""
        count = workers or max(2, min(6, (os.cpu_count() or 2) + 1))
        with ThreadPoolExecutor(max_workers=count, thread_name_prefix="crash") as pool:
            return list(pool.map(lambda c: self.run_chain(c, baseline, trace=trace), chains))

    def run_chain(self, chain: Chain, baseline: Baseline | None, *, trace: bool = False) -> Outcome:
        """Run ``chain`` to the task's completion; with ``trace``, keep the traces of the
        runs that are not killed. Without a ``baseline`` nothing is checked at the end."""
        out = Outcome(chain)
        sc = self.scenario(chain.label)
        opened = ExitStack()
        store = opened.enter_context(self._store(sc))
        try:
            snapshots: list[Snapshot] = []
            run = 0
            while True:
                if run >= len(chain.kills) + MAX_RESTARTS:
                    out.problems.append(f"the task did not complete in {run} runs")
                    return out
                kill = chain.kills[run] if run < len(chain.kills) else None
                start = len(store.load_events(sc.task_id))
                path = sc.workdir / f"trace-{run}.jsonl" if trace and kill is None else None
                proc = self.child(sc, kill=kill, trace=path)
                out.runs += 1
                if path is not None:
                    out.traces[run] = read_trace(path)
                if kill is not None:
                    if proc.returncode != -signal.SIGKILL:
                        out.problems.append(
                            f"run {run} should have died by SIGKILL at {kill} but exited with "
                            f"{proc.returncode}: {proc.stdout.strip()} {_tail(proc.stderr)}"
                        )
                        return out
                    events = store.load_events(sc.task_id)
                    snap = Snapshot(
                        run,
                        kill,
                        events,
                        fold(events, sc.task_id),
                        read_effects(sc.effects),
                        read_calls(sc.calls),
                    )
                    out.problems += check_snapshot(
                        snap,
                        start=start,
                        expected=chain.expected[run],
                        previous=snapshots[-1] if snapshots else None,
                    )
                    snapshots.append(snap)
                elif proc.returncode != 0:
                    out.problems.append(
                        f"run {run} exited with {proc.returncode}: {_tail(proc.stderr)}"
                    )
                    return out
                record = store.get_task(sc.task_id)
                status = None if record is None else record.status
                if status is TaskStatus.COMPLETED:
                    if run + 1 < len(chain.kills):
                        out.problems.append(f"the task completed before run {run + 1}'s kill")
                        return out
                    break
                if status is TaskStatus.AWAITING_INTERVENTION:
                    if not self._operate(store, sc, out):
                        return out
                elif status is TaskStatus.AWAITING_APPROVAL:
                    if not self._approve(store, sc, out, run):
                        return out
                elif kill is None:
                    out.problems.append(
                        f"after run {run} (not killed) the task is {status}: {proc.stdout.strip()}"
                    )
                    return out
                run += 1
            if baseline is None:
                return out
            record = store.get_task(sc.task_id)
            final = Final(
                task_id=sc.task_id,
                events=store.load_events(sc.task_id),
                status=None if record is None else record.status,
                lease_owner=None if record is None else record.lease_owner,
                effects=read_effects(sc.effects),
                calls=read_calls(sc.calls),
                approved=out.approvals,
            )
            out.problems += check_final(
                final,
                snapshots,
                baseline_result=baseline.result,
                baseline_effects=baseline.effects,
                baseline_steps=baseline.steps,
                tags=out.tags,
            )
        finally:
            opened.close()
        return out

    def _operate(self, store: Store, sc: Scenario, out: Outcome) -> bool:
        """Resolve every open intervention as an operator would."""
        state = fold(store.load_events(sc.task_id), sc.task_id)
        opened = state.open_interventions()
        if not opened:
            out.problems.append("the task awaits an intervention but none is open")
            return False
        for item in opened:
            out.interventions.append((item.step_index, self._decide(store, sc, item)))
        return True

    def _approve(self, store: Store, sc: Scenario, out: Outcome, run: int) -> bool:
        """Approve every pending approval request as the named approver, once each (only
        pending ones are listed: a decided request is never decided again), noting how
        many times the request's tool ran and took effect before the decision."""
        pending = list_approvals(store, task_id=sc.task_id)
        if not pending:
            out.problems.append(f"after run {run} the task awaits approval but none is pending")
            return False
        effects, calls = read_effects(sc.effects), read_calls(sc.calls)
        for item in pending:
            request = item.request
            step = request.step_index
            note = Approved(
                run=run,
                request_id=request.request_id,
                step=step,
                tool=request.tool,
                effects=sum(1 for e in effects if e.step == step and e.tool == request.tool),
                calls=sum(1 for i, tool in calls if i == step and tool == request.tool),
            )
            try:
                decide(
                    store,
                    self.clock,
                    request.request_id,
                    decision="approved",
                    actor=APPROVER,
                    digest_seen=request.digest,
                    comment="crash harness: approved between runs",
                )
            except HandrailError as exc:
                out.problems.append(f"approving {request.request_id} after run {run}: {exc}")
                return False
            out.approvals.append(note)
        return True

    def _decide(self, store: Store, sc: Scenario, item: Intervention) -> str:
        """Look at the target system: the effect is there (mark the step done with the
        output found there) or not (run it again)."""
        found = [
            e
            for e in read_effects(sc.effects)
            if e.step == item.step_index and e.tool == item.step_name
        ]
        action = "mark_done" if found else "retry"
        resolve_intervention(
            store,
            self.clock,
            item.intervention_id,
            action=action,
            actor=OPERATOR,
            output=found[0].output if found else None,
            comment="crash harness: checked the effects file",
        )
        return action


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def summarize(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Counts for a report: chains, child runs, interventions by answer, approvals given,
    paths taken."""
    answers = Counter(action for o in outcomes for _, action in o.interventions)
    return {
        "chains": len(outcomes),
        "failed": sum(1 for o in outcomes if o.problems),
        "runs": sum(o.runs for o in outcomes),
        "interventions": dict(answers),
        "approvals": sum(len(o.approvals) for o in outcomes),
        "tags": sorted({t for o in outcomes for t in o.tags}),
    }
