"""Retention and erasure of raw payloads, each recorded in the audit log.

Raw payloads (the technical view) are erased by destroying their data key; compliance
records, the Merkle log and the journal are untouched, and the log still verifies (its
leaves hold salted commitments, never the payloads).

- :func:`erase` destroys one key now (a data subject's request, a task's), and appends an
  ``erasure`` record saying who asked and why.
- :func:`run_retention` applies a :class:`RetentionPolicy`: the keys of tasks that
  finished more than ``raw_payload_days`` ago are destroyed, and one ``retention_run``
  record lists what was destroyed. The caller says which tasks finished before the
  cut-off (the store knows: terminal tasks last updated before it).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable

from handrail.audit.log import AuditLog
from handrail.audit.record import RecordKind, build_audit_record
from handrail.clock import Clock, SystemClock
from handrail.errors import ConfigurationError

__all__ = ["ErasureResult", "RetentionPolicy", "RetentionReport", "erase", "run_retention"]

DAY = 86_400.0


@dataclasses.dataclass(frozen=True)
class RetentionPolicy:
    """How long raw payloads are kept after their task finished, in days."""

    raw_payload_days: float

    def __post_init__(self) -> None:
        if self.raw_payload_days < 0:
            raise ConfigurationError("raw_payload_days must not be negative")

    def cutoff(self, now: float) -> float:
        """Tasks that finished before this time have expired raw payloads."""
        return now - self.raw_payload_days * DAY


@dataclasses.dataclass(frozen=True)
class ErasureResult:
    """An erasure: the key id, whether a key existed to destroy, the audit record's id."""

    key_id: str
    destroyed: bool
    call_id: str


@dataclasses.dataclass(frozen=True)
class RetentionReport:
    """A retention run: the cut-off, the task keys destroyed now, the tasks whose keys
    were gone already, and the id of the ``retention_run`` audit record."""

    cutoff: float
    destroyed: tuple[str, ...]
    already_erased: tuple[str, ...]
    call_id: str


def erase(
    log: AuditLog,
    key_id: str,
    *,
    by: str,
    reason: str | None = None,
    task_id: str | None = None,
    clock: Clock | None = None,
) -> ErasureResult:
    """Destroy the data key ``key_id`` (``task:<id>`` or ``subject:<id>``) and append an
    ``erasure`` record. Every raw payload sealed under the key becomes unreadable; the
    key id can never be used again."""
    now = (clock or SystemClock()).now()
    destroyed = log.keys.destroy(key_id, by=by, reason=reason)
    call_id = f"erasure:{uuid.uuid4()}"
    row = build_audit_record(
        RecordKind.ERASURE,
        call_id=call_id,
        task_id=task_id,
        actor=by,
        timestamp=now,
        logged_at=now,
        details={"key_id": key_id, "reason": reason, "key_existed": destroyed},
    )
    log.append([row])
    return ErasureResult(key_id, destroyed, call_id)


def run_retention(
    log: AuditLog,
    policy: RetentionPolicy,
    tasks_finished_before: Callable[[float], Iterable[str]] | Iterable[str],
    *,
    by: str = "system:retention",
    clock: Clock | None = None,
) -> RetentionReport:
    """Destroy the data keys (``task:<id>``) of tasks that finished before the policy's
    cut-off and append a ``retention_run`` record, even when nothing expired (an
    auditor sees that retention runs).

    ``tasks_finished_before`` is either a function of the cut-off time returning those
    task ids, or the ids themselves. Only task keys are touched: per-subject keys are
    erased on request (:func:`erase`).
    """
    from handrail.audit.payloads import task_key_id

    now = (clock or SystemClock()).now()
    cutoff = policy.cutoff(now)
    tasks = (
        tasks_finished_before(cutoff) if callable(tasks_finished_before) else tasks_finished_before
    )
    reason = f"retention: raw payloads kept {policy.raw_payload_days:g} days after the task"
    destroyed: list[str] = []
    already: list[str] = []
    for task_id in dict.fromkeys(tasks):  # once each, in the order given
        key_id = task_key_id(task_id)
        if log.keys.destroyed(key_id):
            already.append(task_id)
            continue
        log.keys.destroy(key_id, by=by, reason=reason)
        destroyed.append(task_id)
    call_id = f"retention:{uuid.uuid4()}"
    row = build_audit_record(
        RecordKind.RETENTION_RUN,
        call_id=call_id,
        task_id=None,
        actor=by,
        timestamp=now,
        logged_at=now,
        details={
            "raw_payload_days": policy.raw_payload_days,
            "cutoff": cutoff,
            "tasks_erased": destroyed,
            "tasks_already_erased": len(already),
        },
    )
    log.append([row])
    return RetentionReport(cutoff, tuple(destroyed), tuple(already), call_id)
