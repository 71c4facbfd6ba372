"""Named locks for ``Store.named_lock``: one :class:`threading.Lock` per name within a
process, under whatever the backend adds between processes (a file lock beside a SQLite
database, an advisory lock in PostgreSQL). Taking the process's lock first means at most
one thread of a process waits on the backend's lock, holding at most one connection."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LocalLocks", "file_lock", "lock_directory"]


class LocalLocks:
    """One lock per name, made on first use."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def get(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[None]:
        with self.get(name):
            yield


def lock_directory(db_path: str) -> Path | None:
    """Where the lock files of the SQLite database at ``db_path`` live (private to the
    user, named after the file's real path); ``None`` without a file or without
    ``fcntl`` (Windows): locks then stay in the process."""
    if db_path in ("", ":memory:") or not hasattr(os, "getuid"):
        return None
    try:
        import fcntl  # noqa: F401
    except ImportError:
        return None
    real = os.path.realpath(db_path)
    digest = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"handrail-locks-{os.getuid()}-{digest}"


@contextlib.contextmanager
def file_lock(directory: Path, name: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``name``'s file in ``directory`` (made private to
    the user if missing); the kernel drops it if the process dies."""
    import fcntl

    directory.mkdir(mode=0o700, exist_ok=True)
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    fd = os.open(directory / f"{digest}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
