"""Time series read back from the journals: queue depth, intervention rate, tool success.

Nothing is sampled or kept on the side: every point is computed from the events the store
holds, so a chart shows the same history whichever process draws it, and after a restart.
The cost is reading the journals of the newest ``max_tasks`` tasks; the page says so when
that limit cut the history short.

- **queue depth**: at the end of each interval, how many tasks were waiting for or held by
  a worker (``pending``/``in_progress``) and how many waited for a human (an approval, an
  intervention, a halt);
- **intervention rate**: interventions raised per 100 tool-call attempts started in the
  interval;
- **tool success**: per tool, the share of attempts that finished in the interval and
  succeeded (a step a human marked done does not count as a success of the tool).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from handrail.journal import EventKind, TaskState, TaskStatus, apply
from handrail.store.base import Store

WINDOWS: dict[str, float | None] = {"auto": None, "1h": 3600.0, "24h": 86_400.0, "7d": 604_800.0}
RUNNABLE = frozenset({TaskStatus.PENDING, TaskStatus.IN_PROGRESS})
WAITING = frozenset(
    {TaskStatus.AWAITING_APPROVAL, TaskStatus.AWAITING_INTERVENTION, TaskStatus.HALTED}
)
MAX_TOOLS = 6


@dataclass
class Series:
    """One line: a value (or ``None``: no data) at the end of each interval."""

    name: str
    values: Sequence[float | None]
    notes: list[str] = field(default_factory=list)


@dataclass
class History:
    """The three charts' series over ``edges`` (interval ends, ascending)."""

    start: float
    edges: list[float]
    queue_depth: list[Series]
    intervention_rate: Series
    tool_success: list[Series]
    tasks_read: int
    truncated: bool


def _edges(start: float, end: float, buckets: int) -> list[float]:
    step = (end - start) / buckets
    return [start + step * (i + 1) for i in range(buckets)]


def history(
    store: Store,
    *,
    now: float,
    window: float | None = None,
    buckets: int = 24,
    queue: str | None = None,
    max_tasks: int = 2000,
) -> History:
    """The series over the last ``window`` seconds (``None``: since the oldest task read)."""
    records = store.list_tasks(queue=queue, limit=max_tasks)
    journals = [store.load_events(r.task_id) for r in records]
    journals = [j for j in journals if j]
    if window is None:
        oldest = min((j[0].timestamp for j in journals), default=now - 3600.0)
        window = max(now - oldest, 60.0) * 1.02
    start = now - window
    edges = _edges(start, now, buckets)

    runnable = [0.0] * buckets
    waiting = [0.0] * buckets
    started = [0] * buckets
    raised = [0] * buckets
    ok: dict[str, list[int]] = {}
    failed: dict[str, list[int]] = {}
    volume: Counter[str] = Counter()

    def bucket(ts: float) -> int | None:
        if ts <= start or ts > now:
            return None
        return min(bisect_right(edges, ts - 1e-9), buckets - 1)

    for events in journals:
        state = TaskState(task_id=events[0].task_id)
        times: list[float] = []
        statuses: list[TaskStatus] = []
        for event in events:
            apply(state, event)
            times.append(event.timestamp)
            statuses.append(state.status)
            b = bucket(event.timestamp)
            if b is None:
                continue
            kind = event.kind
            if kind in (EventKind.STEP_STARTED, EventKind.STEP_RETRIED):
                started[b] += 1
            elif kind is EventKind.INTERVENTION_RAISED:
                raised[b] += 1
            elif kind is EventKind.STEP_COMPLETED and event.step_name:
                if not (event.data or {}).get("via"):
                    ok.setdefault(event.step_name, [0] * buckets)[b] += 1
                    volume[event.step_name] += 1
            elif kind is EventKind.STEP_FAILED and event.step_name:
                failed.setdefault(event.step_name, [0] * buckets)[b] += 1
                volume[event.step_name] += 1
        for i, edge in enumerate(edges):
            at = bisect_right(times, edge)
            if at == 0:
                continue
            status = statuses[at - 1]
            if status in RUNNABLE:
                runnable[i] += 1
            elif status in WAITING:
                waiting[i] += 1

    rate = Series(
        "interventions per 100 attempts",
        [100.0 * r / s if s else None for r, s in zip(raised, started, strict=True)],
        [f"{r} raised, {s} attempts" for r, s in zip(raised, started, strict=True)],
    )
    tools: list[Series] = []
    for name, _ in volume.most_common(MAX_TOOLS):
        good = ok.get(name, [0] * buckets)
        bad = failed.get(name, [0] * buckets)
        tools.append(
            Series(
                name,
                [100.0 * g / (g + f) if g + f else None for g, f in zip(good, bad, strict=True)],
                [f"{g} succeeded, {f} failed" for g, f in zip(good, bad, strict=True)],
            )
        )
    return History(
        start=start,
        edges=edges,
        queue_depth=[
            Series("pending or running", runnable),
            Series("waiting for a human", waiting),
        ],
        intervention_rate=rate,
        tool_success=tools,
        tasks_read=len(records),
        truncated=len(records) >= max_tasks,
    )


def peak(series: Sequence[Series]) -> float:
    return max((v for s in series for v in s.values if v is not None), default=0.0)
