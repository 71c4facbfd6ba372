"""The audit log's background jobs, run by a worker beside its tasks.

- the **sequencer** (:mod:`handrail.audit.sequencer`) integrates the records the steps
  wrote into the Merkle log and signs a checkpoint every 256 records or every second. Its
  key is the App's ``audit_key``, ``$HANDRAIL_AUDIT_KEY`` or ``<db>.audit-key`` next to a
  SQLite store (created on first use). A PostgreSQL (or in-memory) store without a
  configured key is not sequenced: a warning says so once, and the records wait, safe,
  until a worker with a key runs.
- **delivery** (:mod:`handrail.audit.delivery`) sends every sequenced record to each of the
  App's ``audit_sinks``, in order, through the outbox; technical sinks get the raw
  payloads opened.
- **retention** applies the App's ``audit_retention`` policy when the worker starts and
  every hour after (:func:`handrail.audit_ops.apply_retention`).

Workers of one App in one process share one set of jobs (:func:`acquire`: the first to
start starts them; :func:`release`: the last to stop stops them); stopping signs what
still waits and delivers it once more.
Several processes may each sequence (the database lets one at a time do it); give every
process that sequences the same sinks, and run delivery for a sink in one process (it is
at least once: two loops on one sink may send a record twice).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from handrail.errors import ConfigurationError, SignatureInvalid

if TYPE_CHECKING:
    from handrail.app import App
    from handrail.audit.delivery import Delivery
    from handrail.audit.sequencer import Sequencer

__all__ = ["RETENTION_EVERY", "AuditJobs", "acquire", "release"]

_log = logging.getLogger("handrail.audit")

RETENTION_EVERY = 3600.0
"""Seconds between two retention runs of a worker."""

_warned_unkeyed = False
_running: dict[int, AuditJobs] = {}  # by id(app), while a worker of the app runs
_running_lock = threading.Lock()


def acquire(app: App) -> AuditJobs:
    """Start ``app``'s jobs for a worker, or join those another worker of it started."""
    with _running_lock:
        jobs = _running.get(id(app))
        if jobs is None:
            jobs = AuditJobs(app)
            jobs.start()
            _running[id(app)] = jobs
        jobs.users += 1
        return jobs


def release(jobs: AuditJobs) -> None:
    """A worker is done with ``jobs``; the last one stops them (see :meth:`AuditJobs.stop`)."""
    with _running_lock:
        jobs.users -= 1
        if jobs.users > 0:
            return
        if _running.get(id(jobs.app)) is jobs:
            del _running[id(jobs.app)]
    jobs.stop()


class AuditJobs:
    """The sequencer, delivery and retention of one App (see the module docs).
    Workers share them through :func:`acquire` and :func:`release`."""

    def __init__(self, app: App, *, retention_every: float = RETENTION_EVERY):
        if retention_every <= 0:
            raise ConfigurationError("retention_every must be positive")
        self.app = app
        self.retention_every = retention_every
        self.sequencer: Sequencer | None = None
        self.delivery: Delivery | None = None
        self.users = 0
        self._stop = threading.Event()
        self._retention: threading.Thread | None = None

    def start(self) -> None:
        """Start what the App configures: the sequencer if a key is found, delivery if it
        has sinks, retention if it has a policy."""
        app = self.app
        if app.auditor is None:
            return  # App(audit=False): no records to seal
        self._stop.clear()
        log = app.store.audit_log()
        try:
            if app.audit_sinks:
                from handrail.audit.delivery import Delivery

                self.delivery = Delivery(log, app.audit_sinks, vault=log.vault)
            self.sequencer = self._make_sequencer()
            if self.sequencer is not None:
                self.sequencer.start()
            if self.delivery is not None:
                self.delivery.start()
            if app.audit_retention is not None:
                self._retention = threading.Thread(
                    target=self._retain, name="handrail-audit-retention", daemon=True
                )
                self._retention.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop retention, sign what still waits, and deliver it once more."""
        self._stop.set()
        retention, self._retention = self._retention, None
        if retention is not None:
            retention.join(30.0)
        sequencer, self.sequencer = self.sequencer, None
        delivery, self.delivery = self.delivery, None
        if sequencer is not None:
            try:
                sequencer.stop(flush=True)
            except Exception:
                _log.exception("sealing the audit log at shutdown failed; a later run seals it")
        if delivery is not None:
            delivery.stop(close_sinks=False)  # the App closes its sinks
            delivery.run_once()  # what the last seal queued

    # -- internals -----------------------------------------------------------------------

    def _make_sequencer(self) -> Sequencer | None:
        from handrail.audit.checkpoint import verify_checkpoint
        from handrail.audit.keys import load_or_create_signing_key
        from handrail.audit.sequencer import Sequencer
        from handrail.audit_ops import LOG_ORIGIN, signing_key_path

        global _warned_unkeyed
        app = self.app
        path = signing_key_path(app.store, app.audit_key)
        if path is None:
            if not _warned_unkeyed:
                _warned_unkeyed = True
                _log.warning(
                    "the audit log is not sealed: no signing key is configured for this "
                    "store. Pass App(audit_key=PATH) or set HANDRAIL_AUDIT_KEY; records are "
                    "kept and sealed once a worker with a key runs"
                )
            return None
        key = load_or_create_signing_key(LOG_ORIGIN, path=path)
        log = app.store.audit_log()
        latest = log.latest_checkpoint()
        if latest is not None:
            try:
                verify_checkpoint(latest.note, key.public_key)
            except SignatureInvalid:
                raise ConfigurationError(
                    f"the audit log's checkpoints were signed with another key than {path}: "
                    "sealing with this one would break verification. Point audit_key (or "
                    "HANDRAIL_AUDIT_KEY) at the key that signed them"
                ) from None
        origin = LOG_ORIGIN if latest is None else latest.checkpoint.origin
        sinks = [] if self.delivery is None else self.delivery.sink_names
        # Idle, a round costs one query: every 0.5 s keeps an idle worker quiet, and a
        # record still waits at most about every_seconds + 0.5 s to be signed.
        return Sequencer(log, key, origin, sinks=sinks, poll_seconds=0.5)

    def _retain(self) -> None:
        from handrail.audit_ops import apply_retention

        app = self.app
        policy = app.audit_retention
        while policy is not None:  # once at start, then every retention_every seconds
            try:
                report = apply_retention(app.store, None, policy, clock=app.clock)
                if report.destroyed:
                    _log.info(
                        "audit retention erased the raw payloads of %d task(s)",
                        len(report.destroyed),
                    )
            except Exception:
                _log.exception("audit retention failed; retrying in %.0fs", self.retention_every)
            if self._stop.wait(self.retention_every):
                return
