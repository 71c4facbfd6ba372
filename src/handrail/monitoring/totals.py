"""Cumulative counts from the audit log, for Prometheus counters and histograms.

Prometheus counters must only go up, so these are not windowed: they count every
tool-call record and every approval decision the log holds. The log is append-only and
shared by all workers, so any process that reads it all gets the same totals: two
``/metrics`` endpoints agree, and a restarted one starts where the log is, not at zero.

:class:`Totals` reads the log once in full, then on each :meth:`Totals.update` only what
was appended since. Record ids are handed out at insert but become visible at commit, so
on PostgreSQL a record can appear *behind* one already read. The reader therefore
re-reads the last ``settle_seconds`` of the log each time, skipping the ids it has
counted; a record that commits later than that after being created is missed (a
transaction that holds an audit insert open that long is a bug of its own).

Cost: the first update reads and decodes the whole log (compliance JSON only; payloads are
never opened); later ones read the records appended since, plus the settle margin.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from handrail.monitoring.snapshot import iter_records

if TYPE_CHECKING:
    from handrail.audit.log import AuditLog
    from handrail.audit.record import StoredRecord

__all__ = [
    "APPROVAL_BUCKETS",
    "LATENCY_BUCKETS",
    "Cumulative",
    "Histogram",
    "Totals",
]

LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
"""Upper bounds (seconds) of the tool-call latency histogram; ``+Inf`` is implied."""

APPROVAL_BUCKETS: tuple[float, ...] = (
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 259200.0,
)  # fmt: skip
"""Upper bounds (seconds) of the time-to-decision histogram; ``+Inf`` is implied."""

NO_FAILURE = "none"
"""The ``failure_class`` label of a successful call."""


@dataclass
class Histogram:
    """Observations counted per bucket (``counts[i]``: at most ``bounds[i]``, not
    cumulative; the last count is above every bound), with their sum."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations at most it)`` per bucket, ``+Inf`` last."""
        running = 0
        out: list[tuple[float, int]] = []
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out

    def copy(self) -> Histogram:
        return Histogram(self.bounds, list(self.counts), self.total)


@dataclass(frozen=True)
class Cumulative:
    """A copy of the totals at one moment.

    - ``calls``: tool-call attempts by ``(tool, outcome, failure_class)`` (``"none"`` for
      a success);
    - ``retries``: attempts after a step's first, by tool;
    - ``latency``: a :class:`Histogram` of call durations in seconds, by tool;
    - ``decisions``: a :class:`Histogram` of seconds from request to decision, by outcome
      (``approved``/``denied``), of requests whose decision is complete;
    - ``records``: how many audit records were read in all.
    """

    calls: Mapping[tuple[str, str, str], int]
    retries: Mapping[str, int]
    latency: Mapping[str, Histogram]
    decisions: Mapping[str, Histogram]
    records: int


class Totals:
    """Counts every tool call and approval decision in one audit log, incrementally.
    Thread-safe."""

    def __init__(self, log: AuditLog, *, settle_seconds: float = 60.0):
        self._log = log
        self.settle_seconds = settle_seconds
        self._lock = threading.Lock()
        self._settled_id = 0  # every record up to here is counted (or never will be)
        self._recent: dict[int, float] = {}  # counted ids above _settled_id: created_at
        self._calls: dict[tuple[str, str, str], int] = {}
        self._retries: dict[str, int] = {}
        self._latency: dict[str, Histogram] = {}
        self._decisions: dict[str, Histogram] = {}
        self._requests: dict[str, tuple[float, int]] = {}  # open: created_at, quorum
        self._approvers: dict[str, set[str]] = {}
        self._records = 0

    def update(self, now: float) -> Cumulative:
        """Read what was appended since the last update; return the totals."""
        with self._lock:
            horizon = now - self.settle_seconds
            newest_settled = self._settled_id
            for row in iter_records(self._log, after_id=self._settled_id):
                if row.record_id not in self._recent:
                    self._recent[row.record_id] = row.created_at
                    self._count(row)
            for record_id, created_at in sorted(self._recent.items()):
                if created_at >= horizon:
                    break
                newest_settled = record_id
            self._settled_id = newest_settled
            self._recent = {i: t for i, t in self._recent.items() if i > newest_settled}
            return self._view()

    def _view(self) -> Cumulative:
        return Cumulative(
            calls=dict(self._calls),
            retries=dict(self._retries),
            latency={k: h.copy() for k, h in self._latency.items()},
            decisions={k: h.copy() for k, h in self._decisions.items()},
            records=self._records,
        )

    def _count(self, row: StoredRecord) -> None:
        from handrail.audit.record import RecordKind

        self._records += 1
        if row.kind == RecordKind.TOOL_CALL:
            self._tool_call(json.loads(row.compliance_json))
        elif row.kind == RecordKind.APPROVAL_REQUESTED:
            self._requested(json.loads(row.compliance_json))
        elif row.kind == RecordKind.APPROVAL_DECIDED:
            self._decided(json.loads(row.compliance_json))

    def _tool_call(self, c: Mapping[str, object]) -> None:
        tool = str(c["tool_name"])
        outcome = str(c["outcome"])
        failure = NO_FAILURE if outcome == "success" else str(c.get("failure_class") or "unknown")
        key = (tool, outcome, failure)
        self._calls[key] = self._calls.get(key, 0) + 1
        attempt = c.get("attempt")
        if isinstance(attempt, int) and attempt > 1:
            self._retries[tool] = self._retries.get(tool, 0) + 1
        else:
            self._retries.setdefault(tool, 0)
        duration_us = c.get("duration_us")
        if isinstance(duration_us, int | float):
            histogram = self._latency.setdefault(tool, Histogram(LATENCY_BUCKETS))
            histogram.observe(duration_us / 1e6)

    def _requested(self, c: Mapping[str, object]) -> None:
        from handrail.audit.record import from_iso

        details = c.get("details")
        if not isinstance(details, dict) or not details.get("request_id"):
            return
        quorum = details.get("quorum")
        self._requests[str(details["request_id"])] = (
            from_iso(str(c["timestamp"])),
            quorum if isinstance(quorum, int) and quorum > 0 else 1,
        )

    def _decided(self, c: Mapping[str, object]) -> None:
        from handrail.audit.record import from_iso

        details = c.get("details")
        if not isinstance(details, dict):
            return
        rid = str(details.get("request_id"))
        opened = self._requests.get(rid)
        if opened is None:
            return  # decided already (a late decision is refused) or not a request we saw
        created_at, quorum = opened
        decision = str(details.get("decision"))
        if decision == "approved":
            approvers = self._approvers.setdefault(rid, set())
            approvers.add(str(c.get("actor")))
            if len(approvers) < quorum:
                return
        elif decision != "denied":
            return
        self._requests.pop(rid, None)
        self._approvers.pop(rid, None)
        histogram = self._decisions.setdefault(decision, Histogram(APPROVAL_BUCKETS))
        histogram.observe(max(0.0, from_iso(str(c["timestamp"])) - created_at))


def histogram_of(values: Sequence[float], bounds: tuple[float, ...]) -> Histogram:
    """A :class:`Histogram` of ``values``."""
    histogram = Histogram(bounds)
    for value in values:
        histogram.observe(value)
    return histogram
