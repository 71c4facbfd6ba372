"""Group commit: concurrent writers in one process share one SQLite transaction.

SQLite makes every commit wait for the disk (``synchronous=FULL``), and it takes one writer
at a time. Writers queue their operation; whoever holds the write lock (the leader) drains
the queue and runs every waiting operation in one transaction, each in its own savepoint,
so one operation's failure rolls back only itself. The others sleep on their own event
until their operation is committed, and when the leader lets go it wakes the first writer
still queued to lead the next batch. A lone writer takes the lock at once and pays nothing
extra; many threads share one disk flush.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class _Op(Generic[T]):
    __slots__ = ("done", "error", "fn", "result", "wake")

    def __init__(self, fn: Callable[[sqlite3.Connection], T]):
        self.fn = fn
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.wake: threading.Event | None = None  # made only if this writer has to wait


class GroupCommitter:
    """Runs write operations on one connection, batching those that arrive together."""

    def __init__(self, conn: sqlite3.Connection, translate: Callable[[BaseException], Exception]):
        self._conn = conn
        self._translate = translate
        self._queue: list[_Op[Any]] = []
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` inside a write transaction; return once it is committed."""
        op: _Op[T] = _Op(fn)
        with self._queue_lock:
            self._queue.append(op)
        while not op.done:
            if self._write_lock.acquire(blocking=False):
                try:
                    if len(self._queue) > 1:
                        time.sleep(0)  # others are writing too: let them join this commit
                    with self._queue_lock:
                        batch, self._queue = self._queue, []
                    if batch:
                        self._execute(batch)
                finally:
                    self._write_lock.release()
                with self._queue_lock:
                    if self._queue:
                        _wake(self._queue[0])
            else:
                self._wait_turn(op)
        if op.error is not None:
            raise op.error
        result: T = op.result
        return result

    def _wait_turn(self, op: _Op[Any]) -> None:
        """Sleep until ``op`` is committed or its writer is asked to lead."""
        with self._queue_lock:
            if op.done:
                return
            if op.wake is None:
                op.wake = threading.Event()
            wake = op.wake
        wake.wait()
        wake.clear()

    def _own(self, exc: BaseException) -> BaseException:
        return self._translate(exc) if isinstance(exc, sqlite3.Error | UnicodeError) else exc

    def _execute(self, batch: list[_Op[Any]]) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            if len(batch) == 1:
                op = batch[0]
                try:
                    op.result = op.fn(conn)
                except BaseException as exc:
                    conn.execute("ROLLBACK")
                    op.error = self._own(exc)
                    return
            else:
                for op in batch:
                    conn.execute("SAVEPOINT handrail_op")
                    try:
                        op.result = op.fn(conn)
                    except BaseException as exc:
                        conn.execute("ROLLBACK TO handrail_op")
                        op.error = self._own(exc)
                    conn.execute("RELEASE handrail_op")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = self._translate(exc)
            for op in batch:
                if op.error is None:
                    op.error = error
        finally:
            with self._queue_lock:
                for op in batch:
                    op.done = True
                    if op.wake is not None:
                        op.wake.set()


def _wake(op: _Op[Any]) -> None:
    """Wake ``op``'s writer to lead the next batch (call with the queue lock held)."""
    if op.wake is None:
        op.wake = threading.Event()
    op.wake.set()
