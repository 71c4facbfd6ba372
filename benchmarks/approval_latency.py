#!/usr/bin/env python3
"""Approval latency: from a decision made in another process to the gated step running.

For every system a task (workflow) waits for a human's decision; another process makes
the decision; the clock runs from just before that decision call until the first line of
the gated step runs (``time.time()`` taken there and sent back through a pipe). p50 and p99
over 200 decisions, side by side in one run:

- **handrail**, SQLite and PostgreSQL: a worker (``app.worker()``, its default
  ``poll_interval``) runs in a process of its own; a gated tool
  (``approval=ApprovalPolicy(require="always", auto_deny_after=None)``) parks the task in
  ``awaiting_approval``, holding no worker; the measuring process decides with
  ``app.approve(request_id, by=...)``. The worker learns of it through the store's wake-up
  signal (a unix datagram socket beside the SQLite file, LISTEN/NOTIFY on PostgreSQL).
- **DBOS Transact**: a workflow in a DBOS process of its own waits in
  ``DBOS.recv(topic)``; the measuring process sends with ``DBOSClient.send``. On SQLite
  DBOS polls for messages every ``notification_listener_polling_interval_sec`` (default
  1 s; also measured at 10 ms); on PostgreSQL it uses LISTEN/NOTIFY.
- **LangGraph**: a node calls ``interrupt()``; the same process resumes it with
  ``graph.invoke(Command(resume=...))`` (``SqliteSaver``, ``durability="sync"``). No
  second process and no worker: LangGraph has neither.

Each system is a long-lived server subprocess; the parent drives them in interleaved
rounds (a share of each system's decisions per round, rotating order), as ``bench.py``
does, so disk-latency drift hits all systems alike. Before each decision the waiting side
is left idle for a moment (``--settle``), as it would be while a person reads the request,
plus, for a side that polls (DBOS on SQLite), a random part of its poll interval. The idle
CPU and context switches of each waiting process are sampled from ``/proc`` while one task
waits for a decision. handrail's latency is also split into parts (the deciding call, the
wake-up, the claim, the replay, the intent commit) from marks the worker process sends.
Run it with ``benchmarks/run approvals``; see README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from bench import (
    PEER_PACKAGES,
    RESULTS_DIR,
    ChildError,
    _version,
    child_env,
    install_network_guard,
    machine_info,
    rotated,
    temp_root,
)

THIS = str(Path(__file__).resolve())
Json = dict[str, Any]

DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_DB_HANDRAIL = "handrail_bench_approvals"
PG_DB_DBOS = "handrail_bench_approvals_dbos"
TOPIC = "approval"


@dataclass(frozen=True)
class Params:
    decisions: int = 200  # counted decisions per system
    slow_decisions: int = 50  # for DBOS at its default 1 s poll (about 0.5 s each)
    warmup: int = 5  # decisions before the counted ones, per system, not counted
    rounds: int = 5  # the counted decisions are split over this many interleaved rounds
    settle: float = 0.03  # s the waiting side is left idle before each decision
    idle_seconds: float = 3.0  # CPU sampling window with one task waiting
    handrail_poll: float = 0.5  # the worker's poll_interval (handrail's default)
    dbos_fast_poll: float = 0.01
    timeout: float = 60.0  # for any single wait


# --------------------------------------------------------------------------------------
# Marks: the waiting process writes "KIND KEY TIME" lines to a pipe; the measuring
# process collects them. A write of a short line to a pipe is atomic.
# --------------------------------------------------------------------------------------


def mark(fd: int, kind: str, key: str, ts: float | None = None) -> None:
    os.write(fd, f"{kind} {key} {time.time() if ts is None else ts!r}\n".encode())


class Marks:
    """Collects the marks read from a pipe; ``wait`` blocks until one arrives."""

    def __init__(self, read_fd: int):
        self._file = os.fdopen(read_fd, "r", buffering=1)
        self._cond = threading.Condition()
        self._first: dict[tuple[str, str], float] = {}
        self._log: list[tuple[str, str, float]] = []
        self.closed = False
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self._file:
            kind, key, ts = line.split()
            with self._cond:
                self._first.setdefault((kind, key), float(ts))
                self._log.append((kind, key, float(ts)))
                self._cond.notify_all()
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def wait(self, kind: str, key: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        with self._cond:
            while (kind, key) not in self._first:
                left = deadline - time.monotonic()
                if self.closed:
                    raise RuntimeError(f"the waiting process exited before mark {kind} {key}")
                if left <= 0:
                    raise TimeoutError(f"no mark {kind} {key} within {timeout:.0f}s")
                self._cond.wait(left)
            return self._first[(kind, key)]

    def first_after(self, kind: str, key: str, t: float) -> float | None:
        with self._cond:
            return next(
                (ts for k, kk, ts in self._log if k == kind and kk == key and ts >= t), None
            )

    def trim(self) -> None:
        with self._cond:
            self._log.clear()


# --------------------------------------------------------------------------------------
# CPU and wake-ups of another process, from /proc
# --------------------------------------------------------------------------------------


def proc_usage(pid: int) -> Json:
    """CPU seconds (utime+stime of the whole process, and the sum of the live threads'
    schedstat run time in ns) and context switches of the live threads."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    out: Json = {"stat_cpu_s": (int(fields[11]) + int(fields[12])) / ticks}
    run_ns = 0
    switches = 0
    threads = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                run_ns += int(fh.read().split()[0])
            with open(f"/proc/{pid}/task/{tid}/status") as fh:
                for line in fh:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
            threads += 1
    out.update(sched_cpu_s=run_ns / 1e9, switches=switches, threads=threads)
    return out


def idle_usage(pid: int, seconds: float) -> Json:
    a = proc_usage(pid)
    t0 = time.monotonic()
    time.sleep(seconds)
    b = proc_usage(pid)
    wall = time.monotonic() - t0
    same_threads = a["threads"] == b["threads"]
    cpu = (b["sched_cpu_s"] - a["sched_cpu_s"]) if same_threads else None
    return {
        "wall_s": wall,
        "cpu_ms_per_s": (cpu if cpu is not None else b["stat_cpu_s"] - a["stat_cpu_s"])
        * 1e3
        / wall,
        "cpu_source": "schedstat (ns)" if cpu is not None else "stat (10 ms ticks)",
        "stat_cpu_ms_per_s": (b["stat_cpu_s"] - a["stat_cpu_s"]) * 1e3 / wall,
        "wakeups_per_s": (b["switches"] - a["switches"]) / wall if same_threads else None,
        "threads": b["threads"],
    }


# --------------------------------------------------------------------------------------
# handrail: the app both processes build, and the worker process
# --------------------------------------------------------------------------------------


def make_handrail_app(url: str, fd: int | None) -> tuple[Any, Any]:
    """The app, with a lookup step and a gated step; the gated tool's first line sends
    ``tool KEY time.time()`` down ``fd`` (in the worker process)."""
    import handrail
    from handrail import ApprovalPolicy

    app = handrail.App(url)

    @app.tool(idempotent=True)
    def lookup(key: str) -> str:
        return key

    @app.tool(
        reversibility="fully_reversible",
        approval=ApprovalPolicy(require="always", auto_deny_after=None),
    )
    def act(key: str) -> str:
        if fd is not None:
            mark(fd, "tool", key)
        return key

    @app.workflow
    def gated(ctx: handrail.TaskContext, key: str) -> str:
        lookup(key)
        return act(key)

    return app, gated


class _MarkedSubscription:
    """Sends a ``wake`` mark whenever the worker's wake-up listener is woken."""

    def __init__(self, inner: Any, fd: int):
        self._inner = inner
        self._fd = fd

    def wait(self, timeout: float) -> bool:
        woken = bool(self._inner.wait(timeout))
        if woken:
            mark(self._fd, "wake", "-")
        return woken

    def close(self) -> None:
        self._inner.close()


def instrument_worker_store(store: Any, fd: int) -> None:
    """Timestamps for the breakdown: the listener's wake-up, the claim transaction and
    the step's intent write (``boundary=True``). One ``time.time()`` and a pipe write each,
    on this store instance only."""
    subscribe = store.subscribe
    claim_task = store.claim_task
    append_events = store.append_events

    def marked_subscribe() -> Any:
        return _MarkedSubscription(subscribe(), fd)

    def marked_claim(*args: Any, **kwargs: Any) -> Any:
        t = time.time()
        claim = claim_task(*args, **kwargs)
        if claim is not None:
            t1 = time.time()
            mark(fd, "claim0", claim.lease.task_id, t)
            mark(fd, "claim1", claim.lease.task_id, t1)
        return claim

    def marked_append(lease: Any, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("boundary"):
            return append_events(lease, *args, **kwargs)
        t = time.time()
        result = append_events(lease, *args, **kwargs)
        t1 = time.time()
        mark(fd, "intent0", lease.task_id, t)
        mark(fd, "intent1", lease.task_id, t1)
        return result

    store.subscribe = marked_subscribe
    store.claim_task = marked_claim
    store.append_events = marked_append


def handrail_worker_main(url: str, fd: int, poll: float) -> None:
    """The waiting side: a worker in this process until ``quit`` on stdin."""
    install_network_guard()
    app, _ = make_handrail_app(url, fd)
    instrument_worker_store(app.store, fd)
    worker = app.worker(poll_interval=poll)
    worker.start()
    mark(fd, "ready", "-")
    for line in sys.stdin:
        if line.strip() == "quit":
            break
    worker.stop()
    app.close()
    os._exit(0)


# --------------------------------------------------------------------------------------
# DBOS: the worker process
# --------------------------------------------------------------------------------------


def dbos_config(url: str, poll: float | None) -> Json:
    config: Json = {
        "name": "handrail-approval-bench",
        "system_database_url": url,
        "enable_otlp": False,
        "log_level": "WARNING",
    }
    if poll is not None:
        config["notification_listener_polling_interval_sec"] = poll
    return config


def dbos_worker_main(url: str, fd: int, poll: float | None) -> None:
    """The waiting side: DBOS launched here; ``start WFID KEY`` on stdin starts a workflow
    that marks ``wait KEY``, waits in ``DBOS.recv``, then runs a step whose first line marks
    ``tool KEY``."""
    install_network_guard()
    from dbos import DBOS, SetWorkflowID

    DBOS(config=dbos_config(url, poll))  # type: ignore[arg-type]

    @DBOS.step()
    def act(key: str) -> str:
        mark(fd, "tool", key)
        return key

    @DBOS.workflow()
    def gated(key: str) -> str:
        mark(fd, "wait", key)
        decision = DBOS.recv(TOPIC, timeout_seconds=600)
        if decision != "approved":
            raise RuntimeError(f"{key}: no decision ({decision!r})")
        return act(key)

    DBOS.launch()
    mark(fd, "ready", "-")
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] == "start":
            with SetWorkflowID(words[1]):
                DBOS.start_workflow(gated, words[2])
    DBOS.destroy(destroy_registry=True)
    os._exit(0)


# --------------------------------------------------------------------------------------
# Measuring side: one session per system, in a --serve child
# --------------------------------------------------------------------------------------


class WorkerProcess:
    """A waiting-side process with a pipe for its marks and stdin for commands."""

    def __init__(self, argv: list[str], log_path: Path):
        read_fd, write_fd = os.pipe()
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, THIS, *argv, "--fd", str(write_fd)],
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=child_env(),
            text=True,
            bufsize=1,
            pass_fds=(write_fd,),
        )
        os.close(write_fd)
        self.marks = Marks(read_fd)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.send("quit")
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@dataclass
class Sample:
    latency_ms: float  # t(gated step's first line) - t0 (just before the decision call)
    decide_ms: float  # how long the decision call took in the deciding process
    parts: Json | None = None  # handrail's breakdown, ms


class Session:
    """The measuring side of one system: makes tasks wait, decides, times the gated step."""

    def __init__(self, params: Params, tmpdir: Path, log_dir: Path, opts: Json):
        self.params = params
        self.tmpdir = tmpdir
        self.log_dir = log_dir
        self.opts = opts
        self.run_id = uuid.uuid4().hex[:6]
        self._n = 0

    def open(self) -> Json:
        """Start the system (and its waiting process); its configuration, for the JSON."""
        raise NotImplementedError

    def one(self, key: str) -> Sample:
        """Make one task wait for a decision (untimed), then time the decision."""
        raise NotImplementedError

    def idle(self, seconds: float) -> Json:
        """CPU and context switches of the waiting process while one task waits."""
        return {}

    def close(self) -> None:
        raise NotImplementedError

    def pause(self) -> None:
        """Leave the waiting side idle before a decision: ``settle``, plus, for a side that
        polls, a random part of its poll interval (a person decides at a random moment, not
        in step with the poll)."""
        time.sleep(self.params.settle + random.uniform(0.0, self.opts.get("jitter", 0.0)))

    def next_key(self) -> str:
        self._n += 1
        return f"{self.run_id}-{self._n}"

    def measure(self, n: int) -> list[Sample]:
        return [self.one(self.next_key()) for _ in range(n)]


class HandrailSession(Session):
    """Tasks started here, a worker in another process, decisions made here."""

    def open(self) -> Json:
        url = self.opts["url"]
        self.worker = WorkerProcess(
            ["--handrail-worker", url, "--poll", str(self.params.handrail_poll)],
            self.log_dir / f"approvals-{self.opts['name']}-worker.log",
        )
        self.app, self.workflow = make_handrail_app(url, None)
        self._commit: list[float] = []
        append_unleased = self.app.store.append_unleased

        def timed_append(*args: Any, **kwargs: Any) -> Any:  # the decision's write
            t = time.time()
            result = append_unleased(*args, **kwargs)
            self._commit[:] = [t, time.time()]
            return result

        self.app.store.append_unleased = timed_append
        self.worker.marks.wait("ready", "-", self.params.timeout)
        return {
            "version": _version("handrail"),
            "store": type(self.app.store).__name__,
            "synchronous": getattr(self.app.store, "_synchronous", None),
            "wake_dir": str(getattr(self.app.store, "wake_dir", None) or ""),
            "worker": f"separate process, app.worker(poll_interval={self.params.handrail_poll})",
        }

    def _park(self, key: str) -> tuple[str, str]:
        """Start a task and wait (untimed) until it waits for approval; its request id."""
        from handrail import TaskStatus

        handle = self.app.start(self.workflow, key)
        deadline = time.monotonic() + self.params.timeout
        while True:
            record = self.app.store.get_task(handle.task_id)
            if record is not None and record.status is TaskStatus.AWAITING_APPROVAL:
                pending = self.app.approvals(task_id=handle.task_id)
                if pending:
                    return handle.task_id, pending[0].request_id
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {handle.task_id} never waited for approval")
            time.sleep(0.001)

    def _finish(self, task_id: str) -> None:
        from handrail import TaskStatus

        deadline = time.monotonic() + self.params.timeout
        while True:
            record = self.app.store.get_task(task_id)
            if record is not None and record.status is TaskStatus.COMPLETED:
                return
            if record is not None and record.status.terminal:
                raise RuntimeError(f"task {task_id} ended {record.status.value}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} did not complete")
            time.sleep(0.002)

    def one(self, key: str) -> Sample:
        task_id, request_id = self._park(key)
        self.pause()
        marks = self.worker.marks
        marks.trim()
        t0 = time.time()
        self.app.approve(request_id, by="approver")
        t_decided = time.time()
        t_tool = marks.wait("tool", key, self.params.timeout)
        self._finish(task_id)
        commit0, commit1 = self._commit
        points = {
            "t0": t0,
            "commit0": commit0,
            "commit1": commit1,
            "wake": marks.first_after("wake", "-", t0),
            "claim0": marks.first_after("claim0", task_id, t0),
            "claim1": marks.first_after("claim1", task_id, t0),
            "intent0": marks.first_after("intent0", task_id, t0),
            "intent1": marks.first_after("intent1", task_id, t0),
            "tool": t_tool,
        }
        parts = None
        if all(v is not None for v in points.values()):
            p: dict[str, float] = points  # type: ignore[assignment]
            parts = {
                "decide_reads": p["commit0"] - p["t0"],
                "decide_to_wake": p["wake"] - p["commit0"],
                "to_claim": p["claim0"] - p["wake"],
                "claim": p["claim1"] - p["claim0"],
                "replay_recheck": p["intent0"] - p["claim1"],
                "intent_commit": p["intent1"] - p["intent0"],
                "to_tool": p["tool"] - p["intent1"],
            }
            parts = {k: v * 1e3 for k, v in parts.items()}
            parts["aside_decide_commit"] = (p["commit1"] - p["commit0"]) * 1e3
        return Sample((t_tool - t0) * 1e3, (t_decided - t0) * 1e3, parts)

    def idle(self, seconds: float) -> Json:
        key = self.next_key()
        task_id, request_id = self._park(key)
        time.sleep(0.5)
        usage = idle_usage(self.worker.pid, seconds)
        self.app.approve(request_id, by="approver")
        self.worker.marks.wait("tool", key, self.params.timeout)
        self._finish(task_id)
        return usage

    def close(self) -> None:
        self.worker.stop()
        self.app.close()


class DbosSession(Session):
    """Workflows in a DBOS process; messages sent from here with DBOSClient."""

    def open(self) -> Json:
        from dbos import DBOSClient

        url = self.opts["url"]
        poll = self.opts.get("poll")
        argv = ["--dbos-worker", url]
        if poll is not None:
            argv += ["--poll", str(poll)]
        self.worker = WorkerProcess(
            argv, self.log_dir / f"approvals-{self.opts['name']}-worker.log"
        )
        self.worker.marks.wait("ready", "-", self.params.timeout * 2)
        self.client = DBOSClient(system_database_url=url)
        return {
            "version": _version("dbos"),
            "system_database": "sqlite" if url.startswith("sqlite") else "postgresql",
            "notification_listener_polling_interval_sec": poll
            if poll is not None
            else "1.0 (default)",
            "worker": "separate process, DBOS.launch(); decision sent with DBOSClient.send",
        }

    def _park(self, key: str) -> str:
        wfid = f"approval-{key}"
        self.worker.send(f"start {wfid} {key}")
        self.worker.marks.wait("wait", key, self.params.timeout)
        return wfid

    def one(self, key: str) -> Sample:
        wfid = self._park(key)
        self.pause()
        t0 = time.time()
        self.client.send(wfid, "approved", TOPIC)
        t_decided = time.time()
        t_tool = self.worker.marks.wait("tool", key, self.params.timeout)
        return Sample((t_tool - t0) * 1e3, (t_decided - t0) * 1e3)

    def idle(self, seconds: float) -> Json:
        key = self.next_key()
        wfid = self._park(key)
        time.sleep(0.5)
        usage = idle_usage(self.worker.pid, seconds)
        self.client.send(wfid, "approved", TOPIC)
        self.worker.marks.wait("tool", key, self.params.timeout)
        return usage

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.destroy()
        self.worker.stop()


class LangGraphSession(Session):
    """interrupt() in a node; resumed in this process with Command(resume=...)."""

    def open(self) -> Json:
        import sqlite3
        from typing import TypedDict

        from langgraph.checkpoint.sqlite import SqliteSaver
        from langgraph.graph import END, START, StateGraph
        from langgraph.types import Command, interrupt

        class State(TypedDict):
            key: str
            approved: bool

        self.times: dict[str, float] = {}
        times = self.times

        def gate(state: State) -> Json:
            decision = interrupt({"action": "act", "key": state["key"]})
            times["after_interrupt"] = time.time()
            return {"approved": decision == "approved"}

        def act(state: State) -> Json:
            times["tool"] = time.time()
            if not state["approved"]:
                raise RuntimeError("not approved")
            return {}

        builder = StateGraph(State)
        builder.add_node("gate", gate)
        builder.add_node("act", act)
        builder.add_edge(START, "gate")
        builder.add_edge("gate", "act")
        builder.add_edge("act", END)
        self.conn = sqlite3.connect(self.tmpdir / "langgraph.sqlite", check_same_thread=False)
        saver = SqliteSaver(self.conn)
        saver.setup()
        self.graph = builder.compile(checkpointer=saver)
        self.Command = Command
        self.after_interrupt_ms: list[float] = []
        return {
            "version": _version("langgraph"),
            "checkpoint_sqlite": _version("langgraph-checkpoint-sqlite"),
            "durability": "sync",
            "journal_mode": self.conn.execute("PRAGMA journal_mode").fetchone()[0],
            "synchronous": self.conn.execute("PRAGMA synchronous").fetchone()[0],
            "worker": "none: resumed in the same process",
        }

    def one(self, key: str) -> Sample:
        config: Any = {"configurable": {"thread_id": key}}
        out = self.graph.invoke({"key": key, "approved": False}, config, durability="sync")
        assert "__interrupt__" in out, out
        self.pause()
        self.times.clear()
        t0 = time.time()
        self.graph.invoke(self.Command(resume="approved"), config, durability="sync")
        t_done = time.time()
        self.after_interrupt_ms.append((self.times["after_interrupt"] - t0) * 1e3)
        return Sample((self.times["tool"] - t0) * 1e3, (t_done - t0) * 1e3)

    def close(self) -> None:
        self.conn.close()


# --------------------------------------------------------------------------------------
# Systems
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class System:
    name: str
    label: str
    store: str
    woken_by: str
    session: type[Session]
    pg: bool = False
    slow: bool = False
    goal_ms: float | None = None


def systems_for(params: Params) -> list[System]:
    fast = params.dbos_fast_poll
    return [
        System(
            "handrail_sqlite", "handrail", "SQLite (WAL, synchronous=FULL)",
            f"wake socket (poll_interval {params.handrail_poll:g} s as fallback)",
            HandrailSession, goal_ms=10.0,
        ),
        System(
            "handrail_postgres", "handrail", "PostgreSQL",
            f"LISTEN/NOTIFY (poll_interval {params.handrail_poll:g} s as fallback)",
            HandrailSession, pg=True, goal_ms=5.0,
        ),
        System(
            "dbos_sqlite_default", "DBOS Transact", "SQLite (as shipped)",
            "poll every 1 s (default)", DbosSession, slow=True,
        ),
        System(
            "dbos_sqlite_fast", "DBOS Transact", "SQLite (as shipped)",
            f"poll every {fast * 1e3:g} ms", DbosSession,
        ),
        System(
            "dbos_postgres", "DBOS Transact", "PostgreSQL", "LISTEN/NOTIFY",
            DbosSession, pg=True,
        ),
        System(
            "langgraph", "LangGraph", 'SqliteSaver (durability="sync")',
            "in-process resume (no second process)", LangGraphSession,
        ),
    ]  # fmt: skip


def session_opts(system: System, params: Params, tmpdir: Path, pg_urls: Json) -> Json:
    opts: Json = {"name": system.name}
    if system.name == "handrail_sqlite":
        opts["url"] = str(tmpdir / "handrail.db")
    elif system.name == "handrail_postgres":
        opts["url"] = pg_urls["handrail"]
    elif system.name == "dbos_sqlite_default":
        opts["url"] = f"sqlite:///{tmpdir / 'dbos-default.sqlite'}"
        opts["jitter"] = 1.0  # DBOS's default notification_listener_polling_interval_sec
    elif system.name == "dbos_sqlite_fast":
        opts["url"] = f"sqlite:///{tmpdir / 'dbos-fast.sqlite'}"
        opts["poll"] = params.dbos_fast_poll
        opts["jitter"] = params.dbos_fast_poll
    elif system.name == "dbos_postgres":
        opts["url"] = pg_urls["dbos"]
    return opts


# --------------------------------------------------------------------------------------
# --serve child: answers the parent's JSON lines
# --------------------------------------------------------------------------------------


def serve(name: str, params: Params, tmp_root: Path, log_dir: Path, pg_urls: Json) -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    install_network_guard()

    def reply(obj: Json) -> None:
        proto.write(json.dumps(obj) + "\n")

    system = next(s for s in systems_for(params) if s.name == name)
    tmpdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=tmp_root))
    session = system.session(params, tmpdir, log_dir, session_opts(system, params, tmpdir, pg_urls))
    try:
        config = session.open()
        session.measure(params.warmup)
        reply({"status": "ok", "config": config})
    except Exception as exc:
        reply({"status": "error", "error": repr(exc), "traceback": traceback.format_exc()})
    for line in sys.stdin:
        request: Json = json.loads(line)
        if request["op"] == "quit":
            break
        try:
            if request["op"] == "measure":
                samples = session.measure(request["n"])
                reply({"ok": True, "samples": [asdict(s) for s in samples]})
            elif request["op"] == "idle":
                reply({"ok": True, **session.idle(request["seconds"])})
            else:
                raise ValueError(f"unknown request {request!r}")
        except Exception as exc:
            reply({"ok": False, "error": repr(exc), "traceback": traceback.format_exc()})
    extra: Json = {}
    if isinstance(session, LangGraphSession):
        extra["after_interrupt_ms"] = session.after_interrupt_ms
    with contextlib.suppress(Exception):
        session.close()
    reply(extra)
    os._exit(0)


# --------------------------------------------------------------------------------------
# Parent
# --------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[approvals] {msg}", file=sys.stderr, flush=True)


class Child:
    def __init__(self, system: System, argv: list[str], log_path: Path):
        self.system = system
        self.result: Json = {}
        self._log: IO[str] = log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, THIS, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=child_env(),
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def recv(self, timeout: float) -> Json:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise ChildError(f"{self.system.name}: no answer within {timeout:.0f}s") from None
        if line is None:
            raise ChildError(f"{self.system.name}: exited (rc {self.proc.wait()}); see its log")
        answer: Json = json.loads(line)
        return answer

    @property
    def ok(self) -> bool:
        return self.result.get("status") == "ok"

    def call(self, timeout: float, **request: Any) -> Json:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            answer = self.recv(timeout)
            if not answer.get("ok"):
                raise ChildError(f"{self.system.name} {request['op']}: {answer.get('error')}")
            return answer
        except (ChildError, OSError) as exc:
            self.result.update(status="error", error=str(exc))
            self.kill()
            raise ChildError(str(exc)) from exc

    def quit(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            with contextlib.suppress(Exception):
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.result.update(self.recv(60))
        self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def pg_url(admin: str, dbname: str) -> str:
    parts = urlsplit(admin)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, ""))


@contextlib.contextmanager
def scratch_databases(admin: str | None) -> Any:
    """Create the scratch PostgreSQL databases, yield their URLs, drop them afterwards.
    Yields ``{"error": ...}`` when PostgreSQL cannot be used."""
    if admin is None:
        yield {"error": "PostgreSQL disabled (--pg none)"}
        return
    try:
        import psycopg
    except ImportError as exc:
        yield {"error": f"psycopg missing: {exc}"}
        return
    names = {"handrail": PG_DB_HANDRAIL, "dbos": PG_DB_DBOS}

    def run(sql: str) -> None:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    try:
        for db in names.values():
            run(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            run(f'CREATE DATABASE "{db}"')
        with psycopg.connect(admin, connect_timeout=5) as conn:
            version = conn.execute("SHOW server_version").fetchone()
    except Exception as exc:
        yield {"error": f"cannot create scratch databases through {admin}: {exc}"}
        return
    try:
        yield {
            "handrail": pg_url(admin, names["handrail"]),
            "dbos": pg_url(admin, names["dbos"]),
            "server_version": version[0] if version else None,
        }
    finally:
        for db in names.values():
            try:
                run(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            except Exception as exc:
                log(f"could not drop scratch database {db}: {exc}")


def percentile(xs: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def stats(xs: list[float]) -> Json:
    return {
        "n": len(xs),
        "p50": percentile(xs, 50),
        "p90": percentile(xs, 90),
        "p99": percentile(xs, 99),
        "mean": statistics.fmean(xs),
        "min": min(xs),
        "max": max(xs),
    }


def run_all(
    systems: list[System], params: Params, root: Path, log_dir: Path, pg: Json
) -> dict[str, Json]:
    results: dict[str, Json] = {}
    children: dict[str, Child] = {}
    pg_arg = json.dumps({k: v for k, v in pg.items() if k in ("handrail", "dbos")})
    for s in systems:
        if s.pg and "error" in pg:
            results[s.name] = {"status": "unavailable", "reason": pg["error"]}
            continue
        argv = ["--serve", s.name, "--params", json.dumps(asdict(params)), "--tmp", str(root)]
        argv += ["--log-dir", str(log_dir), "--pg-urls", pg_arg]
        children[s.name] = Child(s, argv, log_dir / f"approvals-{s.name}.log")
    for name, child in children.items():
        try:
            child.result = child.recv(params.timeout * 3)
        except ChildError as exc:
            child.result = {"status": "error", "error": str(exc)}
        log(f"{name}: {child.result.get('status')} {child.result.get('error') or ''}")
    samples: dict[str, list[Json]] = {n: [] for n in children}
    idle: dict[str, Json] = {}
    timeout = params.timeout * 10
    names = [n for n in children if children[n].ok]
    try:
        for r in range(params.rounds):
            log(f"round {r + 1}/{params.rounds}")
            for n in rotated(names, r):
                child = children[n]
                if not child.ok:
                    continue
                total = params.slow_decisions if child.system.slow else params.decisions
                share = total // params.rounds + (1 if r < total % params.rounds else 0)
                with contextlib.suppress(ChildError):
                    samples[n] += child.call(timeout, op="measure", n=share)["samples"]
        log(f"idle CPU, {params.idle_seconds:g} s each")
        for n in names:
            if children[n].ok and children[n].system.session is not LangGraphSession:
                with contextlib.suppress(ChildError):
                    answer = children[n].call(timeout, op="idle", seconds=params.idle_seconds)
                    answer.pop("ok")
                    idle[n] = answer
    finally:
        for child in children.values():
            child.quit()
    for n, child in children.items():
        res = child.result
        lat = [s["latency_ms"] for s in samples[n]]
        if lat:
            res["latency_ms"] = stats(lat)
            res["decide_call_ms"] = stats([s["decide_ms"] for s in samples[n]])
            parts = [s["parts"] for s in samples[n] if s.get("parts")]
            if parts:
                res["breakdown_ms"] = {
                    k: {"p50": percentile([p[k] for p in parts], 50),
                        "p90": percentile([p[k] for p in parts], 90),
                        "mean": statistics.fmean(p[k] for p in parts)}
                    for k in parts[0]
                }  # fmt: skip
                res["breakdown_n"] = len(parts)
            res["samples_ms"] = lat
        if n in idle:
            res["idle"] = idle[n]
        if "after_interrupt_ms" in res:
            res["after_interrupt_ms"] = stats(res["after_interrupt_ms"])
        results[n] = res
    return results


# ---- report ------------------------------------------------------------------------------

BREAKDOWN = {
    "decide_reads": "decide: read + fold the task in the deciding process",
    "decide_to_wake": "decide: the decision's write and commit, the signal, until the "
    "worker's listener thread wakes",
    "to_claim": "listener wakes the dispatcher, which starts the claim",
    "claim": "claim transaction (lease + journal read + task_claimed event)",
    "replay_recheck": "replay + gate checks + approval re-check, up to the intent write",
    "intent_commit": "the gated step's intent (step_started) commit",
    "to_tool": "from the intent commit to the tool's first line",
}

NO_BUSY_POLL_WAKEUPS = 20.0  # context switches/s of an idle worker; a 10 ms poll makes 100+


def _f(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def goals(results: dict[str, Json], systems: list[System]) -> list[Json]:
    out: list[Json] = []
    for s in systems:
        if s.goal_ms is None:
            continue
        p50 = (results.get(s.name) or {}).get("latency_ms", {}).get("p50")
        status = "pending" if p50 is None else ("met" if p50 <= s.goal_ms else "NOT met")
        out.append({"target": f"{s.label} {s.store.split(' ')[0]}: p50 ≤ {s.goal_ms:g} ms",
                    "value": p50, "unit": "ms", "status": status})  # fmt: skip
    idle = (results.get("handrail_sqlite") or {}).get("idle")
    if idle:
        wk = idle.get("wakeups_per_s")
        ok = wk is not None and wk <= NO_BUSY_POLL_WAKEUPS
        out.append({
            "target": f"handrail SQLite: no busy poll (idle worker ≤ {NO_BUSY_POLL_WAKEUPS:g} "
            "context switches/s)",
            "value": wk, "unit": "switches/s", "status": "met" if ok else "NOT met",
            "cpu_ms_per_s": idle.get("cpu_ms_per_s"),
        })  # fmt: skip
    return out


def render(res: Json, systems: list[System]) -> str:
    p = res["params"]
    m = res["machine"]
    lines: list[str] = []
    w = lines.append
    w(f"# Approval latency — {res['started']}")
    w("")
    pg_version = res.get("postgres_version") or "—"
    pg_at = res.get("postgres_at") or "—"
    w(
        f"{m['platform']}, {m['cpus']} CPUs, Python {m['python']}, SQLite {m['sqlite']}, "
        f"PostgreSQL {pg_version} at {pg_at}.  "
    )
    la = m.get("loadavg_start"), m.get("loadavg_end")
    if all(la):
        w(f"1-min load average: {la[0][0]:.2f} at start, {la[1][0]:.2f} at end.  ")
    w("Peers: " + ", ".join(f"{k} {v}" for k, v in res["peer_versions"].items()) + ".  ")
    g = res.get("git") or {}
    if g.get("head"):
        dirty = g.get("src_uncommitted") or 0
        w(
            f"handrail at {g['head']}"
            + (f" + {dirty} uncommitted file(s) under src/" if dirty else "")
            + ".  "
        )
    w(
        f"{p['decisions']} decisions per system ({p['slow_decisions']} for DBOS at its 1 s "
        f"default poll), after {p['warmup']} uncounted, in {p['rounds']} interleaved rounds; "
        f"the waiting side idle {p['settle'] * 1e3:g} ms before each decision (plus a random "
        f"part of the poll interval for DBOS on SQLite); idle CPU and context switches of "
        f"the waiting process (all threads, /proc) over {p['idle_seconds']:g} s with one "
        f"task waiting."
    )
    w("")
    w("Latency: from just before the decision call (in another process than the waiting "
      "one, except LangGraph) to the first line of the gated step.")  # fmt: skip
    w("")
    w(
        "| system | store | how the waiting side learns of the decision | n | p50 ms | p99 ms "
        "| mean ms | max ms | decision call p50 ms | idle CPU ms/s | idle ctx switches/s | goal |"
    )
    w("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for s in systems:
        r = res["systems"].get(s.name)
        if r is None:
            continue
        lat = r.get("latency_ms")
        if lat is None:
            why = r.get("reason") or r.get("error") or r.get("status")
            w(f"| {s.label} | {s.store} | {s.woken_by} | — | {r.get('status')}: {why} "
              "| | | | | | | |")  # fmt: skip
            continue
        idle = r.get("idle") or {}
        cpu = _f(idle.get("cpu_ms_per_s"), 2) if idle else "— (no worker)"
        wk = _f(idle.get("wakeups_per_s"), 1) if idle else "—"
        goal = "—"
        if s.goal_ms is not None:
            ok = lat["p50"] <= s.goal_ms
            goal = f"p50 ≤ {s.goal_ms:g} ms: {'met' if ok else 'NOT met'}"
        w(
            f"| {s.label} | {s.store} | {s.woken_by} | {lat['n']} | {_f(lat['p50'], 2)} "
            f"| {_f(lat['p99'], 2)} | {_f(lat['mean'], 2)} | {_f(lat['max'], 2)} "
            f"| {_f(r['decide_call_ms']['p50'], 2)} | {cpu} | {wk} | {goal} |"
        )
    w("")
    lg = res["systems"].get("langgraph", {}).get("after_interrupt_ms")
    if lg:
        w(
            f"LangGraph: the code right after `interrupt()` in the same node ran at p50 "
            f"{lg['p50']:.2f} ms, p99 {lg['p99']:.2f} ms; the row above is the next node "
            "(after the resumed node's superstep checkpoint)."
        )
        w("")
    w("## Targets (handrail)")
    w("")
    w("| target | measured | status |")
    w("|---|---:|---|")
    for g in res["goals"]:
        extra = ""
        if g.get("cpu_ms_per_s") is not None:
            extra = f" ({g['cpu_ms_per_s']:.2f} ms CPU/s)"
        w(f"| {g['target']} | {_f(g['value'], 2)} {g['unit']}{extra} | {g['status']} |")
    w("")
    for s in systems:
        r = res["systems"].get(s.name) or {}
        bd = r.get("breakdown_ms")
        if not bd:
            continue
        w(f"### Where the time goes: {s.label}, {s.store} ({r['breakdown_n']} decisions)")
        w("")
        w("Consecutive parts: per decision and in the mean they add up to the total.")
        w("")
        w("| part | p50 ms | p90 ms | mean ms |")
        w("|---|---:|---:|---:|")
        for k, v in bd.items():
            if k in BREAKDOWN:
                w(f"| {BREAKDOWN[k]} | {v['p50']:.3f} | {v['p90']:.3f} | {v['mean']:.3f} |")
        total = r["latency_ms"]
        w(f"| **total (t0 to the tool's first line)** | {total['p50']:.3f} | "
          f"{total['p90']:.3f} | {total['mean']:.3f} |")  # fmt: skip
        aside = bd.get("aside_decide_commit")
        if aside:
            w("")
            w(
                f"The decision's store call alone (`append_unleased`: its transaction, commit "
                f"and, on SQLite, the signal): p50 {aside['p50']:.3f} ms, p90 "
                f"{aside['p90']:.3f} ms."
            )
        w("")
    notes = [
        f"- {n}: {r.get('status')}: {r.get('reason') or r.get('error')}"
        for n, r in res["systems"].items()
        if r.get("status") != "ok"
    ]
    if notes:
        w("## Notes")
        w("")
        lines.extend(notes)
        w("")
    return "\n".join(lines)


def git_state() -> Json:
    """The commit handrail was measured at, and how many files under src/ differ from it."""
    root = str(Path(THIS).parent.parent)

    def git(*argv: str) -> str:
        proc = subprocess.run(["git", "-C", root, *argv], capture_output=True, text=True)
        return proc.stdout if proc.returncode == 0 else ""

    try:
        head = git("rev-parse", "--short", "HEAD").strip()
        dirty = git("status", "--porcelain", "--", "src").splitlines()
    except OSError:
        return {}
    return {"head": head or None, "src_uncommitted": len(dirty)}


def main_parent(args: argparse.Namespace) -> int:
    params = Params(
        decisions=args.decisions,
        slow_decisions=args.slow_decisions,
        rounds=args.rounds,
        settle=args.settle,
        idle_seconds=args.idle,
        handrail_poll=args.handrail_poll,
    )
    if args.quick:
        params = Params(decisions=20, slow_decisions=4, warmup=2, rounds=2, idle_seconds=1.0)
    systems = systems_for(params)
    if args.only:
        wanted = args.only.split(",")
        unknown = [x for x in wanted if x not in {s.name for s in systems}]
        if unknown:
            raise SystemExit(
                f"unknown system(s) {unknown}; choose from {[s.name for s in systems]}"
            )
        systems = [s for s in systems if s.name in wanted]
    log_dir = RESULTS_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    res: Json = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine_info(),
        "params": asdict(params),
        "peer_versions": {p: _version(p) for p in PEER_PACKAGES},
        "handrail_version": _version("handrail"),
        "git": git_state(),
    }
    res["machine"]["loadavg_start"] = os.getloadavg()
    t_start = time.perf_counter()
    admin = None if args.pg == "none" else args.pg
    with temp_root(args.tmp) as root, scratch_databases(admin) as pg:
        res["postgres_version"] = pg.get("server_version")
        if admin is not None and "error" not in pg:
            res["postgres_at"] = urlsplit(admin).hostname or "local socket"
        res["systems"] = run_all(systems, params, root, log_dir, pg)
    res["total_wall_s"] = time.perf_counter() - t_start
    res["machine"]["loadavg_end"] = os.getloadavg()
    res["goals"] = goals(res["systems"], systems)
    report = render(res, systems)
    print(report)
    print(f"(total {res['total_wall_s']:.0f} s; logs in {log_dir})")
    (RESULTS_DIR / "approvals.json").write_text(json.dumps(res, indent=2, default=str))
    (RESULTS_DIR / "approvals.md").write_text(report + "\n")
    print(f"results: {RESULTS_DIR / 'approvals.json'}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    d = Params()
    ap.add_argument("--decisions", type=int, default=d.decisions)
    ap.add_argument("--slow-decisions", type=int, default=d.slow_decisions,
                    help="decisions for DBOS at its default 1 s poll")  # fmt: skip
    ap.add_argument("--rounds", type=int, default=d.rounds)
    ap.add_argument("--settle", type=float, default=d.settle,
                    help="seconds the waiting side idles before each decision")  # fmt: skip
    ap.add_argument("--idle", type=float, default=d.idle_seconds, help="idle CPU window (s)")
    ap.add_argument("--handrail-poll", type=float, default=d.handrail_poll,
                    help="the handrail worker's poll_interval (fallback only)")  # fmt: skip
    ap.add_argument(
        "--pg",
        default=DEFAULT_PG_ADMIN,
        help="admin URL used to create/drop the scratch databases, or 'none'",
    )
    ap.add_argument("--only", help="comma-separated subset of the systems")
    ap.add_argument("--quick", action="store_true", help="smoke run (numbers not valid)")
    ap.add_argument("--tmp", help="directory for temporary databases (default: system tmp)")
    # internal: child modes
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    ap.add_argument("--log-dir", help=argparse.SUPPRESS)
    ap.add_argument("--pg-urls", help=argparse.SUPPRESS)
    ap.add_argument("--handrail-worker", help=argparse.SUPPRESS)
    ap.add_argument("--dbos-worker", help=argparse.SUPPRESS)
    ap.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--poll", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.handrail_worker:
        handrail_worker_main(args.handrail_worker, args.fd, args.poll)
    if args.dbos_worker:
        dbos_worker_main(args.dbos_worker, args.fd, args.poll)
    if args.serve:
        serve(
            args.serve,
            Params(**json.loads(args.params)),
            Path(args.tmp),
            Path(args.log_dir),
            json.loads(args.pg_urls),
        )
    return main_parent(args)


if __name__ == "__main__":
    sys.exit(main())
