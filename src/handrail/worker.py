"""Worker: claims runnable tasks from the store and drives them on a pool of threads.

One dispatcher thread claims tasks while a thread is free and sleeps otherwise, until the
next due time, a wake-up or the poll interval, whichever comes first. A listener thread
waits on the store's wake-up signals (another process created a task, an operator decided,
resumed or released one) and claims the task itself if a thread is free to drive it (one
hand-over less than waking the dispatcher to claim it), waking the dispatcher when there is
more to claim or something falls due before it planned to look; the poll interval is the
fallback for a signal that was lost. Several workers, in threads or processes on any
machine sharing the store, share the work: claims are atomic, and leases with fencing
epochs keep one task on one worker at a time.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from handrail.errors import ConfigurationError
from handrail.store.base import Claim, Subscription

if TYPE_CHECKING:
    from handrail.app import App
    from handrail.audit_jobs import AuditJobs

log = logging.getLogger("handrail.worker")


class Worker:
    """Runs the app's workflows from the store until stopped."""

    def __init__(
        self,
        app: App,
        *,
        concurrency: int = 4,
        queues: Sequence[str] | None = None,
        poll_interval: float = 0.5,
    ):
        if concurrency < 1:
            raise ConfigurationError("concurrency must be at least 1")
        if poll_interval <= 0:
            raise ConfigurationError("poll_interval must be > 0")
        self.app = app
        self.concurrency = concurrency
        self.queues = list(queues) if queues else None
        self.poll_interval = poll_interval
        self._slots = threading.Semaphore(concurrency)
        self._wake = threading.Event()
        # when the dispatcher will look for work by itself (app clock), while it sleeps;
        # infinity while it is busy (it may have read the store before the latest signal)
        self._looking_at = math.inf
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: threading.Thread | None = None
        self._subscription: Subscription | None = None
        self._pool: ThreadPoolExecutor | None = None
        self.completed = 0
        self._alerting = False
        self._audit: AuditJobs | None = None

    def start(self) -> Worker:
        """Run in background threads."""
        if self._thread is not None:
            return self
        if not self.app.workflows:
            raise ConfigurationError("the app has no workflows registered; nothing to run")
        from handrail import audit_jobs

        # the audit log's sequencer, delivery and retention (shared by this app's workers)
        self._audit = audit_jobs.acquire(self.app)
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="handrail-task")
        self.app.add_waker(self._wake)
        self._subscription = self._subscribe()
        if self._subscription is not None:
            self._listener = threading.Thread(
                target=self._listen,
                args=(self._subscription,),
                name="handrail-wake",
                daemon=True,
            )
            self._listener.start()
        if self.app.alert_rules:  # the alert loop: one per app, shared by its workers
            self.app.alerting.start()
            self._alerting = True
        # notifications kept in the outbox that no live process is sending (one loop per app)
        self.app.notifications.start()
        self._thread = threading.Thread(target=self._dispatch, name="handrail-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop claiming; running tasks stop at their next step boundary and are handed
        back to the store for any worker to continue."""
        self._stopping.set()
        self._wake.set()
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            try:
                subscription.close()  # ends the listener's wait
            except Exception:
                log.warning("closing the wake-up subscription failed", exc_info=True)
        if self._listener is not None:
            self._listener.join(timeout)
            self._listener = None
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        audit, self._audit = self._audit, None
        if audit is not None:  # after the tasks: seal (and deliver) their last records
            from handrail import audit_jobs

            audit_jobs.release(audit)
        if self._alerting:
            self._alerting = False
            self.app.alerting.stop()
        self.app.notifications.stop()
        self.app.remove_waker(self._wake)

    def run(self) -> None:
        """Run in this thread until :meth:`stop` is called (from a signal handler, say)."""
        self.start()
        try:
            while not self._stopping.wait(0.5):
                pass
        finally:
            self.stop()

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _subscribe(self) -> Subscription | None:
        try:
            return self.app.store.subscribe()
        except Exception:
            log.warning(
                "cannot listen for the store's wake-up signals; polling every %s s instead",
                self.poll_interval,
                exc_info=True,
            )
            return None

    def _listen(self, subscription: Subscription) -> None:
        """Answer every signal (see :meth:`_signalled`), until stopped."""
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                if subscription.wait(1.0):
                    self._signalled()
                    continue
            except Exception:
                log.exception("waiting for wake-up signals failed; retrying")
            if time.monotonic() - started < 0.5:  # failed or returned early: do not spin
                self._stopping.wait(1.0)

    def _signalled(self) -> None:
        """A write somewhere made a task runnable. If a thread is free, claim on this thread
        and hand the task over: the dispatcher, woken instead, would claim it one thread
        switch later. Wake the dispatcher if no thread is free (it claims when one is),
        if nothing was claimed (the signal may announce a task due later), and if the
        claim says another task falls due before the dispatcher planned to look."""
        if self._stopping.is_set() or not self._slots.acquire(blocking=False):
            self._wake.set()
            return
        claim = self._claim(sorted(self.app.workflows))
        if claim is None:
            self._slots.release()
            self._wake.set()
            return
        assert self._pool is not None
        self._pool.submit(self._drive, claim)
        if claim.next_due is not None and claim.next_due < self._looking_at:
            self._wake.set()

    def _dispatch(self) -> None:
        app = self.app
        workflows = sorted(app.workflows)
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=self.poll_interval):
                continue
            self._wake.clear()
            claim = self._claim(workflows)
            if claim is None:
                self._slots.release()
                self._sleep(self._idle_wait())
                continue
            assert self._pool is not None
            self._pool.submit(self._drive, claim)
            pause = self._pause_after(claim)
            if pause > 0:
                self._sleep(pause)

    def _sleep(self, seconds: float) -> None:
        """Wait for a wake-up, at most ``seconds``; meanwhile the listener knows when this
        thread will look for work by itself (the GIL orders these plain assignments)."""
        self._looking_at = self.app.clock.now() + seconds
        try:
            self._wake.wait(seconds)
        finally:
            self._looking_at = math.inf

    def _pause_after(self, claim: Claim) -> float:
        """How long to wait for a wake-up before claiming again after ``claim``: not at all
        if another task is due, else until the next one falls due (at most the poll
        interval). Claiming again at once only to find nothing would compete with the task
        just handed over for the CPU (and the GIL) while it replays and journals its next
        step; a write that makes a task runnable meanwhile wakes this thread."""
        due = claim.next_due
        if due is None:
            return self.poll_interval
        left = due - self.app.clock.now()
        return 0.0 if left <= 0 else max(0.005, min(self.poll_interval, left))

    def _idle_wait(self) -> float:
        now = self.app.clock.now()
        try:
            due = self.app.store.next_due(
                now=now, queues=self.queues, workflows=sorted(self.app.workflows)
            )
        except Exception:
            return self.poll_interval
        if due is None:
            return self.poll_interval
        return max(0.005, min(self.poll_interval, due - now))

    def _claim(self, workflows: list[str]) -> Claim | None:
        app = self.app
        try:
            return app.store.claim_task(
                app.worker_id,
                now=app.clock.now(),
                lease_seconds=app.lease_seconds,
                queues=self.queues,
                workflows=workflows,
            )
        except Exception:
            log.exception("claiming a task failed; retrying")
            return None

    def _drive(self, claim: Claim) -> None:
        """Drive ``claim``, then keep claiming and driving on this thread while there is
        work: a thread that just finished claims its next task itself, so claims from many
        threads share commits instead of queueing behind the dispatcher."""
        workflows = sorted(self.app.workflows)
        next_claim: Claim | None = claim
        try:
            while next_claim is not None:
                try:
                    self.app.run_claim(next_claim, self._stopping.is_set)
                    self.completed += 1
                except Exception:
                    log.exception("driving task %s failed", next_claim.lease.task_id)
                next_claim = None if self._stopping.is_set() else self._claim(workflows)
        finally:
            self._slots.release()
            self._wake.set()
