"""The sequencer: integrates inserted audit records into the Merkle log and signs it.

Writers only insert records; the sequencer gives them their leaf indexes in batches and
signs a checkpoint per batch, every ``every_records`` records or every ``every_seconds``
seconds, whichever comes first. Run it in one process (or in many: the database lets one
sequence at a time, and the others find nothing to do).

:meth:`Sequencer.run_once` does one round now (tests, cron jobs, the CLI);
:meth:`Sequencer.start` runs rounds on a background thread until :meth:`Sequencer.stop`.
A failed round is logged and retried next round: the records wait, nothing is lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from handrail.audit.checkpoint import SigningKey
from handrail.audit.log import AuditLog, SignedCheckpoint
from handrail.clock import Clock, SystemClock
from handrail.errors import ConfigurationError

__all__ = ["Sequencer"]

_log = logging.getLogger("handrail.audit")


class Sequencer:
    """Sequences ``log`` as ``origin``, signing with ``signing_key``.

    A checkpoint signs at most ``every_records`` new records, and a record waits at most
    about ``every_seconds`` (plus ``poll_seconds``) before it is signed. Each sequenced
    record is queued for every sink named in ``sinks`` (see
    :mod:`handrail.audit.delivery`).
    """

    def __init__(
        self,
        log: AuditLog,
        signing_key: SigningKey,
        origin: str,
        *,
        every_records: int = 256,
        every_seconds: float = 1.0,
        poll_seconds: float = 0.1,
        sinks: Sequence[str] = (),
        clock: Clock | None = None,
    ) -> None:
        if every_records < 1:
            raise ConfigurationError("every_records must be at least 1")
        if every_seconds <= 0 or poll_seconds <= 0:
            raise ConfigurationError("every_seconds and poll_seconds must be positive")
        self.log = log
        self.signing_key = signing_key
        self.origin = origin
        self.every_records = every_records
        self.every_seconds = every_seconds
        self.poll_seconds = poll_seconds
        self.sinks = tuple(sinks)
        self._clock = clock or SystemClock()
        self._last_signed: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def due(self) -> bool:
        """Whether a round would sign now: enough records wait, or some wait and the last
        checkpoint is ``every_seconds`` old."""
        waiting = self.log.pending()
        if waiting >= self.every_records:
            return True
        if not waiting:
            return False
        if self._last_signed is None:
            latest = self.log.latest_checkpoint()
            self._last_signed = -float("inf") if latest is None else latest.created_at
        return self._clock.now() - self._last_signed >= self.every_seconds

    def run_once(self, *, force: bool = False) -> list[SignedCheckpoint]:
        """Sequence what waits, if :meth:`due` (or ``force``): batches of at most
        ``every_records``, one signed checkpoint each. Returns the new checkpoints."""
        if not force and not self.due():
            return []
        made: list[SignedCheckpoint] = []
        while True:
            signed = self.log.sequence(
                self.signing_key,
                self.origin,
                max_batch=self.every_records,
                sinks=self.sinks,
                now=self._clock.now(),
            )
            if signed is None:
                break
            made.append(signed)
            self._last_signed = signed.created_at
            if self.log.pending() < self.every_records and not force:
                break  # a partial batch waits for its time, unless it is due already
        return made

    def flush(self) -> list[SignedCheckpoint]:
        """Sequence and sign everything that waits now (at shutdown, before an export)."""
        return self.run_once(force=True)

    # -- background ----------------------------------------------------------------------

    def start(self) -> None:
        """Run rounds on a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            raise RuntimeError("the sequencer is running already")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name="handrail-audit-sequencer", daemon=True
        )
        self._thread.start()

    def stop(self, *, flush: bool = True, timeout: float = 10.0) -> None:
        """Stop the thread; with ``flush``, sign what still waits first."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout)
        if flush:
            self.flush()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                _log.exception("audit sequencer round failed; retrying next round")
            self._stop.wait(self.poll_seconds)

    def __enter__(self) -> Sequencer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
