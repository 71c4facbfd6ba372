"""The numbers an operator watches, computed from the store at one moment.

A :class:`Snapshot` is read from what every worker writes (task rows, journals, the audit
log), so it holds across workers and processes. :func:`take_snapshot` reads:

- the rows of **unfinished tasks** (one ``list_tasks`` query): queue depth by queue and
  status, tasks due for a worker and how long the oldest has waited, leases that expired;
- the **journals** of a few of them: in-progress tasks that may be past their
  ``max_execution_time`` (to find when they went in progress) and tasks awaiting approval
  (their open requests);
- the **audit log's** tool-call and approval-decision records created in the window:
  calls by tool, outcome and failure class, retries, latency, time to decision;
- the rows and journals of **tasks finished in the window**: the human-intervention rate.

Cost: two ``list_tasks`` queries of at most ``max_tasks`` rows, one audit-log scan of the
window (the log has no index on its time column, so PostgreSQL and SQLite filter the whole
table; the rows outside the window are not decoded), and one ``load_events`` per task
finished in the window, per task awaiting approval, per overdue candidate and per task
with an approval decided in the window. Cache snapshots (:class:`~handrail.monitoring.Monitor`
does, for a few seconds) rather than taking one per request. Past ``max_tasks`` rows a
snapshot is marked ``truncated``.

Definitions (docs/monitoring.md says the same):

due task
    an unfinished task whose due time (``run_at``, or the end of an expired lease) has
    come and that no live lease holds: it waits for a worker. Its *age* is how long since
    it came due.
stuck task
    an in-progress task whose lease expired (its worker died: ``lease_expired``), or that
    has been in progress longer than its workflow's ``max_execution_time`` (``overdue``),
    counted from when it last went in progress (a wait for a human ends the count).
missed approval
    a pending request past its deadline (``expires_at``: the timer should have decided it;
    no worker is running the deadline) or, with ``expected_decision_seconds``, pending
    longer than that (``past_expected``).
human-intervention ratio
    of the tasks that finished (completed, failed or cancelled) in the window, the
    fraction whose journal holds an ``intervention_raised`` (the runtime had to ask a
    human: permission, data error, in-doubt step, budget) or a ``task_resumed`` event (an
    operator had to restart it). Approvals are not counted: a gate asks for them by
    policy; the approval ratio (tasks with at least one approval request) is given apart.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from handrail.journal import Event, EventKind, TaskState, TaskStatus, apply, fold

if TYPE_CHECKING:
    from handrail.approvals import Approval
    from handrail.audit.log import AuditLog, Backlog
    from handrail.audit.record import StoredRecord
    from handrail.monitoring.totals import Cumulative
    from handrail.notify.outbox import NoticeCounts
    from handrail.store.base import Store, TaskRecord

__all__ = [
    "ApprovalStats",
    "InterventionStats",
    "PendingAge",
    "PendingApproval",
    "Snapshot",
    "StuckTask",
    "ToolStats",
    "quantile",
    "take_snapshot",
]

UNFINISHED: tuple[TaskStatus, ...] = tuple(s for s in TaskStatus if not s.terminal)
FINISHED: tuple[TaskStatus, ...] = tuple(s for s in TaskStatus if s.terminal)
LEASE_EXPIRED = "lease_expired"
OVERDUE = "overdue"
PAST_DEADLINE = "past_deadline"
PAST_EXPECTED = "past_expected"
_PAGE = 1000
_FINISH_KINDS = frozenset(
    {EventKind.TASK_COMPLETED, EventKind.TASK_FAILED, EventKind.TASK_CANCELLED}
)
_INTERVENTION_KINDS = frozenset({EventKind.INTERVENTION_RAISED, EventKind.TASK_RESUMED})


def quantile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile of ``values`` (``None`` if empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class PendingAge:
    """The task of a queue that has waited longest for a worker since it came due."""

    queue: str
    task_id: str
    due_at: float
    age_seconds: float


@dataclass(frozen=True, slots=True)
class StuckTask:
    """An in-progress task that is not moving. ``since`` is when its lease expired
    (``lease_expired``) or when it went in progress (``overdue``); ``seconds`` is how long
    ago that was."""

    task_id: str
    workflow: str
    queue: str
    reason: str
    since: float
    seconds: float
    worker: str | None
    max_execution_seconds: float | None


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """A pending approval request; ``missed`` says why it is late (``past_deadline`` or
    ``past_expected``), ``None`` if it is not."""

    request_id: str
    task_id: str
    tool: str
    group: str
    created_at: float
    expires_at: float | None
    waiting_seconds: float
    missed: str | None


@dataclass(frozen=True, slots=True)
class ToolStats:
    """One tool's calls in the window. ``outcomes`` counts by outcome (success, failure,
    partial), ``failure_classes`` the failed ones by class; ``retries`` are attempts after
    a step's first; latencies are in seconds (nearest rank)."""

    tool: str
    calls: int
    outcomes: Mapping[str, int]
    failure_classes: Mapping[str, int]
    retries: int
    latency_p50: float | None
    latency_p95: float | None
    latency_max: float | None

    @property
    def successes(self) -> int:
        return self.outcomes.get("success", 0)

    @property
    def success_rate(self) -> float | None:
        """Successful calls over all calls; ``None`` without calls."""
        return None if self.calls == 0 else self.successes / self.calls


@dataclass(frozen=True, slots=True)
class ApprovalStats:
    """Approval requests now (``pending``, ``queued`` behind a full group) and those
    decided in the window, with their time from request to decision in seconds."""

    pending: int = 0
    queued: int = 0
    decided: int = 0
    approved: int = 0
    denied: int = 0
    by_timer: int = 0
    decision_p50: float | None = None
    decision_p95: float | None = None
    decision_max: float | None = None


@dataclass(frozen=True, slots=True)
class InterventionStats:
    """Tasks finished in the window, and how many needed a human beyond their policy
    (``intervened``) or asked for at least one approval (``approval_requested``)."""

    finished: int = 0
    intervened: int = 0
    approval_requested: int = 0

    @property
    def ratio(self) -> float | None:
        """The human-intervention ratio; ``None`` when no task finished in the window."""
        return None if self.finished == 0 else self.intervened / self.finished

    @property
    def approval_ratio(self) -> float | None:
        return None if self.finished == 0 else self.approval_requested / self.finished


@dataclass(frozen=True)
class Snapshot:
    """Everything :mod:`handrail.monitoring` reports, as of ``taken_at``.

    ``tasks`` maps ``(queue, status)`` to the number of unfinished tasks; ``due`` maps a
    queue to its tasks waiting for a worker; ``oldest_pending`` gives each queue's longest
    wait. Window figures (tools, decided approvals, interventions) cover
    ``[taken_at - window_seconds, taken_at]``. ``totals`` are the audit log's cumulative
    counts (for Prometheus counters), when the snapshot was taken with them.
    """

    taken_at: float
    window_seconds: float
    tasks: Mapping[tuple[str, str], int]
    due: Mapping[str, int]
    oldest_pending: Mapping[str, PendingAge]
    stuck: tuple[StuckTask, ...]
    pending_approvals: tuple[PendingApproval, ...]
    approvals: ApprovalStats
    tools: tuple[ToolStats, ...]
    interventions: InterventionStats
    truncated: bool = False
    elapsed_seconds: float = 0.0
    totals: Cumulative | None = field(default=None, compare=False)
    notices: Mapping[str, NoticeCounts] = field(default_factory=dict)
    """The notification outbox per notifier: queued, sent, given up."""
    sinks: Mapping[str, Backlog] = field(default_factory=dict)
    """The audit log's outbox per sink: pending, delivered, the head's attempts and error."""

    @property
    def since(self) -> float:
        return self.taken_at - self.window_seconds

    @property
    def queues(self) -> list[str]:
        """Every queue with an unfinished task."""
        return sorted({queue for queue, _ in self.tasks})

    @property
    def missed_approvals(self) -> tuple[PendingApproval, ...]:
        """The pending requests past their deadline or the expected decision time."""
        return tuple(p for p in self.pending_approvals if p.missed is not None)

    @property
    def oldest_pending_age(self) -> float | None:
        """The longest any due task has waited for a worker (``None``: none is due)."""
        ages = [p.age_seconds for p in self.oldest_pending.values()]
        return max(ages) if ages else None

    def tool(self, name: str) -> ToolStats | None:
        return next((t for t in self.tools if t.tool == name), None)

    def depth(self, queue: str | None = None, status: TaskStatus | str | None = None) -> int:
        """Unfinished tasks, optionally of one queue and one status."""
        return sum(
            n
            for (q, s), n in self.tasks.items()
            if (queue is None or q == queue) and (status is None or s == str(status))
        )

    def to_dict(self) -> dict[str, Any]:
        """The snapshot as JSON-ready data (``handrail status --json``, an HTTP API)."""
        return {
            "taken_at": self.taken_at,
            "window_seconds": self.window_seconds,
            "truncated": self.truncated,
            "elapsed_seconds": self.elapsed_seconds,
            "queues": [
                {
                    "queue": queue,
                    "statuses": {s: n for (q, s), n in sorted(self.tasks.items()) if q == queue},
                    "due": self.due.get(queue, 0),
                    "oldest_pending": _plain(self.oldest_pending.get(queue)),
                }
                for queue in self.queues
            ],
            "oldest_pending_age_seconds": self.oldest_pending_age,
            "stuck": [_plain(s) for s in self.stuck],
            "pending_approvals": [_plain(p) for p in self.pending_approvals],
            "missed_approvals": [_plain(m) for m in self.missed_approvals],
            "approvals": _plain(self.approvals),
            "tools": [
                {**_plain(t), "success_rate": t.success_rate, "successes": t.successes}
                for t in self.tools
            ],
            "interventions": {
                **_plain(self.interventions),
                "ratio": self.interventions.ratio,
                "approval_ratio": self.interventions.approval_ratio,
            },
            "notifications": {name: _plain(c) for name, c in sorted(self.notices.items())},
            "audit_sinks": {name: _plain(b) for name, b in sorted(self.sinks.items())},
        }


def _plain(value: Any) -> Any:
    if value is None:
        return None
    return json.loads(json.dumps(dataclasses.asdict(value)))


# -- computing ------------------------------------------------------------------------------


def take_snapshot(
    store: Store,
    *,
    now: float,
    window: float = 3600.0,
    expected_decision_seconds: float | None = None,
    max_tasks: int = 10_000,
    totals: Cumulative | None = None,
) -> Snapshot:
    """Compute a :class:`Snapshot` of ``store`` at ``now`` over the last ``window``
    seconds. Works on every store through the store protocol; see the module docstring for
    what it reads and costs."""
    started = time.perf_counter()
    since = now - window
    rows = store.list_tasks(statuses=UNFINISHED, limit=max_tasks)
    finished_rows = store.list_tasks(statuses=FINISHED, limit=max_tasks)
    truncated = len(rows) >= max_tasks or len(finished_rows) >= max_tasks

    tasks: dict[tuple[str, str], int] = {}
    due: dict[str, int] = {}
    oldest: dict[str, PendingAge] = {}
    stuck: list[StuckTask] = []
    awaiting: list[TaskRecord] = []
    for row in rows:
        key = (row.queue, row.status.value)
        tasks[key] = tasks.get(key, 0) + 1
        due.setdefault(row.queue, 0)
        due_at = _due_at(row)
        if due_at is not None and due_at <= now and not row.leased(now):
            due[row.queue] += 1
            age = now - due_at
            best = oldest.get(row.queue)
            if best is None or age > best.age_seconds:
                oldest[row.queue] = PendingAge(row.queue, row.task_id, due_at, age)
        found = _stuck(store, row, now)
        if found is not None:
            stuck.append(found)
        if row.status is TaskStatus.AWAITING_APPROVAL:
            awaiting.append(row)

    approvals, waiting = _approvals_now(store, awaiting, now, expected_decision_seconds)
    log = store.audit_log()
    tools, decided = _window_records(log, since)
    approvals = dataclasses.replace(approvals, **_decision_stats(store, decided, since))
    interventions = _interventions(store, finished_rows, since)
    stuck.sort(key=lambda s: -s.seconds)
    waiting.sort(key=lambda p: (p.created_at, p.request_id))
    return Snapshot(
        taken_at=now,
        window_seconds=window,
        tasks=tasks,
        due=due,
        oldest_pending=oldest,
        stuck=tuple(stuck),
        pending_approvals=tuple(waiting),
        approvals=approvals,
        tools=tools,
        interventions=interventions,
        truncated=truncated,
        elapsed_seconds=time.perf_counter() - started,
        totals=totals,
        notices=store.notice_outbox().counts(),
        sinks={name: log.backlog(name) for name in log.sinks()},
    )


def _due_at(row: TaskRecord) -> float | None:
    """When the task became claimable: its due time, or when its lease ran out if later."""
    if row.run_at is None:
        return None
    if row.lease_owner is not None and row.lease_expires_at is not None:
        return max(row.run_at, row.lease_expires_at)
    return row.run_at


def _stuck(store: Store, row: TaskRecord, now: float) -> StuckTask | None:
    if row.status is not TaskStatus.IN_PROGRESS:
        return None
    expires = row.lease_expires_at
    if row.lease_owner is not None and expires is not None and expires <= now:
        return StuckTask(
            task_id=row.task_id,
            workflow=row.workflow,
            queue=row.queue,
            reason=LEASE_EXPIRED,
            since=expires,
            seconds=now - expires,
            worker=row.lease_owner,
            max_execution_seconds=row.max_execution_seconds,
        )
    limit = row.max_execution_seconds
    if limit is None or now - row.created_at <= limit:
        return None  # in progress no longer than it exists: cannot be overdue yet
    since = in_progress_since(store.load_events(row.task_id))
    if since is None or now - since <= limit:
        return None
    return StuckTask(
        task_id=row.task_id,
        workflow=row.workflow,
        queue=row.queue,
        reason=OVERDUE,
        since=since,
        seconds=now - since,
        worker=row.lease_owner,
        max_execution_seconds=limit,
    )


def in_progress_since(events: Sequence[Event]) -> float | None:
    """When the task last went in progress (``None`` if it is not in progress)."""
    if not events:
        return None
    state = TaskState(task_id=events[0].task_id)
    since: float | None = None
    for event in events:
        before = state.status
        apply(state, event)
        if state.status is TaskStatus.IN_PROGRESS and before is not TaskStatus.IN_PROGRESS:
            since = event.timestamp
        elif state.status is not TaskStatus.IN_PROGRESS:
            since = None
    return since


def _approvals_now(
    store: Store, awaiting: Sequence[TaskRecord], now: float, expected: float | None
) -> tuple[ApprovalStats, list[PendingApproval]]:
    queued = 0
    waiting: list[PendingApproval] = []
    for row in awaiting:
        state = fold(store.load_events(row.task_id), row.task_id)
        queued += len(state.queued_for_approval)
        for approval in state.open_approvals():
            request = approval.request
            waiting.append(
                PendingApproval(
                    request_id=request.request_id,
                    task_id=request.task_id,
                    tool=request.tool,
                    group=request.group,
                    created_at=request.created_at,
                    expires_at=request.expires_at,
                    waiting_seconds=now - request.created_at,
                    missed=missed_reason(approval, now, expected),
                )
            )
    return ApprovalStats(pending=len(waiting), queued=queued), waiting


def missed_reason(approval: Approval, now: float, expected: float | None) -> str | None:
    """Why a pending request is late at ``now``, or ``None``."""
    request = approval.request
    if request.expires_at is not None and now >= request.expires_at:
        return PAST_DEADLINE
    if expected is not None and now - request.created_at > expected:
        return PAST_EXPECTED
    return None


def iter_records(
    log: AuditLog, *, since: float | None = None, after_id: int | None = None
) -> Iterator[StoredRecord]:
    """Every audit record created at or after ``since`` (with an id above ``after_id``),
    in id order, a page at a time."""
    cursor = after_id
    while True:
        page = log.records(since=since, after_id=cursor, limit=_PAGE)
        yield from page
        if len(page) < _PAGE:
            return
        cursor = page[-1].record_id


def _window_records(
    log: AuditLog, since: float
) -> tuple[tuple[ToolStats, ...], dict[str, set[str]]]:
    """Tool statistics of the calls recorded since ``since``, and the approval requests
    decided since then (by task)."""
    from handrail.audit.record import RecordKind, tool_call_record

    latencies: dict[str, list[float]] = {}
    outcomes: dict[str, dict[str, int]] = {}
    classes: dict[str, dict[str, int]] = {}
    retries: dict[str, int] = {}
    decided: dict[str, set[str]] = {}
    for row in iter_records(log, since=since):
        if row.kind == RecordKind.APPROVAL_DECIDED and row.task_id is not None:
            details = json.loads(row.compliance_json).get("details", {})
            if details.get("request_id"):
                decided.setdefault(row.task_id, set()).add(str(details["request_id"]))
            continue
        if row.kind != RecordKind.TOOL_CALL:
            continue
        call = tool_call_record(row, None)
        name = call.tool_name
        latencies.setdefault(name, []).append(call.duration_ms / 1000.0)
        by_outcome = outcomes.setdefault(name, {})
        by_outcome[call.outcome.value] = by_outcome.get(call.outcome.value, 0) + 1
        if call.outcome.value != "success":
            cls = call.failure_class or "unknown"
            by_class = classes.setdefault(name, {})
            by_class[cls] = by_class.get(cls, 0) + 1
        retries[name] = retries.get(name, 0) + (1 if (call.attempt or 1) > 1 else 0)
    tools = tuple(
        ToolStats(
            tool=name,
            calls=len(values),
            outcomes=dict(sorted(outcomes[name].items())),
            failure_classes=dict(sorted(classes.get(name, {}).items())),
            retries=retries.get(name, 0),
            latency_p50=quantile(values, 0.5),
            latency_p95=quantile(values, 0.95),
            latency_max=max(values),
        )
        for name, values in sorted(latencies.items())
    )
    return tools, decided


def _decision_stats(store: Store, decided: Mapping[str, set[str]], since: float) -> dict[str, Any]:
    """Requests that reached their decision in the window, and how long it took."""
    times: list[float] = []
    approved = denied = by_timer = 0
    for task_id, request_ids in sorted(decided.items()):
        state = fold(store.load_events(task_id), task_id)
        for rid in sorted(request_ids):
            approval = state.approvals.get(rid)
            if approval is None or approval.open or not approval.decisions:
                continue
            final = approval.decisions[-1]  # a decided request takes no more decisions
            if final.at < since:
                continue
            times.append(final.at - approval.request.created_at)
            if approval.status == "approved":
                approved += 1
            elif approval.status == "denied":
                denied += 1
            if final.by.startswith("timer:"):
                by_timer += 1
    return {
        "decided": len(times),
        "approved": approved,
        "denied": denied,
        "by_timer": by_timer,
        "decision_p50": quantile(times, 0.5),
        "decision_p95": quantile(times, 0.95),
        "decision_max": max(times) if times else None,
    }


def _interventions(
    store: Store, finished_rows: Sequence[TaskRecord], since: float
) -> InterventionStats:
    finished = intervened = asked = 0
    for row in finished_rows:
        if row.updated_at < since:
            continue  # finished (last written) before the window
        events = store.load_events(row.task_id)
        ended = next((e.timestamp for e in reversed(events) if e.kind in _FINISH_KINDS), None)
        if ended is None or ended < since:
            continue
        finished += 1
        kinds = {e.kind for e in events}
        if kinds & _INTERVENTION_KINDS:
            intervened += 1
        if EventKind.APPROVAL_REQUESTED in kinds:
            asked += 1
    return InterventionStats(finished=finished, intervened=intervened, approval_requested=asked)
