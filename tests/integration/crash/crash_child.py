"""The child process of the crash harness: run the crash task once, maybe SIGKILL itself.

Run as ``python crash_child.py`` (or forked by ``python crash_child.py --serve``, see
:func:`serve`) with its settings in the environment:

- ``HR_STORE_URL``: the store (a SQLite path or a ``postgresql://`` URL);
- ``HR_TASK_ID``, ``HR_WORKER_ID``: the task to create (if missing) and drive, and the
  worker identity (fixed, so a restarted child takes back its dead incarnation's lease);
- ``HR_EFFECTS``, ``HR_CALLS``: the tools' effects file and calls log;
- ``HR_KILL`` (optional): ``before:write:N``, ``after:write:N`` or ``after:effect:N``: die
  by SIGKILL right before or after this process's N-th store write, or right after its
  N-th effect is fsynced (inside the tool, before it returns), or ``mid:write:N``: inside
  write N's transaction, its statements run, as it is about to commit (a write that is one
  statement in a transaction of its own, as most PostgreSQL writes are, has no such moment:
  it dies as the statement is about to be sent, nothing of it sent or committed);
- ``HR_TRACE`` (optional): a file that gets one JSON line per store write and per effect,
  in order (the un-killed run's trace enumerates the kill points);
- ``HR_MISDECLARE`` (optional): comma-separated tools to register as idempotent (a lie the
  harness's self-test must catch).

Claims and drives the task for as long as it is runnable (a durable sleep releases it; the
child claims it again once it is due), then prints one JSON line, ``{"status": ...}``. It
stops when the task waits for a human: an intervention, or the approval every irreversible
call needs (the harness approves between runs, as ``crash_app.APPROVER``).

The app keeps the engine's default approval settings, flood control included: a request
first counts the pending requests of its approver group (reads, not writes; on PostgreSQL
all scenarios share the group, but a handful run at once, far below the cap of 100, so no
call ever queues and the writes of a run stay the same every time).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import crash_app

from handrail import App
from handrail.journal import Event, TaskStatus
from handrail.store.base import UNSET, Claim, Lease, NewTask, Store, TaskRecord, _Unset
from handrail.store.url import open_store

T = TypeVar("T")

_HUMAN = frozenset({TaskStatus.AWAITING_APPROVAL, TaskStatus.AWAITING_INTERVENTION})


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class Tracer:
    """Counts this process's store writes and effects; kills it at the chosen point."""

    def __init__(self, kill: str | None, trace: Path | None):
        self.kill: tuple[str, str, int] | None = None
        if kill:
            when, what, n = kill.split(":")
            self.kill = (when, what, int(n))
        self.trace = trace
        self.writes = 0
        self.effects = 0
        self.current: int | None = None  # the write being made
        self.commits = 0  # transactions it committed so far

    def on_sql(self, statement: str) -> None:
        """SQLite trace callback: ``mid:write:N`` dies as write N's COMMIT starts, every
        statement of its transaction run, none committed."""
        if statement.lstrip().upper().startswith("COMMIT"):
            self.on_commit()

    def on_commit(self) -> None:
        if self.current is None:
            return  # a read, or the store's own start-up
        self.commits += 1
        if self.kill == ("mid", "write", self.current):
            _die()

    def _record(self, entry: dict[str, Any]) -> None:
        if self.trace is not None:
            with self.trace.open("a") as f:
                f.write(json.dumps(entry) + "\n")

    def write(self, op: str, run: Callable[[], T], events: Callable[[T], list[Event]]) -> T:
        self.writes += 1
        n = self.writes
        if self.kill == ("before", "write", n):
            _die()
        self.current, self.commits = n, 0
        try:
            result = run()
        finally:
            self.current = None
        self._record(
            {
                "type": "write",
                "n": n,
                "op": op,
                "commits": self.commits,
                "events": [[e.kind.value, e.step_index, e.step_name] for e in events(result)],
            }
        )
        if self.kill == ("after", "write", n):
            _die()
        return result

    def effect(self, step: int, tool: str) -> None:
        self.effects += 1
        n = self.effects
        self._record({"type": "effect", "n": n, "step": step, "tool": tool})
        if self.kill == ("after", "effect", n):
            _die()


_active: Tracer | None = None
"""The tracer of the run in progress: the commit hooks report to it."""
_psycopg_hooked = False


def _on_sql(statement: str) -> None:
    if _active is not None:
        _active.on_sql(statement)


def _on_commit() -> None:
    if _active is not None:
        _active.on_commit()


def _hook_commits(store: Store) -> None:
    """Have the active tracer hear of each transaction's commit before it happens: to count
    the transactions of each write (one, if writes are atomic) and so that ``mid:write:N``
    can die with write N's statements run and nothing committed.

    Test-only reaching into the stores: the SQLite store's write connection gets a trace
    callback; for PostgreSQL, psycopg is wrapped, once per process: ``Transaction.__exit__``
    (an operation of several statements runs in one ``conn.transaction()``) and
    ``Connection.execute`` of a statement outside any transaction on an autocommit
    connection (a one-statement write: the server commits it as it runs it, so the commit is
    heard as the statement is about to be sent). If either moves, the child no longer dies
    there and the harness reports it alive (or the write's transactions counted wrong)."""
    global _psycopg_hooked
    writer = getattr(store, "_writer", None)
    if isinstance(writer, sqlite3.Connection):
        writer.set_trace_callback(_on_sql)
        return
    if _psycopg_hooked:
        return
    with contextlib.suppress(ImportError):
        import psycopg
        from psycopg.pq import TransactionStatus

        original = psycopg.Transaction.__exit__
        execute = psycopg.Connection.execute

        def exit_(self: psycopg.Transaction, exc_type: Any, exc: Any, tb: Any) -> Any:
            if exc_type is None:
                _on_commit()
            return original(self, exc_type, exc, tb)

        def execute_(self: psycopg.Connection[Any], *args: Any, **kwargs: Any) -> Any:
            if self.autocommit and self.info.transaction_status == TransactionStatus.IDLE:
                _on_commit()  # a statement that is a transaction of its own
            return execute(self, *args, **kwargs)

        psycopg.Transaction.__exit__ = exit_  # type: ignore[method-assign]
        psycopg.Connection.execute = execute_  # type: ignore[method-assign]
        _psycopg_hooked = True


class CrashStore:
    """A store that passes everything through and reports each write to the tracer.

    Keyword arguments a write takes beyond those named here (``audit`` rows, written in the
    write's own transaction) are passed through as they come. ``renew_lease`` is not
    counted: the heartbeat's timing is not deterministic (the child uses a lease long enough
    that it never renews). Closing it closes ``inner`` if it ``owns`` it (a resident keeps
    its store open for its next run)."""

    def __init__(self, inner: Store, tracer: Tracer, *, owns: bool = True):
        global _active
        self.inner = inner
        self.tracer = tracer
        self.owns = owns
        _active = tracer
        _hook_commits(inner)

    # -- counted writes --------------------------------------------------------------------

    def create_task(self, task: NewTask) -> None:
        self.tracer.write(
            "create_task", lambda: self.inner.create_task(task), lambda _: [task.event]
        )

    def claim_task(
        self,
        worker_id: str,
        *,
        now: float,
        lease_seconds: float,
        queues: Sequence[str] | None = None,
        workflows: Sequence[str] | None = None,
        task_id: str | None = None,
    ) -> Claim | None:
        return self.tracer.write(
            "claim_task",
            lambda: self.inner.claim_task(
                worker_id,
                now=now,
                lease_seconds=lease_seconds,
                queues=queues,
                workflows=workflows,
                task_id=task_id,
            ),
            lambda claim: [] if claim is None else [claim.events[-1]],
        )

    def release_worker(self, worker_id: str) -> int:
        return self.tracer.write(
            "release_worker", lambda: self.inner.release_worker(worker_id), lambda _: []
        )

    def append_events(
        self,
        lease: Lease,
        events: Sequence[Event],
        *,
        now: float,
        status: TaskStatus | None = None,
        run_at: float | _Unset | None = UNSET,
        release: bool = False,
        boundary: bool = False,
        **more: Any,
    ) -> None:
        batch = list(events)
        self.tracer.write(
            "append_events",
            lambda: self.inner.append_events(
                lease,
                batch,
                now=now,
                status=status,
                run_at=run_at,
                release=release,
                boundary=boundary,
                **more,
            ),
            lambda _: batch,
        )

    def append_unleased(
        self,
        task_id: str,
        events: Sequence[Event],
        *,
        expect_seq: int,
        now: float,
        status: TaskStatus | None = None,
        run_at: float | _Unset | None = UNSET,
        **more: Any,
    ) -> None:
        batch = list(events)
        self.tracer.write(
            "append_unleased",
            lambda: self.inner.append_unleased(
                task_id,
                batch,
                expect_seq=expect_seq,
                now=now,
                status=status,
                run_at=run_at,
                **more,
            ),
            lambda _: batch,
        )

    def request_cancel(self, task_id: str, actor: str, *, now: float) -> TaskRecord:
        return self.tracer.write(
            "request_cancel",
            lambda: self.inner.request_cancel(task_id, actor, now=now),
            lambda _: [],
        )

    # -- passed through --------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Halts, circuits and rate windows: the crash workflow makes none of these writes
        # (its one failing tool fails fatally, not transiently), so they go uncounted.
        return getattr(self.inner, name)

    def renew_lease(self, lease: Lease, *, now: float, lease_seconds: float) -> bool:
        return self.inner.renew_lease(lease, now=now, lease_seconds=lease_seconds)

    def load_events(self, task_id: str) -> list[Event]:
        return self.inner.load_events(task_id)

    def get_task(self, task_id: str) -> TaskRecord | None:
        return self.inner.get_task(task_id)

    def list_tasks(
        self,
        *,
        statuses: Sequence[TaskStatus] | None = None,
        workflow: str | None = None,
        queue: str | None = None,
        limit: int = 100,
    ) -> list[TaskRecord]:
        return self.inner.list_tasks(statuses=statuses, workflow=workflow, queue=queue, limit=limit)

    def next_due(
        self,
        *,
        now: float,
        queues: Sequence[str] | None = None,
        workflows: Sequence[str] | None = None,
    ) -> float | None:
        return self.inner.next_due(now=now, queues=queues, workflows=workflows)

    def close(self) -> None:
        global _active
        if _active is self.tracer:
            _active = None
        if self.owns:
            self.inner.close()


def main(stores: dict[str, Store] | None = None) -> int:
    """One run of the task. ``stores``: a resident's open stores by URL (see
    :func:`_resident`); without it the run opens its store and closes it."""
    env = os.environ
    trace = Path(env["HR_TRACE"]) if env.get("HR_TRACE") else None
    tracer = Tracer(env.get("HR_KILL"), trace)
    crash_app.configure(
        crash_app.Recorder(
            effects=Path(env["HR_EFFECTS"]), calls=Path(env["HR_CALLS"]), on_effect=tracer.effect
        )
    )
    task_id = env["HR_TASK_ID"]
    url = env["HR_STORE_URL"]
    if stores is None:
        store = CrashStore(open_store(url), tracer)
    else:
        if url not in stores:
            for old in stores.values():  # another SQLite scenario's file
                old.close()
            stores.clear()
            stores[url] = open_store(url)
        store = CrashStore(stores[url], tracer, owns=False)
    # A lease far longer than any run: the heartbeat never writes, so runs are repeatable.
    app = App(store, worker_id=env["HR_WORKER_ID"], lease_seconds=3600.0)
    try:
        misdeclared = [t for t in env.get("HR_MISDECLARE", "").split(",") if t]
        workflow = crash_app.build(app, misdeclared=misdeclared)
        if store.get_task(task_id) is None:
            app.start(
                workflow,
                task_id=task_id,
                initiator=crash_app.INITIATOR,
                order_id=crash_app.ORDER_ID,
                amount=crash_app.AMOUNT,
            )
        claims = 0
        while True:
            record = store.get_task(task_id)
            assert record is not None
            if record.status.terminal or record.run_at is None or record.status in _HUMAN:
                # Done, or waiting for a human: an operator's answer to an intervention, or
                # an approver's decision (an approval request's run_at is its deadline, an
                # hour away; the harness decides between runs).
                break
            # Claim only once the task is due (after a durable sleep): a claim that finds
            # nothing is a write too, and the writes of a run must be the same every time.
            delay = record.run_at - app.clock.now()
            if delay > 0:
                time.sleep(delay)
            claim = store.claim_task(
                app.worker_id, now=app.clock.now(), lease_seconds=app.lease_seconds, task_id=task_id
            )
            if claim is None:
                break
            claims += 1
            app.run_claim(claim)
        print(json.dumps({"status": record.status.value, "claims": claims}))
    finally:
        app.close()
    return 0


# -- fork server ---------------------------------------------------------------------------


def serve() -> int:
    """Fork a child per request, from an interpreter that has imported everything already.

    Starting Python and importing handrail (and psycopg) costs a child 0.2-0.5 s; forking
    this process costs a few milliseconds. Each child is still a process of its own that
    opens its own store and dies by a real SIGKILL. Requests come on stdin, one JSON line
    each: ``{"id", "env", "stdout", "stderr"}`` (the child's environment and where its output
    goes); replies go to stdout: ``{"id", "pid"}`` once forked, ``{"id", "returncode"}`` (as
    :mod:`subprocess` reports it: ``-9`` for SIGKILL) once it ended. The server exits when
    stdin closes and its children are gone.

    A request with a ``"lane"`` goes to that lane's *resident* instead: a child forked once
    that runs one request after another, like a long-lived worker process, keeping its
    store open between them, until a run kills it (see :func:`_resident`); the lane's next
    request starts a new resident.
    """
    import select

    import handrail.decisions  # flood control imports it at each approval request
    import handrail.store.sqlite  # what open_store would import lazily in every child

    with contextlib.suppress(Exception):  # not installed: children that need it will say so
        import handrail.store.postgres  # noqa: F401

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    children: dict[int, int] = {}
    residents: dict[str, _Resident] = {}
    pending = b""
    reading = True

    def reply(message: dict[str, Any]) -> None:
        os.write(1, (json.dumps(message) + "\n").encode())

    def inherited() -> list[int]:
        """What a new child must close: the server's pipes."""
        fds = [wake_r, wake_w]
        fds += [fd for r in residents.values() for fd in (r.requests, r.replies) if fd >= 0]
        return fds

    while reading or children or residents:
        watched = [wake_r, *(r.replies for r in residents.values() if r.replies >= 0)]
        ready, _, _ = select.select([*watched, 0] if reading else watched, [], [])
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_r, 4096):
                    pass
        for resident in residents.values():
            if resident.replies < 0 or resident.replies not in ready:
                continue
            data = os.read(resident.replies, 65536)
            resident.buffer += data
            while b"\n" in resident.buffer:
                line, resident.buffer = resident.buffer.split(b"\n", 1)
                resident.busy = None
                reply(json.loads(line))
            if not data:  # it is exiting: reaped below
                os.close(resident.replies)
                resident.replies = -1
        if 0 in ready:
            data = os.read(0, 65536)
            reading = bool(data)
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                lane = request.get("lane")
                if lane is None:
                    pid = os.fork()
                    if pid == 0:
                        _forked(request, inherited())  # never returns
                    children[pid] = request["id"]
                    reply({"id": request["id"], "pid": pid})
                    continue
                known = residents.get(lane)
                if known is None or known.requests < 0:
                    known = residents[lane] = _Resident.start(lane, inherited())
                known.busy = request["id"]
                os.write(known.requests, line + b"\n")
                reply({"id": request["id"], "pid": known.pid})
            if not reading:  # no more requests: each resident ends after its run
                for resident in residents.values():
                    if resident.requests >= 0:
                        os.close(resident.requests)
                        resident.requests = -1
        while children or residents:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            code = os.waitstatus_to_exitcode(status)
            if pid in children:
                reply({"id": children.pop(pid), "returncode": code})
                continue
            for lane, resident in list(residents.items()):
                if resident.pid != pid:
                    continue
                if resident.busy is not None:  # killed (a timeout) or crashed mid-run
                    reply({"id": resident.busy, "returncode": code})
                for fd in (resident.requests, resident.replies):
                    if fd >= 0:
                        os.close(fd)
                del residents[lane]
    return 0


@dataclass(slots=True)
class _Resident:
    """The server's end of a resident: its pid and pipes, and the request it runs."""

    lane: str
    pid: int
    requests: int
    replies: int
    busy: int | None = None
    buffer: bytes = b""

    @classmethod
    def start(cls, lane: str, inherited: list[int]) -> _Resident:
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            for fd in (*inherited, requests_w, replies_r):
                os.close(fd)
            _resident(requests_r, replies_w)  # never returns
        os.close(requests_r)
        os.close(replies_w)
        return cls(lane, pid, requests_w, replies_r)


def _resident(requests: int, replies: int) -> NoReturn:
    """Run requests one after another in this process until the server closes the pipe or
    a run's ``HR_KILL`` SIGKILLs it.

    Each run is a new :class:`App` with the run's fixed worker id, like a restarted worker;
    the store (and, for PostgreSQL, its connections) stays open from one run to the next,
    as in a long-lived worker process, and dies with it. A run's writes are the same as in
    a fresh child (opening a store writes nothing the tracer counts), so the kill points
    of a run do not depend on where it runs."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    stores: dict[str, Store] = {}
    try:
        with os.fdopen(requests, "rb") as source:
            for line in source:
                request = json.loads(line)
                code = 1
                try:
                    _redirect(request)
                    code = main(stores)
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 1
                except BaseException:
                    traceback.print_exc()
                    for store in stores.values():  # start afresh after a failed run
                        with contextlib.suppress(Exception):
                            store.close()
                    stores.clear()
                finally:
                    with contextlib.suppress(Exception):
                        sys.stdout.flush()
                        sys.stderr.flush()
                    _quiet()
                message = {"id": request["id"], "returncode": code}
                os.write(replies, (json.dumps(message) + "\n").encode())
    finally:
        for store in stores.values():
            with contextlib.suppress(Exception):
                store.close()
        os._exit(0)


def _redirect(request: dict[str, Any]) -> None:
    """This process's environment and output, as ``request`` says."""
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ):
        opened = os.open(path, flags, 0o644)
        os.dup2(opened, fd)
        os.close(opened)


def _quiet() -> None:
    """Output between a resident's runs goes nowhere."""
    opened = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(opened, fd)
    os.close(opened)


def _forked(request: dict[str, Any], inherited: Sequence[int]) -> NoReturn:
    code = 1
    try:
        for fd in inherited:
            os.close(fd)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        _redirect(request)
        code = main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    sys.exit(serve() if sys.argv[1:] == ["--serve"] else main())
