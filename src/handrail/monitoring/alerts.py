"""Alerting: evaluate alert rules periodically; notify once per incident, and once more
when it resolves.

An *incident* is a ``(rule, key)`` pair a rule finds (a stuck task, a slow queue, a failing
tool). The round that first finds it sends an ``alert`` notification through the app's
notifiers; later rounds that still find it send nothing; the first round that no longer
finds it sends a "resolved" one. Incident state lives in this object, in memory: it
survives evaluation rounds and a worker's restart within the process, not the process.
A process started while an incident is open alerts on it once more; and every process that
runs alert rules alerts on its own, so configure ``alert_rules`` on one worker (or accept
one notification per such worker).

The worker starts the loop (:meth:`Alerting.start`) when the app has ``alert_rules``;
:meth:`Alerting.evaluate` runs one round now (tests, cron). A rule that raises is logged
and its incidents are left as they are; so is a round whose snapshot fails.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from handrail.errors import ConfigurationError

if TYPE_CHECKING:
    from handrail.app import App
    from handrail.monitoring.monitor import Monitor
    from handrail.monitoring.rules import AlertRule
    from handrail.monitoring.snapshot import Snapshot

__all__ = ["AlertChange", "Alerting", "Incident"]

log = logging.getLogger("handrail.monitoring")

FIRING: Final = "firing"
RESOLVED: Final = "resolved"


@dataclass(frozen=True)
class Incident:
    """An open incident: what the rule found, and since when."""

    rule: str
    key: str
    title: str
    details: Mapping[str, Any]
    started_at: float


@dataclass(frozen=True)
class AlertChange:
    """An incident that started (``firing``) or ended (``resolved``) in one round."""

    state: Literal["firing", "resolved"]
    incident: Incident
    at: float

    @property
    def title(self) -> str:
        prefix = "ALERT" if self.state == FIRING else "RESOLVED"
        return f"{prefix} [{self.incident.rule}] {self.incident.title}"

    @property
    def details(self) -> dict[str, Any]:
        """What the notification carries."""
        found = {
            "state": self.state,
            "rule": self.incident.rule,
            "key": self.incident.key,
            "started_at": self.incident.started_at,
            **self.incident.details,
        }
        if self.state == RESOLVED:
            found["resolved_at"] = self.at
        return found


Send = Callable[[AlertChange], None]


@dataclass
class _Loop:
    users: int = 0
    thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)


class Alerting:
    """Runs ``rules`` over ``monitor``'s snapshots and tells ``send`` what changed.

    ``interval``: seconds between rounds of the background loop.
    """

    def __init__(
        self,
        rules: Sequence[AlertRule],
        *,
        monitor: Monitor,
        send: Send | None = None,
        interval: float = 30.0,
    ):
        if interval <= 0:
            raise ConfigurationError("the alert interval must be > 0 seconds")
        names = [rule.name for rule in rules]
        if len(set(names)) != len(names):
            raise ConfigurationError(
                f"alert rule names must be unique (got {names}); pass name=... to tell "
                "two rules of one kind apart"
            )
        self.rules = list(rules)
        self.monitor = monitor
        self.send = send
        self.interval = interval
        self._open: dict[tuple[str, str], Incident] = {}
        self._lock = threading.Lock()
        self._loop = _Loop()

    @classmethod
    def for_app(cls, app: App, *, interval: float | None = None) -> Alerting:
        """Alerting over ``app``'s store and clock, sending through its notifiers."""
        from handrail.monitoring.monitor import Monitor

        def send(change: AlertChange) -> None:
            app.notifications.alert(change.title, change.details, now=change.at)

        return cls(
            app.alert_rules,
            monitor=Monitor.for_app(app, totals=False, ttl=0.0),
            send=send,
            interval=app.alert_interval if interval is None else interval,
        )

    @property
    def firing(self) -> list[Incident]:
        """The open incidents, oldest first."""
        with self._lock:
            return sorted(self._open.values(), key=lambda i: (i.started_at, i.rule, i.key))

    def evaluate(self) -> list[AlertChange]:
        """One round now: take a fresh snapshot, run the rules, send what changed."""
        return self.observe(self.monitor.snapshot(fresh=True))

    def observe(self, snapshot: Snapshot) -> list[AlertChange]:
        """Run the rules over ``snapshot``; send and return the incidents that started or
        ended."""
        changes: list[AlertChange] = []
        now = snapshot.taken_at
        with self._lock:
            for rule in self.rules:
                try:
                    findings = rule.check(snapshot)
                except Exception:
                    log.exception(
                        "alert rule %s failed; its incidents stay as they were", rule.name
                    )
                    continue
                seen: set[str] = set()
                for finding in findings:
                    seen.add(finding.key)
                    key = (rule.name, finding.key)
                    if key in self._open:
                        continue
                    incident = Incident(rule.name, finding.key, finding.title, finding.details, now)
                    self._open[key] = incident
                    changes.append(AlertChange(FIRING, incident, now))
                for key, incident in list(self._open.items()):
                    if key[0] == rule.name and key[1] not in seen:
                        del self._open[key]
                        changes.append(AlertChange(RESOLVED, incident, now))
        for change in changes:
            self._send(change)
        return changes

    def _send(self, change: AlertChange) -> None:
        if self.send is None:
            return
        try:
            self.send(change)
        except Exception:
            log.exception("sending alert %r failed", change.title)

    # -- the background loop -----------------------------------------------------------

    def start(self) -> None:
        """Start the loop (once: every ``start`` needs its ``stop``)."""
        loop = self._loop
        with self._lock:
            loop.users += 1
            if loop.thread is not None:
                return
            loop.stop = threading.Event()
            loop.thread = threading.Thread(
                target=self._run, args=(loop.stop,), name="handrail-alerts", daemon=True
            )
            loop.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop once every :meth:`start` has its ``stop``."""
        loop = self._loop
        with self._lock:
            loop.users = max(0, loop.users - 1)
            if loop.users > 0 or loop.thread is None:
                return
            thread, loop.thread = loop.thread, None
            loop.stop.set()
        thread.join(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the loop whatever the number of :meth:`start` calls (the app is closing)."""
        with self._lock:
            self._loop.users = 1
        self.stop(timeout)

    @property
    def running(self) -> bool:
        return self._loop.thread is not None

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.evaluate()
            except Exception:
                log.exception("evaluating alert rules failed; next round in %s s", self.interval)
            stop.wait(self.interval)
