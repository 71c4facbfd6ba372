"""A demo worker process: drive one task of the contract-renewal app, then exit.

Run by the demo as ``python -m handrail.demo.driver --db DB --systems DIR --task ID
--worker-id ID [--crash-after TOOL]``. With ``--crash-after`` the process kills itself
with SIGKILL inside that tool. It prints what the systems do, one line each, and last the
status the task reached.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from handrail.demo.contract_renewal import build_app


def _log(message: str) -> None:
    print(message, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handrail.demo.driver")
    parser.add_argument("--db", required=True)
    parser.add_argument("--systems", required=True, type=Path)
    parser.add_argument("--task", required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--crash-after")
    args = parser.parse_args(argv)
    app = build_app(
        args.db, args.systems, worker_id=args.worker_id, crash_after=args.crash_after, log=_log
    )
    with app:
        handle = app.execute(args.task)
        _log(f"task {args.task} is {handle.status().value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
