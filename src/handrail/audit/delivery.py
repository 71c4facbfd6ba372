"""Delivery: the durable outbox between the audit log and its sinks.

The sequencer queues every record it integrates for every configured sink (a row per
sink and record in ``handrail_audit_outbox``). :class:`Delivery` sends each sink its
queue in leaf order, one record at a time, and marks what the sink took. When a sink
fails, the record stays queued with its attempt count and error, and that sink's
delivery backs off exponentially (with jitter, up to ``max_delay``) while the other
sinks carry on. Nothing overtakes a failed record, so a sink that comes back receives
everything it missed, in order. The backlog of each sink is visible
(:meth:`Delivery.backlog`) for monitoring.

Delivery is at least once: a crash between a sink taking a record and the outbox
marking it delivered sends that record again on restart (documents carry ``call_id``
and ``leaf_index`` to deduplicate). Run one delivery loop per sink name at a time.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from handrail.audit.log import AuditLog, Backlog
from handrail.audit.payloads import PayloadVault
from handrail.audit.record import StoredRecord, compliance_view, technical_document
from handrail.audit.sinks import Sink
from handrail.clock import Clock, SystemClock
from handrail.errors import ConfigurationError

__all__ = ["Backoff", "Delivery", "DeliveryReport", "render"]

_log = logging.getLogger("handrail.audit")


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Exponential back-off: ``initial * factor**(attempts - 1)``, capped at ``maximum``
    seconds, each delay scaled by a random factor in ``[1 - jitter, 1]``."""

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 300.0
    jitter: float = 0.2

    def delay(self, attempts: int) -> float:
        """The wait after the ``attempts``-th failure in a row (1 for the first)."""
        base = min(self.maximum, self.initial * self.factor ** max(0, attempts - 1))
        return base * (1 - self.jitter * random.random())


@dataclasses.dataclass(frozen=True)
class DeliveryReport:
    """One round: records ``delivered`` and ``failed`` per sink."""

    delivered: dict[str, int]
    failed: dict[str, int]


def render(record: StoredRecord, view: str, vault: PayloadVault | None) -> dict[str, Any]:
    """The document a sink of ``view`` receives for ``record``."""
    if view == "compliance":
        return compliance_view(record)
    return technical_document(record, vault)


class Delivery:
    """Delivers ``log``'s records to ``sinks``. ``vault`` opens raw payloads for
    technical sinks; without it they receive the sealed envelopes (which erasure still
    reaches: the copies are unreadable once the key is destroyed)."""

    def __init__(
        self,
        log: AuditLog,
        sinks: Iterable[Sink],
        *,
        vault: PayloadVault | None = None,
        backoff: Backoff | None = None,
        batch: int = 100,
        poll_seconds: float = 0.5,
        clock: Clock | None = None,
    ) -> None:
        self.log = log
        self.sinks = list(sinks)
        names = [s.name for s in self.sinks]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"sink names must be unique: {names}")
        self.vault = vault
        self.backoff = backoff or Backoff()
        self.batch = batch
        self.poll_seconds = poll_seconds
        self._clock = clock or SystemClock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def sink_names(self) -> list[str]:
        """The names to give the sequencer's ``sinks``."""
        return [s.name for s in self.sinks]

    def deliver_sink(self, sink: Sink) -> tuple[int, int]:
        """Send ``sink`` what is due for it, in order, until its queue is empty or it
        fails; returns (delivered, failed)."""
        sent = 0
        while True:
            now = self._clock.now()
            items = self.log.due(sink.name, now=now, limit=self.batch)
            if not items:
                return sent, 0
            done: list[int] = []
            try:
                for item in items:
                    try:
                        sink.send(render(item.record, sink.view, self.vault))
                    except Exception as exc:
                        attempts = item.attempts + 1
                        next_at = self._clock.now() + self.backoff.delay(attempts)
                        error = f"{type(exc).__name__}: {exc}"[:2000]
                        self.log.failed(
                            sink.name, item.record.record_id, next_at=next_at, error=error
                        )
                        _log.warning(
                            "audit sink %s failed on leaf %s (attempt %d), retrying in %.1fs: %s",
                            sink.name,
                            item.record.leaf_index,
                            attempts,
                            next_at - now,
                            error,
                        )
                        return sent + len(done), 1
                    done.append(item.record.record_id)
            finally:
                if done:
                    self.log.delivered(sink.name, done, now=self._clock.now())
            sent += len(done)

    def run_once(self) -> DeliveryReport:
        """One round over every sink."""
        delivered: dict[str, int] = {}
        failed: dict[str, int] = {}
        for sink in self.sinks:
            try:
                delivered[sink.name], failed[sink.name] = self.deliver_sink(sink)
            except Exception:  # the log itself failed: try again next round
                _log.exception("audit delivery to %s failed", sink.name)
                delivered.setdefault(sink.name, 0)
                failed[sink.name] = failed.get(sink.name, 0) + 1
        return DeliveryReport(delivered, failed)

    def backlog(self) -> Mapping[str, Backlog]:
        """Each sink's backlog."""
        return {sink.name: self.log.backlog(sink.name) for sink in self.sinks}

    # -- background ----------------------------------------------------------------------

    def start(self) -> None:
        """Run rounds on a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            raise RuntimeError("delivery is running already")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name="handrail-audit-delivery", daemon=True
        )
        self._thread.start()

    def stop(self, *, timeout: float = 10.0, close_sinks: bool = True) -> None:
        """Stop the thread (and close the sinks)."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout)
        if close_sinks:
            for sink in self.sinks:
                sink.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.poll_seconds)
