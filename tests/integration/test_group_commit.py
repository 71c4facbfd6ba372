"""Group commit under many threads: every operation is committed exactly once or fails alone,
and each thread gets its own result or exception."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from handrail.errors import StoreError
from handrail.store.sqlite._group_commit import GroupCommitter


class Refused(Exception):
    pass


def test_many_threads_share_commits_without_mixing_results(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "gc.db", isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (thread INTEGER, n INTEGER, PRIMARY KEY (thread, n))")
    committer = GroupCommitter(conn, lambda exc: StoreError(str(exc)))
    errors: list[BaseException] = []
    batches: list[int] = []
    original = committer._execute

    def counting(batch: list) -> None:  # type: ignore[type-arg]
        batches.append(len(batch))
        original(batch)

    committer._execute = counting  # type: ignore[method-assign]

    def work(thread: int) -> None:
        try:
            for n in range(150):

                def op(c: sqlite3.Connection, n: int = n) -> int:
                    c.execute("INSERT INTO t VALUES (?, ?)", (thread, n))
                    if n % 10 == 3:
                        raise Refused(f"{thread}:{n}")
                    if n % 10 == 7:  # a driver error: translated, rolled back alone
                        c.execute("INSERT INTO t VALUES (?, ?)", (thread, n))
                    return thread * 1000 + n

                if n % 10 == 3:
                    with pytest.raises(Refused, match=f"^{thread}:{n}$"):
                        committer.run(op)
                elif n % 10 == 7:
                    with pytest.raises(StoreError, match="UNIQUE"):
                        committer.run(op)
                else:
                    assert committer.run(op) == thread * 1000 + n
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = set(conn.execute("SELECT thread, n FROM t").fetchall())
    expected = {(i, n) for i in range(12) for n in range(150) if n % 10 not in (3, 7)}
    assert rows == expected
    assert sum(batches) == 12 * 150
    assert max(batches) > 1, "no two writers ever shared a commit"
