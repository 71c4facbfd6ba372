"""Wake-up signals between the processes on one SQLite file: datagrams on unix sockets.

Each subscription binds a datagram socket in a directory that belongs to the database file,
``<tmp>/handrail-wake-<uid>-<hash of the file's real path>`` (private to the user: the
temporary directory keeps socket names under the ~100-byte limit of unix socket paths). A
committed write that makes a task runnable sends one byte to every socket there; a waiting
subscription wakes, drains what queued up, and reports one wake-up. Sockets left behind by
a killed process refuse the datagram and are removed by the sender that finds them; the
last subscriber to close removes the directory.

Without unix sockets (Windows) or without a file (``:memory:``), signals stay in-process.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import math
import os
import secrets
import select
import socket
import stat
import tempfile
import threading
from pathlib import Path

from handrail.store.base import LocalWakeups, Subscription

log = logging.getLogger("handrail.store.sqlite")

_SUFFIX = ".sock"
_GONE = (errno.ECONNREFUSED, errno.ENOENT)  # no socket listens there: a stale file


def wake_directory(db_path: str) -> Path | None:
    """The directory of ``db_path``'s wake-up sockets; ``None`` if signals cannot leave
    this process (no file, or no unix datagram sockets on this platform)."""
    if db_path in ("", ":memory:") or not hasattr(socket, "AF_UNIX") or not hasattr(os, "getuid"):
        return None
    real = os.path.realpath(db_path)
    digest = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"handrail-wake-{os.getuid()}-{digest}"


class SocketWakeups:
    """Signals to, and subscriptions of, every process using one database file."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._local = LocalWakeups()  # subscriptions that could not bind a socket

    def subscribe(self) -> Subscription:
        try:
            return _SocketSubscription(self.directory)
        except OSError as exc:
            log.warning(
                "cannot listen for wake-ups from other processes in %s (%s); only this "
                "process's writes wake this subscriber, others' are seen at the next poll",
                self.directory,
                exc,
            )
            return self._local.subscribe()

    def signal(self) -> None:
        """Wake every subscriber; never raises (a lost signal costs a poll interval)."""
        self._local.signal()
        try:
            names = [n for n in os.listdir(self.directory) if n.endswith(_SUFFIX)]
        except OSError:
            return  # nobody has subscribed on this file yet
        if not names:
            return
        try:
            sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        except OSError as exc:
            log.debug("cannot open a socket to signal wake-ups: %s", exc)
            return
        with sender:
            sender.setblocking(False)
            for name in names:
                path = os.path.join(self.directory, name)
                try:
                    sender.sendto(b"\x01", path)
                except BlockingIOError:
                    pass  # its queue is full: a wake-up is pending there already
                except OSError as exc:
                    if exc.errno in _GONE:
                        with contextlib.suppress(OSError):
                            os.unlink(path)
                    else:
                        log.debug("cannot signal wake-up socket %s: %s", path, exc)


class _SocketSubscription:
    """A bound datagram socket, and a pipe on which :meth:`close` ends a wait."""

    def __init__(self, directory: Path):
        self._directory = directory
        self._state = threading.Lock()  # makes closing a test-and-set
        self._busy = threading.Lock()  # held while a wait uses the descriptors
        self._closed = threading.Event()
        self._bell_r, self._bell_w = os.pipe()
        try:
            os.set_blocking(self._bell_w, False)
            self._bind()
        except BaseException:
            os.close(self._bell_r)
            os.close(self._bell_w)
            raise

    def _bind(self) -> None:
        path = self._directory / f"{os.getpid()}-{secrets.token_hex(4)}{_SUFFIX}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            for attempt in range(3):
                _private_directory(self._directory)
                try:
                    sock.bind(str(path))
                    break
                except FileNotFoundError:  # the last subscriber removed the directory
                    if attempt == 2:
                        raise
            inode = os.stat(path).st_ino
        except BaseException:
            sock.close()
            raise
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        poller.register(self._bell_r, select.POLLIN)
        self._sock, self._path, self._inode, self._poller = sock, path, inode, poller

    def wait(self, timeout: float) -> bool:
        with self._busy:
            if self._closed.is_set():
                return False
            self._poller.poll(math.ceil(max(0.0, timeout) * 1000))
            if self._closed.is_set():
                return False
            if self._drain():
                return True
            return self._rebound()

    def _drain(self) -> bool:
        woken = False
        while True:
            try:
                self._sock.recv(64)
            except OSError:  # BlockingIOError: nothing more queued
                return woken
            woken = True

    def _rebound(self) -> bool:
        """Bind a new socket if ours was removed (a temporary-file cleaner, say), so that
        signals reach us again; ``True`` if so (some may have been missed meanwhile)."""
        try:
            if os.stat(self._path).st_ino == self._inode:
                return False
        except FileNotFoundError:
            pass
        except OSError:
            return False
        old = self._sock
        try:
            self._bind()
        except OSError as exc:
            log.warning("cannot bind a new wake-up socket in %s: %s", self._directory, exc)
            return False
        old.close()
        log.info("the wake-up socket was removed; listening on %s now", self._path)
        return True

    def close(self) -> None:
        with self._state:
            if self._closed.is_set():
                return
            self._closed.set()
        with contextlib.suppress(OSError):
            os.write(self._bell_w, b"\x01")  # end a wait in progress
        with self._busy:
            with contextlib.suppress(OSError):
                if os.stat(self._path).st_ino == self._inode:
                    os.unlink(self._path)
            with contextlib.suppress(OSError):  # not empty: others still listen
                os.rmdir(self._directory)
            self._sock.close()
            os.close(self._bell_r)
            os.close(self._bell_w)


def _private_directory(directory: Path) -> None:
    """Create ``directory`` (mode 0700) unless it exists; refuse one another user owns or
    others may write to."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, 0o700)
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"{directory} is not a directory private to this user")
