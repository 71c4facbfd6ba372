"""Wake-up signals through PostgreSQL's LISTEN/NOTIFY, across processes and machines.

A write that makes a task runnable calls ``pg_notify('handrail_wake', <queue>)`` inside its
own statement (see ``queries.sql``): the server delivers it when the transaction commits,
and drops it if it rolls back, at no extra round trip. A subscription holds one autocommit
connection of its own that LISTENs on the channel. When that connection is lost it logs,
reconnects with back-off, and reports a wake-up once it listens again (signals sent while
it was away are lost; claiming once makes up for them).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import threading
import time
from typing import Any

import psycopg

CHANNEL = "handrail_wake"

log = logging.getLogger("handrail.store.postgres")

_Conn = psycopg.Connection[tuple[Any, ...]]
_FIRST_RETRY = 0.5
_LAST_RETRY = 30.0


class ListenSubscription:
    """A LISTEN connection, and a pipe on which :meth:`close` ends a wait."""

    def __init__(self, url: str, *, where: str, connect_timeout: float):
        self._url = url
        self._where = where
        self._connect_timeout = max(1, round(connect_timeout))
        self._state = threading.Lock()  # makes closing a test-and-set
        self._busy = threading.Lock()  # held while a wait uses the connection
        self._closed = threading.Event()
        self._retry_in = _FIRST_RETRY
        self._retry_at = 0.0
        self._bell_r, self._bell_w = os.pipe()
        try:
            os.set_blocking(self._bell_w, False)
            self._conn: _Conn | None = self._connect()
        except BaseException:
            os.close(self._bell_r)
            os.close(self._bell_w)
            raise

    def _connect(self) -> _Conn:
        conn: _Conn = psycopg.connect(
            self._url,
            autocommit=True,
            connect_timeout=self._connect_timeout,
            # An idle listener on a dead network would wait forever; keepalives notice.
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
        try:
            conn.execute(f"LISTEN {CHANNEL}")
        except BaseException:
            conn.close()
            raise
        return conn

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        with self._busy:
            while not self._closed.is_set():
                now = time.monotonic()
                conn = self._conn
                if conn is None:
                    if now >= self._retry_at:
                        if self._reconnect():
                            return True  # signals sent meanwhile are lost: check now
                        continue
                    if now >= deadline:
                        return False
                    self._poll(None, min(deadline, self._retry_at) - now)
                    continue
                try:
                    if any(True for _ in conn.notifies(timeout=0.0)):
                        return True
                    if now >= deadline or not self._poll(conn.fileno(), deadline - now):
                        return False
                except psycopg.Error as exc:
                    self._lost(exc)
            return False

    def _poll(self, fd: int | None, seconds: float) -> bool:
        """Sleep until ``fd`` is readable (``True``), the bell rings or ``seconds`` pass."""
        poller = select.poll()
        poller.register(self._bell_r, select.POLLIN)
        if fd is not None:
            poller.register(fd, select.POLLIN)
        events = poller.poll(math.ceil(max(0.0, seconds) * 1000))
        return any(ready == fd for ready, _ in events)

    def _lost(self, exc: BaseException) -> None:
        log.warning(
            "the wake-up listener lost its connection to %s (%s); reconnecting, and polling "
            "meanwhile",
            self._where,
            exc,
        )
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        self._retry_in = _FIRST_RETRY
        self._retry_at = time.monotonic() + self._retry_in

    def _reconnect(self) -> bool:
        try:
            self._conn = self._connect()
        except psycopg.Error as exc:
            self._retry_in = min(self._retry_in * 2, _LAST_RETRY)
            self._retry_at = time.monotonic() + self._retry_in
            log.warning(
                "the wake-up listener cannot reconnect to %s (%s); retrying in %.1f s",
                self._where,
                exc,
                self._retry_in,
            )
            return False
        log.info("the wake-up listener is listening on %s again", self._where)
        return True

    def close(self) -> None:
        with self._state:
            if self._closed.is_set():
                return
            self._closed.set()
        with contextlib.suppress(OSError):
            os.write(self._bell_w, b"\x01")  # end a wait in progress
        with self._busy:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            os.close(self._bell_r)
            os.close(self._bell_w)
