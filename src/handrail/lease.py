"""Heartbeat: keeps the leases of the tasks this process drives alive.

One daemon thread per app renews every held lease each third of the lease time. A lease
that cannot be renewed was taken over (fencing): the task's next write fails with
``LeaseLost`` and this process stops driving it.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from handrail.store.base import Lease

if TYPE_CHECKING:
    from handrail.app import App

log = logging.getLogger("handrail.lease")


class Heartbeat:
    """Renews registered leases in the background while any are held."""

    def __init__(self, app: App):
        self._app = app
        self._leases: set[Lease] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None

    def add(self, lease: Lease) -> None:
        with self._lock:
            self._leases.add(lease)
            if self._thread is None and not self._stop:
                self._thread = threading.Thread(
                    target=self._run, name="handrail-heartbeat", daemon=True
                )
                self._thread.start()

    def discard(self, lease: Lease) -> None:
        with self._lock:
            self._leases.discard(lease)

    def stop(self) -> None:
        with self._lock:
            self._stop = True
            thread, self._thread = self._thread, None
        self._wake.set()
        if thread is not None:
            thread.join(timeout=5)

    def _run(self) -> None:
        interval = self._app.lease_seconds / 3
        while not self._wake.wait(interval):
            self.renew_all()

    def renew_all(self) -> None:
        """Renew every held lease once (the heartbeat thread calls this each interval)."""
        with self._lock:
            leases = list(self._leases)
        for lease in leases:
            try:
                renewed = self._app.store.renew_lease(
                    lease, now=self._app.clock.now(), lease_seconds=self._app.lease_seconds
                )
            except Exception:
                log.exception("renewing the lease of task %s failed", lease.task_id)
                continue
            if not renewed:
                self.discard(lease)
                if self._taken_over(lease):
                    log.warning("lease of task %s was taken over", lease.task_id)

    def _taken_over(self, lease: Lease) -> bool:
        """Whether a lease that could not be renewed was lost, not given up. Usually it was
        given up: the task finished or suspended (releasing its lease) between the
        snapshot of held leases and the renewal, which is no news. A task still leased
        (to another claim, or to this one past its expiry) was lost."""
        try:
            record = self._app.store.get_task(lease.task_id)
        except Exception:
            return True  # cannot tell: say so, as before
        return record is not None and record.lease_owner is not None
