"""Monitor: snapshots of one store, cached for a few seconds, with cumulative totals.

One per process that reports (an HTTP API's ``/metrics``, a worker's alert loop): it keeps
the audit-log reader that feeds the Prometheus counters (see
:mod:`handrail.monitoring.totals`), and reuses a snapshot younger than ``ttl`` seconds so
that many scrapes or page loads cost one computation.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from handrail.errors import ConfigurationError
from handrail.monitoring.snapshot import Snapshot, take_snapshot

if TYPE_CHECKING:
    from handrail.app import App
    from handrail.clock import Clock
    from handrail.monitoring.totals import Totals
    from handrail.store.base import Store

__all__ = ["Monitor"]


class Monitor:
    """Takes :class:`~handrail.monitoring.Snapshot` s of ``store``.

    - ``window``: seconds covered by the window figures (tool calls, decided approvals,
      the intervention rate);
    - ``ttl``: a snapshot younger than this (on ``clock``) is reused;
    - ``expected_decision_seconds``: a pending approval older than this is *missed* even
      before its deadline (``None``: only past its deadline);
    - ``max_tasks``: at most this many task rows are read per status group;
    - ``totals``: keep the audit log's cumulative counts (Prometheus counters); off for
      a monitor that only feeds alerts or ``handrail status``.
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        window: float = 3600.0,
        ttl: float = 5.0,
        expected_decision_seconds: float | None = None,
        max_tasks: int = 10_000,
        totals: bool = True,
    ):
        if window <= 0:
            raise ConfigurationError("the monitoring window must be > 0 seconds")
        if ttl < 0:
            raise ConfigurationError("the snapshot ttl must be >= 0 seconds")
        if expected_decision_seconds is not None and expected_decision_seconds <= 0:
            raise ConfigurationError("expected_decision_seconds must be > 0 (or None)")
        if max_tasks < 1:
            raise ConfigurationError("max_tasks must be at least 1")
        from handrail.clock import SystemClock

        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.window = window
        self.ttl = ttl
        self.expected_decision_seconds = expected_decision_seconds
        self.max_tasks = max_tasks
        self._totals: Totals | None = None
        self._keep_totals = totals
        self._lock = threading.Lock()
        self._last: Snapshot | None = None

    @classmethod
    def for_app(
        cls,
        app: App,
        *,
        window: float = 3600.0,
        ttl: float = 5.0,
        expected_decision_seconds: float | None = None,
        max_tasks: int = 10_000,
        totals: bool = True,
    ) -> Monitor:
        """A monitor of ``app``'s store on ``app``'s clock."""
        return cls(
            app.store,
            clock=app.clock,
            window=window,
            ttl=ttl,
            expected_decision_seconds=expected_decision_seconds,
            max_tasks=max_tasks,
            totals=totals,
        )

    def snapshot(self, *, fresh: bool = False) -> Snapshot:
        """The current snapshot: the cached one if younger than ``ttl``, unless
        ``fresh``."""
        with self._lock:
            now = self.clock.now()
            last = self._last
            if not fresh and last is not None and 0 <= now - last.taken_at < self.ttl:
                return last
            totals = None
            if self._keep_totals:
                if self._totals is None:
                    from handrail.monitoring.totals import Totals

                    self._totals = Totals(self.store.audit_log())
                totals = self._totals.update(now)
            self._last = take_snapshot(
                self.store,
                now=now,
                window=self.window,
                expected_decision_seconds=self.expected_decision_seconds,
                max_tasks=self.max_tasks,
                totals=totals,
            )
            return self._last
