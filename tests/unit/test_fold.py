"""Property-based tests of the fold: task state is a pure function of the journal."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from handrail.journal import Event, EventKind, StepStatus, TaskStatus, apply, fold

TASK = "t"


@dataclass
class Model:
    """What the journal should say, tracked independently of the fold."""

    events: list[Event] = field(default_factory=list)
    status: TaskStatus = TaskStatus.PENDING
    steps: dict[int, tuple[StepStatus, str | None]] = field(default_factory=dict)
    open_interventions: dict[str, int] = field(default_factory=dict)
    resolved: int = 0

    def add(self, kind: EventKind, **fields: Any) -> None:
        self.events.append(Event(TASK, len(self.events), kind, float(len(self.events)), **fields))


ACTIONS = st.sampled_from(
    ["claim", "start", "complete", "fail", "retry", "intervene", "resolve", "timer", "resume"]
)


def build(actions: list[str], values: list[int], finish: str) -> Model:
    m = Model()
    m.add(EventKind.TASK_CREATED, inputs_json="[]", actor="alice", data={"workflow": "wf"})
    vals = iter(values * 50 + [0] * 1000)
    for action in actions:
        in_doubt = [i for i, (s, _) in m.steps.items() if s is StepStatus.IN_PROGRESS]
        failed = [i for i, (s, _) in m.steps.items() if s is StepStatus.FAILED]
        if m.status in (TaskStatus.AWAITING_INTERVENTION,) and action != "resolve":
            continue
        if action == "claim":
            m.add(EventKind.TASK_CLAIMED, data={"worker": "w", "epoch": len(m.events)})
            m.status = TaskStatus.IN_PROGRESS
        elif action == "start" and not in_doubt:
            index = len(m.steps)
            m.add(
                EventKind.STEP_STARTED,
                step_index=index,
                step_name=f"s{index}",
                inputs_json=str(next(vals)),
                agent_reasoning=f"why {index}",
            )
            m.steps[index] = (StepStatus.IN_PROGRESS, None)
        elif action == "complete" and in_doubt:
            index = in_doubt[0]
            out = str(next(vals))
            m.add(
                EventKind.STEP_COMPLETED, step_index=index, step_name=f"s{index}", outputs_json=out
            )
            m.steps[index] = (StepStatus.COMPLETED, out)
        elif action == "fail" and in_doubt:
            index = in_doubt[0]
            m.add(
                EventKind.STEP_FAILED,
                step_index=index,
                step_name=f"s{index}",
                error={"type": "E", "message": "m"},
            )
            m.steps[index] = (StepStatus.FAILED, None)
        elif action == "retry" and (failed or in_doubt):
            index = (failed or in_doubt)[0]
            m.add(EventKind.STEP_RETRIED, step_index=index, step_name=f"s{index}")
            m.steps[index] = (StepStatus.IN_PROGRESS, None)
        elif action == "intervene" and in_doubt:
            iid = f"i{len(m.events)}"
            m.add(
                EventKind.INTERVENTION_RAISED,
                step_index=in_doubt[0],
                step_name="x",
                data={"intervention_id": iid, "kind": "in_doubt", "reason": "r"},
            )
            m.open_interventions[iid] = in_doubt[0]
            m.status = TaskStatus.AWAITING_INTERVENTION
        elif action == "resolve" and m.open_interventions:
            iid, _ = m.open_interventions.popitem()
            m.add(
                EventKind.INTERVENTION_RESOLVED,
                actor="op",
                data={"intervention_id": iid, "action": "retry"},
            )
            m.resolved += 1
            if not m.open_interventions:
                m.status = TaskStatus.PENDING
        elif action == "timer":
            m.add(EventKind.TIMER_SET, data={"due": 5.0})
        elif action == "resume" and m.status is not TaskStatus.AWAITING_INTERVENTION:
            m.add(EventKind.TASK_RESUMED, actor="op")
            m.status = TaskStatus.PENDING
    if m.open_interventions:
        return m
    if finish == "complete":
        m.add(EventKind.TASK_COMPLETED, outputs_json='"r"')
        m.status = TaskStatus.COMPLETED
    elif finish == "fail":
        m.add(EventKind.TASK_FAILED, error={"type": "X", "message": "y"})
        m.status = TaskStatus.FAILED
    elif finish == "cancel":
        m.add(EventKind.CANCEL_REQUESTED, actor="bob")
        m.add(EventKind.TASK_CANCELLED, actor="bob")
        m.status = TaskStatus.CANCELLED
    return m


journals = st.builds(
    build,
    st.lists(ACTIONS, max_size=60),
    st.lists(st.integers(0, 9), min_size=1, max_size=5),
    st.sampled_from(["none", "complete", "fail", "cancel"]),
)


@settings(max_examples=300, deadline=None)
@given(journals)
def test_fold_matches_the_model(m: Model) -> None:
    state = fold(m.events)
    assert state.status is m.status
    assert state.last_seq == len(m.events) - 1
    assert {i: (s.status, s.outputs_json) for i, s in state.steps.items()} == m.steps
    assert {i.intervention_id for i in state.open_interventions()} == set(m.open_interventions)
    assert sum(1 for i in state.interventions.values() if not i.open) == m.resolved
    assert state.initiator == "alice"
    assert state.workflow == "wf"
    for index, step in state.steps.items():
        assert step.in_doubt == (m.steps[index][0] is StepStatus.IN_PROGRESS)


@settings(max_examples=200, deadline=None)
@given(journals, st.data())
def test_fold_is_incremental_and_leaves_events_alone(m: Model, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(m.events)))
    before = copy.deepcopy(m.events)
    whole = fold(m.events)
    partial = fold(m.events[:cut], TASK)
    for event in m.events[cut:]:
        apply(partial, event)
    assert partial == whole
    assert m.events == before  # events are never mutated
    assert fold(m.events) == whole  # deterministic


@settings(max_examples=100, deadline=None)
@given(journals)
def test_context_summary_lists_completed_steps_in_order(m: Model) -> None:
    summary = fold(m.events).context_summary()
    done = sorted(i for i, (s, _) in m.steps.items() if s is StepStatus.COMPLETED)
    if not done:
        assert summary == "No previous steps. Starting fresh."
        return
    lines = summary.splitlines()[1:]
    assert [line.split(" ")[1] for line in lines] == [str(i) for i in done]
    for line, index in zip(lines, done, strict=True):
        assert line == f"Step {index} (s{index}): completed - why {index}"


def test_event_status_follows_its_kind() -> None:
    e = Event(TASK, 0, EventKind.STEP_STARTED, 0.0, step_index=0, step_name="s")
    assert e.status == "in_progress"
    assert Event(TASK, 1, EventKind.TASK_COMPLETED, 0.0).status == "completed"
    assert Event(TASK, 1, EventKind.INTERVENTION_RAISED, 0.0).status == "awaiting_intervention"
