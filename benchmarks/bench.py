#!/usr/bin/env python3
"""handrail benchmarks: one run, one machine, one table.

Measures, each system in its own subprocess (so imports and peak RSS don't leak between
them), every measurement repeated and reported as a median:

1. the raw SQLite WAL commit floor (``BEGIN IMMEDIATE; INSERT ~200 B; COMMIT``) for
   ``synchronous=FULL`` and ``synchronous=NORMAL``;
2. per-step overhead: one workflow of 1000 sequential trivial steps, for handrail (the
   default App, which writes an audit record per tool-call attempt, and ``App(audit=False)``
   next to it, so the audit's cost per step shows) and its peers (DBOS Transact on SQLite,
   LangGraph with ``SqliteSaver`` and ``durability="sync"``);
3. throughput: 200 workflows of 10 trivial steps, several threads;
4. handrail only: resume replay after a SIGKILL near the end of a 1000-step task,
   ``import handrail`` time and the peak RSS of a process running a 1000-step workflow.

Everything here is bound by fsync latency, which on a shared VM disk drifts by several
times within a minute. So by default the systems are *interleaved*: every system is a
long-lived subprocess (``--serve``) that the parent drives in rounds, each round measuring
the floor and every system once, back to back, in a rotating order; ratios are taken
within a round and their median reported. ``--sequential`` instead runs each
``bench_<system>()`` to completion in its own subprocess, one after the other.

Run it through ``benchmarks/run`` (which builds ``benchmarks/.venv``). The parent process
only orchestrates: it imports none of the systems under test. Results go to stdout as a
markdown table and to ``benchmarks/results/latest.json``.
"""

import argparse
import contextlib
import errno
import importlib.metadata
import json
import os
import platform
import queue
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TypedDict

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
THIS = str(Path(__file__).resolve())

Json = dict[str, Any]

PEER_PACKAGES = ("dbos", "langgraph", "langgraph-checkpoint", "langgraph-checkpoint-sqlite")

# Variables that could make a peer talk to a hosted service (DBOS Conductor / Cloud,
# LangSmith tracing, OpenTelemetry exporters), or point handrail elsewhere. Dropped from
# every child's environment.
_SCRUB_PREFIXES = ("DBOS_", "DBOS__", "LANGSMITH_", "LANGCHAIN_", "OTEL_", "HANDRAIL_")


@dataclass(frozen=True)
class Params:
    steps: int = 1000  # steps in the per-step workflow
    tp_workflows: int = 200  # workflows in the throughput run
    tp_steps: int = 10  # steps per throughput workflow
    concurrency: int = 8  # worker / client threads in the throughput run
    repeats: int = 5  # rounds of the per-step measurement (and resume repeats)
    tp_repeats: int = 3  # rounds of the throughput measurement
    floor_ops: int = 2000  # commits per §1 floor sample (one sample per round)
    adjacent_floor_ops: int = 300  # FULL commits timed right before each per-step sample
    import_runs: int = 7
    child_timeout: float = 300.0


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def summary(samples: list[float]) -> Json:
    return {"median": median(samples), "samples": samples}


# --------------------------------------------------------------------------------------
# Network guard: installed in every child so a peer that tries to reach the network fails
# loudly (and is counted) instead of silently phoning home.
# --------------------------------------------------------------------------------------

NET_ATTEMPTS: list[str] = []


def install_network_guard() -> None:
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def refuse(what: str) -> OSError:
        NET_ATTEMPTS.append(what)
        return OSError(errno.ENETUNREACH, f"network disabled by handrail benchmark: {what}")

    def connect(self: socket.socket, address: Any) -> None:
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        raise refuse(f"connect {address!r}")

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family == socket.AF_UNIX:
            return real_connect_ex(self, address)
        NET_ATTEMPTS.append(f"connect_ex {address!r}")
        return errno.ENETUNREACH

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in (None, "localhost", "127.0.0.1", "::1"):
            return real_getaddrinfo(host, *args, **kwargs)
        raise refuse(f"getaddrinfo {host!r}")

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = getaddrinfo


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    env.update(
        {
            "LANGSMITH_TRACING": "false",
            "LANGCHAIN_TRACING_V2": "false",
            "OTEL_SDK_DISABLED": "true",
        }
    )
    return env


# --------------------------------------------------------------------------------------
# 1. Raw SQLite WAL commit floor
# --------------------------------------------------------------------------------------


def _floor_round(path: Path, synchronous: str, ops: int) -> float:
    """Mean µs of one ``BEGIN IMMEDIATE; INSERT; COMMIT`` over ``ops`` commits."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, payload BLOB)")
        payload = os.urandom(200)
        for _ in range(50):  # warm the page cache and the WAL file
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (payload) VALUES (?)", (payload,))
            conn.execute("COMMIT")
        t0 = time.perf_counter()
        for _ in range(ops):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (payload) VALUES (?)", (payload,))
            conn.execute("COMMIT")
        return (time.perf_counter() - t0) / ops * 1e6
    finally:
        conn.close()


def bench_sqlite_floor(tmpdir: Path, params: Params) -> Json:
    out: Json = {"sqlite_version": sqlite3.sqlite_version}
    for sync in ("FULL", "NORMAL"):
        samples = [
            _floor_round(tmpdir / f"floor-{sync}-{r}.db", sync, params.floor_ops)
            for r in range(params.repeats)
        ]
        out[sync] = summary(samples)
    return out


# --------------------------------------------------------------------------------------
# Workflow systems: a driver per system. The same drivers serve the interleaved run
# (``--serve`` children) and the sequential one (``bench_<system>()``).
# --------------------------------------------------------------------------------------


class Driver(Protocol):
    def open(self, tmpdir: Path) -> None: ...

    def chain(self, n: int) -> None:
        """Run one workflow of ``n`` sequential trivial steps to completion."""

    def throughput(self, workflows: int, steps: int, concurrency: int) -> None:
        """Run ``workflows`` workflows of ``steps`` steps each, concurrently, to completion."""

    def describe(self) -> Json:
        """Configuration facts (durability, versions) checked at run time."""

    def close(self) -> None: ...


def warm_up(driver: Driver, params: Params) -> None:
    """Schema creation, caches, lazy imports and thread pools, outside any timing."""
    driver.chain(20)
    driver.throughput(10, params.tp_steps, params.concurrency)


def time_chain(driver: Driver, n: int) -> float:
    """µs per step of one ``n``-step workflow (then, untimed, the driver's ``settle()``
    if it has one: handrail seals the audit drafts the workflow left, and times that on
    its own, so no later measurement pays for them)."""
    t0 = time.perf_counter()
    driver.chain(n)
    us = (time.perf_counter() - t0) / n * 1e6
    settle = getattr(driver, "settle", None)
    if settle is not None:
        settle()
    return us


def time_throughput(driver: Driver, params: Params) -> float:
    """Workflows per second over ``tp_workflows`` workflows."""
    t0 = time.perf_counter()
    driver.throughput(params.tp_workflows, params.tp_steps, params.concurrency)
    return params.tp_workflows / (time.perf_counter() - t0)


def measure_workflows(driver: Driver, tmpdir: Path, params: Params) -> Json:
    """The sequential measurement of one system (``--sequential``)."""
    driver.open(tmpdir)
    try:
        warm_up(driver, params)
        per_step: list[float] = []
        floor: list[float] = []
        for r in range(params.repeats):
            floor_db = tmpdir / f"adjacent-floor-{r}.db"
            floor.append(_floor_round(floor_db, "FULL", params.adjacent_floor_ops))
            per_step.append(time_chain(driver, params.steps))
        wps = [time_throughput(driver, params) for _ in range(params.tp_repeats)]
        return {
            "per_step_us": summary(per_step),
            "adjacent_floor_full_us": summary(floor),
            "throughput_wps": summary(wps),
            "config": driver.describe(),
        }
    finally:
        driver.close()


def _noop(i: int) -> int:
    return i


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# ---- DBOS Transact -------------------------------------------------------------------


class DbosDriver:
    """DBOS Transact with its SQLite system database.

    DBOS leaves SQLite's journal mode alone, so as shipped its system database uses the
    rollback journal (``journal_mode=DELETE``) with SQLite's default ``synchronous=FULL``:
    fully durable. ``wal=True`` switches the file to WAL before DBOS opens it (the
    journal mode is persistent), keeping ``synchronous=FULL``: the fairest like-for-like.
    No conductor key, no OTLP, no DBOS__* environment, so DBOS stays offline.
    """

    def __init__(self, *, wal: bool) -> None:
        self.wal = wal
        self._chain: Callable[[int], int] | None = None
        self._pragmas: Json = {}

    def open(self, tmpdir: Path) -> None:
        from dbos import DBOS, DBOSConfig
        from dbos._dbos import _get_dbos_instance

        db = tmpdir / "dbos.sqlite"
        if self.wal:
            with contextlib.closing(sqlite3.connect(db)) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
        config: DBOSConfig = {
            "name": "handrail-bench",
            "system_database_url": f"sqlite:///{db}",
            "enable_otlp": False,
            "log_level": "WARNING",
        }
        DBOS(config=config)

        @DBOS.step()
        def noop(i: int) -> int:
            return _noop(i)

        @DBOS.workflow()
        def chain(n: int) -> int:
            for i in range(n):
                noop(i)
            return n

        DBOS.launch()
        self._chain = chain
        # Read the pragmas back through DBOS's own engine (its connections, its settings).
        import sqlalchemy as sa

        engine = _get_dbos_instance()._sys_db.engine
        with engine.connect() as sa_conn:
            self._pragmas = {
                "journal_mode": sa_conn.execute(sa.text("PRAGMA journal_mode")).scalar(),
                "synchronous": sa_conn.execute(sa.text("PRAGMA synchronous")).scalar(),
            }

    def chain(self, n: int) -> None:
        assert self._chain is not None
        assert self._chain(n) == n

    def throughput(self, workflows: int, steps: int, concurrency: int) -> None:
        chain = self._chain
        assert chain is not None
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(chain, [steps] * workflows))
        assert results == [steps] * workflows

    def describe(self) -> Json:
        return {
            "version": _version("dbos"),
            "sqlalchemy": _version("sqlalchemy"),
            "sqlite_pragmas": self._pragmas,  # synchronous: 2 = FULL, 1 = NORMAL
            "per_step": "@DBOS.workflow calling a @DBOS.step 1000 times",
            "throughput": "client thread pool calling the @DBOS.workflow directly",
        }

    def close(self) -> None:
        from dbos import DBOS

        DBOS.destroy(destroy_registry=True)


# ---- LangGraph -----------------------------------------------------------------------


class _LoopState(TypedDict):
    i: int
    n: int


class LangGraphDriver:
    """LangGraph with ``SqliteSaver`` (WAL; SQLite's default ``synchronous=FULL``).

    ``api="graph"``: a ``StateGraph`` whose one node loops ``n`` times through a
    conditional edge; every node run is a superstep and ``durability="sync"`` makes the
    loop wait for that superstep's checkpoint before starting the next one.
    ``api="functional"``: an ``@entrypoint`` calling an ``@task`` ``n`` times; each task's
    result is written to the checkpointer's ``writes`` table (submitted to a background
    executor; ``sync`` only blocks on the superstep checkpoint at the end).
    Each workflow is a fresh ``thread_id``. Tracing env vars are forced off.
    """

    def __init__(self, *, api: str) -> None:
        assert api in ("graph", "functional")
        self.api = api
        self._conn: sqlite3.Connection | None = None
        self._invoke: Callable[[int, str], int] | None = None
        self._counter = 0
        self._pragmas: Json = {}

    def open(self, tmpdir: Path) -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(tmpdir / "langgraph.sqlite", check_same_thread=False)
        self._conn = conn
        saver = SqliteSaver(conn)
        saver.setup()
        self._pragmas = {
            "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
            "synchronous": conn.execute("PRAGMA synchronous").fetchone()[0],
        }
        if self.api == "graph":
            self._invoke = self._build_graph(saver)
        else:
            self._invoke = self._build_functional(saver)

    @staticmethod
    def _build_graph(saver: Any) -> Callable[[int, str], int]:
        from langgraph.graph import END, START, StateGraph

        def step(state: _LoopState) -> Json:
            return {"i": _noop(state["i"]) + 1}

        def route(state: _LoopState) -> str:
            return "step" if state["i"] < state["n"] else END

        builder = StateGraph(_LoopState)
        builder.add_node("step", step)
        builder.add_edge(START, "step")
        builder.add_conditional_edges("step", route)
        graph = builder.compile(checkpointer=saver)

        def invoke(n: int, thread_id: str) -> int:
            config: Any = {"configurable": {"thread_id": thread_id}, "recursion_limit": n + 10}
            out = graph.invoke({"i": 0, "n": n}, config, durability="sync")
            return int(out["i"])

        return invoke

    @staticmethod
    def _build_functional(saver: Any) -> Callable[[int, str], int]:
        from langgraph.func import entrypoint, task

        @task
        def noop(i: int) -> int:
            return _noop(i)

        @entrypoint(checkpointer=saver)
        def chain(n: int) -> int:
            for i in range(n):
                noop(i).result()
            return n

        def invoke(n: int, thread_id: str) -> int:
            config: Any = {"configurable": {"thread_id": thread_id}}
            out: Any = chain.invoke(n, config, durability="sync")
            return int(out)

        return invoke

    def _thread_ids(self, k: int) -> list[str]:
        start = self._counter
        self._counter += k
        return [f"bench-{i}" for i in range(start, start + k)]

    def chain(self, n: int) -> None:
        assert self._invoke is not None
        assert self._invoke(n, self._thread_ids(1)[0]) == n

    def throughput(self, workflows: int, steps: int, concurrency: int) -> None:
        invoke = self._invoke
        assert invoke is not None
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(lambda t: invoke(steps, t), self._thread_ids(workflows)))
        assert results == [steps] * workflows

    def describe(self) -> Json:
        return {
            "version": _version("langgraph"),
            "checkpoint_sqlite": _version("langgraph-checkpoint-sqlite"),
            "checkpoint": _version("langgraph-checkpoint"),
            "api": self.api,
            "durability": "sync",
            "sqlite_pragmas": self._pragmas,
            "throughput": "client thread pool, one thread_id per workflow, shared SqliteSaver",
        }

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


# ---- handrail ------------------------------------------------------------------------
# Kept apart from the peers: the handrail core may not have landed yet, in which case
# bench_handrail() reports "unavailable" instead of failing the run.


def handrail_missing() -> str | None:
    """None when the handrail API this benchmark uses is importable, else why not."""
    try:
        import handrail
    except Exception as exc:  # an ImportError, or the half-written core raising
        return f"import handrail failed: {exc!r}"
    missing = [name for name in ("App", "TaskContext") if not hasattr(handrail, name)]
    if missing:
        return f"handrail has no {', '.join(missing)} yet (core not landed)"
    return None


def make_handrail_app(
    db: Path, *, worker_id: str | None = None, kill_at: int = -1, audit: bool = True
) -> tuple[Any, Any]:
    """Open an App with the benchmark's tool and workflow registered; return (app, chain).

    Every process (benchmark, crash child, resumer) builds its app through this function
    so that the registered names are identical. ``kill_at`` >= 0 makes the tool SIGKILL
    its own process when called with that argument (before returning). ``audit=True`` is
    the App's default (every tool-call attempt writes an audit record in the step's
    transaction); ``audit=False`` passes ``App(..., audit=False)``.
    """
    import handrail

    kwargs: dict[str, Any] = {} if audit else {"audit": False}
    if worker_id is not None:
        kwargs["worker_id"] = worker_id
    app = handrail.App(str(db), **kwargs)

    @app.tool(idempotent=True)
    def noop(i: int) -> int:
        if i == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return i

    @app.workflow
    def chain(ctx: handrail.TaskContext, n: int) -> int:
        for i in range(n):
            noop(i)
        return n

    return app, chain


def handle_task_id(handle: Any) -> str:
    for attr in ("task_id", "id"):
        value = getattr(handle, attr, None)
        if value is not None:
            return str(value)
    raise AttributeError(f"cannot find the task id on {handle!r}")


class HandrailDriver:
    """handrail on a SQLite file with its default (full) durability: WAL, synchronous=FULL.

    ``audit=True`` is the default App: every tool-call attempt also writes its audit record,
    as a draft (``handrail_audit_drafts``: the compliance view, raw payloads not sealed
    yet), in the transaction of the journal event that ends the step; the audit log seals
    drafts into ``handrail_audit_records`` later (the worker's sequencer, or any read).
    ``audit=False`` opens ``App(path, audit=False)``.
    """

    def __init__(self, *, audit: bool = True) -> None:
        self.audit = audit
        self._sealing: list[tuple[int, float]] = []  # (drafts sealed, seconds) per settle
        self._app: Any = None
        self._chain: Any = None
        self._db: Path | None = None

    def open(self, tmpdir: Path) -> None:
        self._db = tmpdir / "handrail.db"
        self._app, self._chain = make_handrail_app(self._db, audit=self.audit)

    def chain(self, n: int) -> None:
        handle = self._app.run(self._chain, n)
        assert handle.result() == n

    def throughput(self, workflows: int, steps: int, concurrency: int) -> None:
        # Workers run while the tasks arrive, as in production: enqueuing shares commits
        # with the workers' writes (group commit) instead of paying one fsync each upfront.
        app = self._app
        with app.worker(concurrency=concurrency):
            handles = [app.start(self._chain, steps) for _ in range(workflows)]
            for handle in handles:
                assert handle.result(timeout=120) == steps

    def describe(self) -> Json:
        return {
            "version": _version("handrail"),
            "store": type(self._app.store).__name__ if self._app is not None else None,
            # App(path) opens SQLite in WAL mode with synchronous=FULL unless the URL says
            # ?synchronous=NORMAL; read back what the store was opened with, if it says.
            "synchronous": getattr(getattr(self._app, "store", None), "_synchronous", None),
            "audit": getattr(self._app, "auditor", None) is not None,
            "audit_rows": self.audit_rows(),
            "sealing": self.seal_drafts(),
            "throughput": "app.worker(concurrency=C) running, then app.start() x N",
        }

    def settle(self) -> None:
        """After a timed per-step run (untimed): seal the audit drafts it left. An inline
        ``app.run()`` has no worker, so no sequencer sealed them meanwhile; left alone, the
        next throughput round's sequencer would seal them inside its timing. The time it
        takes is what sealing costs per record, off the step's path."""
        if self._app is None or getattr(self._app, "auditor", None) is None:
            return
        log = self._app.store.audit_log()
        t0 = time.perf_counter()
        sealed = log.seal_drafts()
        if sealed:
            self._sealing.append((sealed, time.perf_counter() - t0))

    def seal_drafts(self) -> Json:
        """What sealing the drafts of the per-step runs cost (see :meth:`settle`)."""
        if not self._sealing:
            return {}
        sealed = sum(n for n, _ in self._sealing)
        seconds = sum(t for _, t in self._sealing)
        return {
            "sealed": sealed,
            "seconds": seconds,
            "us_per_record": seconds * 1e6 / sealed,
            "us_per_record_rounds": [t * 1e6 / n for n, t in self._sealing],
        }

    def audit_rows(self) -> Json:
        """Rows in the audit tables so far (proof that the audited row writes records)."""
        if self._db is None or not self._db.exists():
            return {}
        out: Json = {}
        with contextlib.closing(sqlite3.connect(self._db)) as conn:
            for table in (
                "handrail_audit_drafts",
                "handrail_audit_records",
                "handrail_audit_checkpoints",
            ):
                with contextlib.suppress(sqlite3.Error):
                    out[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return out

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


def handrail_crash_child(db: Path, steps: int, kill_at: int, id_file: Path) -> None:
    """Start a task and drive it until the tool SIGKILLs this process at ``kill_at``."""
    app, chain = make_handrail_app(db, worker_id="bench-resume", kill_at=kill_at)
    handle = app.start(chain, steps)
    id_file.write_text(handle_task_id(handle))
    app.execute(handle_task_id(handle)).result()
    raise SystemExit("the crash child was not killed")  # pragma: no cover


def bench_handrail_resume(tmpdir: Path, params: Params) -> Json:
    replay_ms: list[float] = []
    open_ms: list[float] = []
    kill_at = params.steps - 2  # the 999th of 1000 steps, killed while it runs
    for r in range(params.repeats):
        db = tmpdir / f"resume-{r}.db"
        id_file = tmpdir / f"resume-{r}.task"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--handrail-crash",
            str(db),
            str(params.steps),
            str(kill_at),
            str(id_file),
        ]
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=params.child_timeout,
            check=False,
        )
        if proc.returncode != -signal.SIGKILL:
            raise RuntimeError(
                f"crash child exited {proc.returncode}, not by SIGKILL:\n{proc.stderr[-3000:]}"
            )
        task_id = id_file.read_text()
        t0 = time.perf_counter()
        app, _ = make_handrail_app(db, worker_id="bench-resume")
        t1 = time.perf_counter()
        try:
            handle = app.execute(task_id)
            assert handle.result(timeout=60) == params.steps
            t2 = time.perf_counter()
        finally:
            app.close()
        open_ms.append((t1 - t0) * 1e3)
        replay_ms.append((t2 - t1) * 1e3)
    return {
        "replay_ms": summary(replay_ms),
        "app_open_ms": summary(open_ms),
        "killed_at_step": kill_at + 1,
        "steps": params.steps,
    }


def bench_handrail(tmpdir: Path, params: Params) -> Json:
    why = handrail_missing()
    if why is not None:
        return {"status": "unavailable", "reason": why}
    out = measure_workflows(HandrailDriver(), tmpdir, params)
    out["resume"] = bench_handrail_resume(tmpdir, params)
    return out


def bench_handrail_noaudit(tmpdir: Path, params: Params) -> Json:
    why = handrail_missing()
    if why is not None:
        return {"status": "unavailable", "reason": why}
    return measure_workflows(HandrailDriver(audit=False), tmpdir, params)


# ---- peers, standalone ---------------------------------------------------------------


def bench_dbos(tmpdir: Path, params: Params) -> Json:
    return measure_workflows(DbosDriver(wal=False), tmpdir, params)


def bench_dbos_wal(tmpdir: Path, params: Params) -> Json:
    return measure_workflows(DbosDriver(wal=True), tmpdir, params)


def bench_langgraph_graph(tmpdir: Path, params: Params) -> Json:
    return measure_workflows(LangGraphDriver(api="graph"), tmpdir, params)


def bench_langgraph_functional(tmpdir: Path, params: Params) -> Json:
    return measure_workflows(LangGraphDriver(api="functional"), tmpdir, params)


# ---- registry ------------------------------------------------------------------------

FLOOR = "sqlite_floor"

BENCHES: dict[str, Callable[[Path, Params], Json]] = {
    FLOOR: bench_sqlite_floor,
    "handrail": bench_handrail,
    "handrail_noaudit": bench_handrail_noaudit,
    "dbos": bench_dbos,
    "dbos_wal": bench_dbos_wal,
    "langgraph_graph": bench_langgraph_graph,
    "langgraph_functional": bench_langgraph_functional,
}

DRIVERS: dict[str, Callable[[], Driver]] = {
    "handrail": HandrailDriver,
    "handrail_noaudit": lambda: HandrailDriver(audit=False),
    "dbos": lambda: DbosDriver(wal=False),
    "dbos_wal": lambda: DbosDriver(wal=True),
    "langgraph_graph": lambda: LangGraphDriver(api="graph"),
    "langgraph_functional": lambda: LangGraphDriver(api="functional"),
}

# Import time and peak RSS are measured for these, each in fresh processes; what
# "import <system>" means for each:
IMPORTS: dict[str, str] = {
    "handrail": "import handrail; handrail.App",
    "dbos": "import dbos; dbos.DBOS",
    "langgraph_graph": "import langgraph.graph, langgraph.checkpoint.sqlite",
}

# Peak RSS is measured for these (import time only for those in IMPORTS).
FOOTPRINTS = ("handrail", "handrail_noaudit", "dbos", "langgraph_graph")

LABELS: dict[str, str] = {
    "handrail": "handrail (SQLite WAL, synchronous=FULL; audit record per step, the default)",
    "handrail_noaudit": "handrail, App(audit=False) (no audit record)",
    "dbos": "DBOS Transact (SQLite as shipped: rollback journal, synchronous=FULL)",
    "dbos_wal": "DBOS Transact (SQLite switched to WAL, synchronous=FULL)",
    "langgraph_graph": 'LangGraph StateGraph + SqliteSaver (durability="sync")',
    "langgraph_functional": 'LangGraph @entrypoint/@task + SqliteSaver (durability="sync")',
}


# --------------------------------------------------------------------------------------
# Child-process entry points
# --------------------------------------------------------------------------------------


def vm_hwm_kib() -> int:
    """This process's own peak RSS (VmHWM), in KiB.

    Not ru_maxrss: on Linux a process's ru_maxrss starts from the RSS its parent had when
    it forked (the kernel carries the pre-exec high-water mark over), so a child of this
    ~20 MiB orchestrator could never report less than that. VmHWM belongs to the new
    address space only.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # non-Linux fallback


VM_HWM_MARK = "BENCH_VM_HWM_KIB="


def child_trailer() -> Json:
    return {"network_attempts": list(NET_ATTEMPTS), "child_peak_rss_mib": vm_hwm_kib() / 1024}


def run_child(name: str, params: Params, out: Path, tmp_root: Path) -> None:
    """``--sequential``: run ``bench_<name>()`` to completion, write its result to ``out``."""
    install_network_guard()
    tmpdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=tmp_root))
    try:
        result = BENCHES[name](tmpdir, params)
        result.setdefault("status", "ok")
    except Exception as exc:
        result = {"status": "error", "error": repr(exc), "traceback": traceback.format_exc()}
    result.update(child_trailer())
    out.write_text(json.dumps(result, indent=2))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: some peers leave non-daemon threads behind


class Session:
    """What a ``--serve`` child does for each request of the parent."""

    def __init__(self, name: str, params: Params, tmpdir: Path) -> None:
        self.name = name
        self.params = params
        self.tmpdir = tmpdir
        self.driver: Driver | None = None
        self._n = 0

    def start(self) -> Json:
        if self.name == FLOOR:
            return {"status": "ok", "config": {"sqlite_version": sqlite3.sqlite_version}}
        if self.name.startswith("handrail") and (why := handrail_missing()) is not None:
            return {"status": "unavailable", "reason": why}
        driver = DRIVERS[self.name]()
        driver.open(self.tmpdir)
        self.driver = driver
        warm_up(driver, self.params)
        return {"status": "ok", "config": driver.describe()}

    def handle(self, request: Json) -> Json:
        op = request["op"]
        if op == "floor":
            self._n += 1
            path = self.tmpdir / f"floor-{request['sync']}-{self._n}.db"
            return {"us": _floor_round(path, request["sync"], request["ops"])}
        assert self.driver is not None
        if op == "chain":
            return {"us": time_chain(self.driver, request["n"])}
        if op == "throughput":
            return {"wps": time_throughput(self.driver, self.params)}
        if op == "describe":
            return {"config": self.driver.describe()}
        if op == "resume" and self.name == "handrail":
            return bench_handrail_resume(self.tmpdir, self.params)
        raise ValueError(f"{self.name}: unknown request {request!r}")

    def close(self) -> None:
        if self.driver is not None:
            self.driver.close()


def serve(name: str, params: Params, tmp_root: Path) -> None:
    """``--serve``: answer the parent's JSON-line requests on stdin until ``quit``.

    Replies go to the original stdout; fd 1 is pointed at stderr (the child's log) so
    that nothing a library prints can corrupt the protocol.
    """
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    install_network_guard()

    def reply(obj: Json) -> None:
        proto.write(json.dumps(obj) + "\n")

    session = Session(name, params, Path(tempfile.mkdtemp(prefix=f"{name}-", dir=tmp_root)))
    try:
        reply(session.start())
    except Exception as exc:
        reply({"status": "error", "error": repr(exc), "traceback": traceback.format_exc()})
    for line in sys.stdin:
        request: Json = json.loads(line)
        if request["op"] == "quit":
            break
        try:
            reply({"ok": True, **session.handle(request)})
        except Exception as exc:
            reply({"ok": False, "error": repr(exc), "traceback": traceback.format_exc()})
    with contextlib.suppress(Exception):
        session.close()
    reply(child_trailer())
    os._exit(0)  # skip interpreter teardown: some peers leave non-daemon threads behind


def run_rss_child(name: str, steps: int, tmp_root: Path) -> None:
    """Open the system, run one ``steps``-step workflow, print its own peak RSS, exit."""
    install_network_guard()
    tmpdir = Path(tempfile.mkdtemp(prefix=f"rss-{name}-", dir=tmp_root))
    driver = DRIVERS[name]()
    driver.open(tmpdir)
    driver.chain(steps)
    driver.close()
    if NET_ATTEMPTS:
        raise SystemExit(f"network attempts: {NET_ATTEMPTS}")
    print(f"{VM_HWM_MARK}{vm_hwm_kib()}", flush=True)
    os._exit(0)


# --------------------------------------------------------------------------------------
# Parent: orchestration
# --------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class ChildError(RuntimeError):
    pass


class Child:
    """Parent-side handle on one ``--serve`` subprocess."""

    def __init__(self, name: str, params: Params, tmp_root: Path, log_dir: Path) -> None:
        self.name = name
        self.result: Json = {}
        self._log: IO[str] = (log_dir / f"{name}.log").open("w")
        argv = [THIS, "--serve", name, "--params", json.dumps(asdict(params))]
        self.proc = subprocess.Popen(
            [sys.executable, *argv, "--tmp", str(tmp_root)],
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
            raise ChildError(f"{self.name}: no answer within {timeout:.0f}s") from None
        if line is None:
            raise ChildError(f"{self.name}: child exited (rc {self.proc.wait()}); see its log")
        answer: Json = json.loads(line)
        return answer

    @property
    def ok(self) -> bool:
        return self.result.get("status") == "ok"

    def call(self, timeout: float, **request: Any) -> Json:
        """Send a request, return the answer; on any failure mark this system as failed."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            answer = self.recv(timeout)
            if not answer.get("ok"):
                raise ChildError(f"{self.name} {request['op']}: {answer.get('error')}")
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
                self.proc.wait(timeout=5)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def rotated(names: list[str], r: int) -> list[str]:
    k = r % len(names) if names else 0
    return names[k:] + names[:k]


def run_interleaved(selected: list[str], params: Params, tmp_root: Path, log_dir: Path) -> Json:
    """Rounds: each one times the floor and every system once, back to back."""
    names = [FLOOR] + [n for n in DRIVERS if n in selected]
    log(f"starting {len(names)} servers: {', '.join(names)}")
    children = {n: Child(n, params, tmp_root, log_dir) for n in names}
    for child in children.values():
        try:
            child.result = child.recv(params.child_timeout)
        except ChildError as exc:
            child.result = {"status": "error", "error": str(exc)}
        log(f"{child.name}: {child.result.get('status')} {child.result.get('reason') or ''}")
    floor = children[FLOOR]
    if not floor.ok:
        raise SystemExit(f"the SQLite floor child failed: {floor.result}")
    systems = [n for n in names[1:] if children[n].ok]
    full: list[float] = []
    normal: list[float] = []
    per_step: dict[str, list[float]] = {n: [] for n in systems}
    adjacent: dict[str, list[float]] = {n: [] for n in systems}
    wps: dict[str, list[float]] = {n: [] for n in systems}
    timeout = params.child_timeout
    try:
        for r in range(params.repeats):
            log(f"per-step round {r + 1}/{params.repeats}")
            full.append(floor.call(timeout, op="floor", sync="FULL", ops=params.floor_ops)["us"])
            normal.append(
                floor.call(timeout, op="floor", sync="NORMAL", ops=params.floor_ops)["us"]
            )
            for n in rotated(systems, r):
                if not children[n].ok:
                    continue
                adj = floor.call(timeout, op="floor", sync="FULL", ops=params.adjacent_floor_ops)
                with contextlib.suppress(ChildError):
                    per_step[n].append(children[n].call(timeout, op="chain", n=params.steps)["us"])
                    adjacent[n].append(adj["us"])
        for r in range(params.tp_repeats):
            log(f"throughput round {r + 1}/{params.tp_repeats}")
            for n in rotated(systems, r):
                if children[n].ok:
                    with contextlib.suppress(ChildError):
                        wps[n].append(children[n].call(timeout, op="throughput")["wps"])
        for n in systems:
            if n.startswith("handrail") and children[n].ok:
                with contextlib.suppress(ChildError):
                    children[n].result["config_end"] = children[n].call(timeout, op="describe")[
                        "config"
                    ]
        if "handrail" in systems and children["handrail"].ok:
            log("handrail resume")
            with contextlib.suppress(ChildError):
                resume = children["handrail"].call(timeout, op="resume")
                resume.pop("ok")
                children["handrail"].result["resume"] = resume
    finally:
        for child in children.values():
            child.quit()
    results: Json = {}
    for n, child in children.items():
        res = child.result
        if n == FLOOR:
            res.update(FULL=summary(full), NORMAL=summary(normal))
        elif per_step.get(n):
            res["per_step_us"] = summary(per_step[n])
            res["adjacent_floor_full_us"] = summary(adjacent[n])
            if wps[n]:
                res["throughput_wps"] = summary(wps[n])
        results[n] = res
    return results


def run_sequential(selected: list[str], params: Params, tmp_root: Path, log_dir: Path) -> Json:
    results: Json = {}
    for name in [n for n in BENCHES if n in selected or n == FLOOR]:
        log(f"{name} ...")
        out = tmp_root / f"{name}.json"
        argv = [THIS, "--child", name, "--params", json.dumps(asdict(params)), "--out", str(out)]
        logfile = log_dir / f"{name}.log"
        with logfile.open("w") as fh, contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                [sys.executable, *argv, "--tmp", str(tmp_root)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=child_env(),
                timeout=params.child_timeout * 2,
                check=False,
            )
        if out.exists():
            results[name] = json.loads(out.read_text())
        else:
            tail = logfile.read_text()[-2000:]
            results[name] = {"status": "error", "error": "child left no result", "log": tail}
        log(f"{name}: {results[name].get('status')}")
    return results


def peak_rss(argv: list[str], timeout: float, logfile: Path) -> Json:
    """Peak RSS of exactly one child process, in MiB: its own VmHWM (printed by the child
    just before it exits) and, for reference, ru_maxrss from os.wait4."""
    with logfile.open("w") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=child_env())
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    text = logfile.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"exited {proc.returncode}: {text.strip()[-500:]}")
    marks = [ln for ln in text.splitlines() if ln.startswith(VM_HWM_MARK)]
    if not marks:
        raise RuntimeError(f"no {VM_HWM_MARK} line in {logfile}")
    return {
        "vm_hwm_mib": int(marks[-1].removeprefix(VM_HWM_MARK)) / 1024,
        "ru_maxrss_mib": usage.ru_maxrss / 1024,  # Linux reports KiB; see vm_hwm_kib()
    }


def import_seconds(statement: str, runs: int, cwd: Path) -> list[float]:
    """Seconds ``statement`` takes in ``runs`` fresh interpreters (start-up excluded), after
    one untimed run that leaves the bytecode cache warm, as after any install."""
    code = f"import time\nt0 = time.perf_counter()\n{statement}\nprint(time.perf_counter() - t0)\n"
    samples: list[float] = []
    for _ in range(runs + 1):
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=child_env(),
            cwd=cwd,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed")
        samples.append(float(proc.stdout.strip().splitlines()[-1]))
    return samples[1:]


def footprints(systems: list[str], params: Params, tmp_root: Path, log_dir: Path) -> Json:
    """Import time and peak RSS of a 1000-step run, each in a fresh process."""
    baseline = (
        "import sqlite3\n"
        "for line in open('/proc/self/status'):\n"
        f"    if line.startswith('VmHWM:'): print('{VM_HWM_MARK}' + line.split()[1])\n"
    )
    out: Json = {
        "baseline": peak_rss([sys.executable, "-c", baseline], 60, log_dir / "rss-baseline.log")
    }
    for name in systems:
        entry: Json = {}
        if name in IMPORTS:  # handrail_noaudit imports the same package: RSS only
            try:
                samples = import_seconds(IMPORTS[name], params.import_runs, tmp_root)
                entry["import_ms"] = summary([s * 1e3 for s in samples])
            except Exception as exc:
                entry["import_error"] = str(exc)
        try:
            argv = [sys.executable, THIS, "--rss-child", name, "--steps", str(params.steps)]
            argv += ["--tmp", str(tmp_root)]
            rss = peak_rss(argv, params.child_timeout, log_dir / f"rss-{name}.log")
            entry["peak_rss_mib"] = rss["vm_hwm_mib"]
            entry["ru_maxrss_mib"] = rss["ru_maxrss_mib"]
        except Exception as exc:
            entry["rss_error"] = str(exc)
        out[name] = entry
    return out


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    limit: float
    unit: str
    higher_is_better: bool = False

    def met(self, value: float | None) -> str:
        if value is None:
            return "pending"
        ok = value >= self.limit if self.higher_is_better else value <= self.limit
        return "met" if ok else "NOT met"


def _get(d: Json, *path: str) -> Any:
    cur: Any = d
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


def _fmt(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def _samples(results: Json, system: str, key: str) -> list[float]:
    found = _get(results, "systems", system, key, "samples")
    return list(found) if found else []


def ratio(results: Json, num: tuple[str, str], den: tuple[str, str]) -> float | None:
    """``num / den`` of two measurements: the median of per-round ratios when the samples
    were taken in the same rounds (interleaved run), else the ratio of the medians."""
    a, b = _samples(results, *num), _samples(results, *den)
    if not a or not b:
        return None
    if results.get("mode") == "interleaved" and len(a) == len(b):
        return median([x / y for x, y in zip(a, b, strict=True)])
    return median(a) / median(b)


def per_step_over_floor(results: Json, system: str) -> float | None:
    """Per-step time over the FULL floor timed just before it (always the same rounds)."""
    a = _samples(results, system, "per_step_us")
    b = _samples(results, system, "adjacent_floor_full_us")
    if not a or len(a) != len(b):
        return None
    return median([x / y for x, y in zip(a, b, strict=True)])


def per_step_speedup(results: Json, peer: str) -> float | None:
    """How many times faster handrail's per step is than ``peer``'s."""
    return ratio(results, (peer, "per_step_us"), ("handrail", "per_step_us"))


def throughput_speedup(results: Json, peer: str) -> float | None:
    return ratio(results, ("handrail", "throughput_wps"), (peer, "throughput_wps"))


HANDRAIL_ROWS = ("handrail", "handrail_noaudit")


def audit_cost(results: Json) -> Json:
    """What the audit record adds: audited handrail against ``App(audit=False)``, per
    round (both rows ran in every round, back to back in the rotating order)."""
    a = _samples(results, "handrail", "per_step_us")
    b = _samples(results, "handrail_noaudit", "per_step_us")
    out: Json = {"per_step_delta_us": None, "per_step_ratio": None, "throughput_ratio": None}
    if a and b:
        if results.get("mode") == "interleaved" and len(a) == len(b):
            out["per_step_delta_us"] = median([x - y for x, y in zip(a, b, strict=True)])
        else:
            out["per_step_delta_us"] = median(a) - median(b)
        out["per_step_ratio"] = ratio(
            results, ("handrail", "per_step_us"), ("handrail_noaudit", "per_step_us")
        )
    out["throughput_ratio"] = ratio(
        results, ("handrail", "throughput_wps"), ("handrail_noaudit", "throughput_wps")
    )
    return out


def evaluate_targets(results: Json) -> list[Json]:
    lg = [
        x
        for x in (
            per_step_speedup(results, "langgraph_graph"),
            per_step_speedup(results, "langgraph_functional"),
        )
        if x is not None
    ]
    rows = [
        (
            Target("per-step ≤ 1.25x FULL commit (paired floor)", 1.25, "x"),
            per_step_over_floor(results, "handrail"),
        ),
        (
            Target("≥ 3x faster per step than LangGraph-sync (its faster API)", 3.0, "x", True),
            min(lg) if lg else None,
        ),
        (
            Target("≥ 6x faster per step than DBOS (as shipped)", 6.0, "x", True),
            per_step_speedup(results, "dbos"),
        ),
        (
            Target("≥ 400 ten-step workflows/s", 400.0, "wf/s", True),
            _get(results, "systems", "handrail", "throughput_wps", "median"),
        ),
        (
            Target("resume replay ≤ 30 ms", 30.0, "ms"),
            _get(results, "systems", "handrail", "resume", "replay_ms", "median"),
        ),
        (
            Target("import ≤ 150 ms", 150.0, "ms"),
            _get(results, "footprint", "handrail", "import_ms", "median"),
        ),
        (
            Target("peak RSS ≤ 40 MiB", 40.0, "MiB"),
            _get(results, "footprint", "handrail", "peak_rss_mib"),
        ),
    ]
    return [
        {"target": t.name, "limit": t.limit, "unit": t.unit, "value": v, "status": t.met(v)}
        for t, v in rows
    ]


def _x(value: float | None, digits: int = 2, missing: str = "—") -> str:
    return missing if value is None else f"{value:,.{digits}f}x"


def _status_cell(r: Json | None) -> str:
    status = (r or {}).get("status")
    return {"unavailable": "pending", "error": "error"}.get(str(status), "—")


def render(results: Json) -> str:
    p = results["params"]
    systems: Json = results["systems"]
    m = results["machine"]
    lines: list[str] = []
    w = lines.append
    w(f"# handrail benchmarks — {results['started']}")
    w("")
    peers = ", ".join(f"{k} {v}" for k, v in results["peer_versions"].items())
    w(f"{m['platform']}, {m['cpus']} CPUs, Python {m['python']}, SQLite {m['sqlite']}.  ")
    loads = [m.get("loadavg_start"), m.get("loadavg_end")]
    if all(loads):
        start, end = (f"{la[0]:.2f}" for la in loads)
        w(f"1-min load average: {start} at start, {end} at end.  ")
    w(f"Peers: {peers}.  ")
    g = results.get("git") or {}
    if g.get("head"):
        dirty = g.get("src_uncommitted") or 0
        extra = f" + {dirty} uncommitted file(s) under src/" if dirty else ""
        w(f"handrail at {g['head']}{extra}.  ")
    how = (
        "interleaved rounds (every system once per round, rotating order; ratios taken "
        "within a round, then the median)"
        if results["mode"] == "interleaved"
        else "one system after another"
    )
    w(
        f"Medians of {p['repeats']} rounds ({p['tp_repeats']} for throughput), {how}; "
        f"import time: {p['import_runs']} fresh processes."
    )
    w("")

    full = _get(systems, FLOOR, "FULL", "median")
    w("## 1. Raw SQLite WAL commit floor (BEGIN IMMEDIATE; INSERT 200 B; COMMIT)")
    w("")
    w("| synchronous | µs / commit | commits / s |")
    w("|---|---:|---:|")
    for sync in ("FULL", "NORMAL"):
        us = _get(systems, FLOOR, sync, "median")
        w(f"| {sync} | {_fmt(us)} | {_fmt(1e6 / us if us else None, 0)} |")
    w("")

    names = [n for n in LABELS if n in systems]
    w(f"## 2. Per-step overhead (one workflow of {p['steps']} sequential trivial steps)")
    w("")
    w(
        "| system | µs / step | x FULL commit (§1) | x FULL commit (paired) "
        "| handrail is N x faster |"
    )
    w("|---|---:|---:|---:|---:|")
    for n in names:
        us = _get(systems, n, "per_step_us", "median")
        cell = _fmt(us) if us is not None else _status_cell(systems[n])
        vs_full = us / full if us is not None and full else None
        faster = "—" if n in HANDRAIL_ROWS else _x(per_step_speedup(results, n), 1, "pending")
        w(
            f"| {LABELS[n]} | {cell} | {_x(vs_full)} | {_x(per_step_over_floor(results, n))} "
            f"| {faster} |"
        )
    w("")
    w(
        f"x FULL commit (paired): each sample over a {p['adjacent_floor_ops']}-commit FULL "
        "floor timed just before it on the same disk; median of those ratios."
    )
    w("")
    cost = audit_cost(results)
    if cost.get("per_step_delta_us") is not None:
        w(
            f"Audit record cost per step: {_fmt(cost['per_step_delta_us'])} µs "
            f"(audited / audit=False: {_x(cost['per_step_ratio'], 3)}; medians of the "
            "per-round differences and ratios, the two rows ran back to back in every round)."
        )
        w("")
    counts = [
        f"{LABELS[n].split(' (')[0] if n == 'handrail' else 'audit=False'}: "
        f"{_get(systems, n, 'config_end', 'audit_rows', 'handrail_audit_drafts')} drafts "
        "not sealed yet, "
        f"{_get(systems, n, 'config_end', 'audit_rows', 'handrail_audit_records')} audit records, "
        f"{_get(systems, n, 'config_end', 'audit_rows', 'handrail_audit_checkpoints')} checkpoints"
        for n in HANDRAIL_ROWS
        if _get(systems, n, "config_end", "audit_rows")
    ]
    if counts:
        w(f"Rows in the handrail stores at the end of the run: {'; '.join(counts)}.")
        w("")
    sealing = _get(systems, "handrail", "config_end", "sealing")
    if sealing and sealing.get("sealed"):
        w(
            "Sealing the audited row's drafts (encrypting the payloads, the commitments and "
            "the leaf; in production a worker's sequencer does it in the background) was "
            "timed after each per-step sample, outside it: "
            f"{sealing['sealed']} records in {_fmt(sealing['seconds'] * 1e3)} ms, "
            f"{_fmt(sealing['us_per_record'])} µs a record. The throughput run below "
            "includes sealing its own records: its worker's sequencer seals while the "
            "workers run, and stopping the worker seals the rest inside the timed section."
        )
        w("")

    w(
        f"## 3. Throughput ({p['tp_workflows']} workflows x {p['tp_steps']} trivial steps, "
        f"{p['concurrency']} threads)"
    )
    w("")
    w("| system | workflows / s | steps / s | handrail is N x faster |")
    w("|---|---:|---:|---:|")
    for n in names:
        wps = _get(systems, n, "throughput_wps", "median")
        cell = _fmt(wps) if wps is not None else _status_cell(systems[n])
        steps = _fmt(wps * p["tp_steps"] if wps is not None else None, 0)
        faster = "—" if n in HANDRAIL_ROWS else _x(throughput_speedup(results, n), 1, "pending")
        w(f"| {LABELS[n]} | {cell} | {steps} | {faster} |")
    w("")

    fp: Json = results.get("footprint", {})
    cost = audit_cost(results)
    if cost.get("throughput_ratio") is not None:
        w(
            f"Audit record cost in throughput: audited / audit=False = "
            f"{_x(cost['throughput_ratio'], 3)} (median of per-round ratios; the audited "
            "worker also runs the audit sequencer, which signs a checkpoint every 256 records "
            "or every second)."
        )
        w("")

    w("## 4. handrail only: resume, import, memory (peers for context)")
    w("")
    resume = _get(systems, "handrail", "resume")
    if resume:
        w(
            f"Resume of a {resume['steps']}-step task SIGKILLed during step "
            f"{resume['killed_at_step']}: replay {_fmt(resume['replay_ms']['median'], 2)} ms "
            f"to the result (opening the App before it: "
            f"{_fmt(resume['app_open_ms']['median'], 2)} ms)."
        )
    else:
        w(f"Resume: {_status_cell(systems.get('handrail'))}")
    w("")
    w(f"| system | import (ms) | peak RSS of a {p['steps']}-step run (MiB) |")
    w("|---|---:|---:|")
    w(f"| python + sqlite3 only (baseline) | — | {_fmt(_get(fp, 'baseline', 'vm_hwm_mib'))} |")
    for n in FOOTPRINTS:
        if n not in fp and n != "handrail":
            continue  # a peer left out with --only
        e = fp.get(n, {})
        if n not in IMPORTS:
            imp = "(same import)"
        else:
            imp = _fmt(_get(e, "import_ms", "median")) if "import_ms" in e else "pending"
        rss = _fmt(e.get("peak_rss_mib")) if "peak_rss_mib" in e else "pending"
        w(f"| {LABELS[n]} | {imp} | {rss} |")
    w("")

    w("## Targets (handrail with the audit record written: the default App)")
    w("")
    w("| target | measured | status |")
    w("|---|---:|---|")
    for t in results["targets"]:
        digits = 2 if t["unit"] == "x" else 1
        value = "—" if t["value"] is None else f"{_fmt(t['value'], digits)} {t['unit']}"
        w(f"| {t['target']} | {value} | {t['status']} |")
    w("")

    notes = []
    for n, r in systems.items():
        if r.get("status") != "ok":
            notes.append(f"- {n}: {r.get('status')}: {r.get('reason') or r.get('error')}")
        if r.get("network_attempts"):
            notes.append(f"- {n}: NETWORK ATTEMPTS BLOCKED: {r['network_attempts']}")
    for n, e in fp.items():
        for key in ("import_error", "rss_error"):
            if key in e:
                notes.append(f"- {n}: {key}: {e[key]}")
    if notes:
        w("## Notes")
        w("")
        lines.extend(notes)
        w("")
    return "\n".join(lines)


def git_state() -> Json:
    """The commit handrail was measured at, and how many files under src/ differ from it."""
    root = str(HERE.parent)

    def git(*argv: str) -> str:
        proc = subprocess.run(
            ["git", "-C", root, *argv], capture_output=True, text=True, check=False
        )
        return proc.stdout if proc.returncode == 0 else ""

    try:
        head = git("rev-parse", "--short", "HEAD").strip()
        dirty = git("status", "--porcelain", "--", "src").splitlines()
    except OSError:
        return {}
    return {"head": head or None, "src_uncommitted": len(dirty)}


def machine_info() -> Json:
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


@contextlib.contextmanager
def temp_root(base: str | None) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="handrail-bench-", dir=base))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main_parent(args: argparse.Namespace) -> int:
    params = Params(repeats=args.repeats, tp_repeats=args.tp_repeats)
    if args.quick:
        params = Params(repeats=1, tp_repeats=1, tp_workflows=50, floor_ops=500, import_runs=3)
    selected = args.only.split(",") if args.only else list(BENCHES)
    unknown = [s for s in selected if s not in BENCHES]
    if unknown:
        raise SystemExit(f"unknown system(s): {unknown}; choose from {list(BENCHES)}")
    log_dir = RESULTS_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    results: Json = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "mode": "sequential" if args.sequential else "interleaved",
        "machine": machine_info(),
        "params": asdict(params),
        "peer_versions": {p: _version(p) for p in PEER_PACKAGES},
        "handrail_version": _version("handrail"),
        "git": git_state(),
    }
    results["machine"]["loadavg_start"] = os.getloadavg()
    if os.getloadavg()[0] > 0.5:
        log(f"warning: load average {os.getloadavg()[0]:.2f} at start; numbers will be noisy")
    t_start = time.perf_counter()
    with temp_root(args.tmp) as root:
        run = run_sequential if args.sequential else run_interleaved
        results["systems"] = run(selected, params, root, log_dir)
        fp_systems = [n for n in FOOTPRINTS if n in selected]
        for n in HANDRAIL_ROWS:
            if _get(results, "systems", n, "status") != "ok" and n in fp_systems:
                fp_systems.remove(n)
        log(f"import time + peak RSS: {', '.join(fp_systems)}")
        results["footprint"] = footprints(fp_systems, params, root, log_dir)
    results["total_wall_s"] = time.perf_counter() - t_start
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["derived"] = {
        n: {
            "per_step_over_full_floor_paired": per_step_over_floor(results, n),
            "handrail_per_step_speedup": per_step_speedup(results, n),
            "handrail_throughput_speedup": throughput_speedup(results, n),
        }
        for n in DRIVERS
        if n in results["systems"]
    }
    results["derived"]["audit_cost"] = audit_cost(results)
    results["targets"] = evaluate_targets(results)
    report = render(results)
    print(report)
    print(f"(total {results['total_wall_s']:.0f} s; child logs in {log_dir})")
    out = RESULTS_DIR / "latest.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    (RESULTS_DIR / "latest.md").write_text(report + "\n")
    print(f"results: {out}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=Params.repeats, help="per-step rounds")
    ap.add_argument("--tp-repeats", type=int, default=Params.tp_repeats, help="throughput rounds")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (numbers not valid)")
    ap.add_argument("--sequential", action="store_true", help="one system after another")
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHES)}")
    ap.add_argument("--tmp", help="directory for temporary databases (default: system tmp)")
    # internal: child-process modes
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--rss-child", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=Params.steps, help=argparse.SUPPRESS)
    ap.add_argument("--handrail-crash", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        run_child(args.child, Params(**json.loads(args.params)), Path(args.out), Path(args.tmp))
    if args.serve:
        serve(args.serve, Params(**json.loads(args.params)), Path(args.tmp))
    if args.rss_child:
        run_rss_child(args.rss_child, args.steps, Path(args.tmp))
    if args.handrail_crash:
        db, steps, kill_at, id_file = args.handrail_crash
        install_network_guard()
        handrail_crash_child(Path(db), int(steps), int(kill_at), Path(id_file))
    return main_parent(args)


if __name__ == "__main__":
    sys.exit(main())
