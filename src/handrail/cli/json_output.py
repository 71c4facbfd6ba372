"""The ``--json`` face of the CLI: tasks, events and interventions as plain JSON objects.

Step inputs and outputs are given as the journal stores them (JSON, with handrail's tagged
types such as ``{"$hr": "datetime", ...}`` left as they are), so nothing is lost or guessed.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import click

from handrail.approvals import Approval
from handrail.journal import Event, Intervention, StepState
from handrail.ops import TaskView
from handrail.store.base import TaskRecord


def _parsed(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def task_record(record: TaskRecord) -> dict[str, Any]:
    return dataclasses.asdict(record)


def event(e: Event) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "kind": e.kind.value,
        "timestamp": e.timestamp,
        "status": e.status,
        "step_index": e.step_index,
        "step_name": e.step_name,
        "agent_reasoning": e.agent_reasoning,
        "actor": e.actor,
        "inputs": _parsed(e.inputs_json),
        "outputs": _parsed(e.outputs_json),
        "error": e.error,
        "requires_human_approval": e.requires_human_approval,
        "data": e.data,
    }


def intervention(item: Intervention) -> dict[str, Any]:
    return {**dataclasses.asdict(item), "open": item.open}


def approval(item: Approval) -> dict[str, Any]:
    return {
        **item.request.to_dict(),
        "status": item.status,
        "decisions": [d.to_dict() for d in item.decisions],
        "superseded_by": item.superseded_by,
        "reminded_at": item.reminded_at,
    }


def _step(step: StepState) -> dict[str, Any]:
    fields = dataclasses.asdict(step)
    fields["inputs"] = _parsed(fields.pop("inputs_json"))
    fields["outputs"] = _parsed(fields.pop("outputs_json"))
    fields["in_doubt"] = step.in_doubt
    return fields


def task_view(view: TaskView) -> dict[str, Any]:
    state = view.state
    return {
        "task": task_record(view.record),
        "inputs": _parsed(state.inputs_json),
        "result": _parsed(state.result_json),
        "error": state.error,
        "steps": [_step(s) for _, s in sorted(state.steps.items())],
        "interventions": [intervention(i) for i in state.interventions.values()],
        "approvals": [approval(a) for a in state.approvals.values()],
        "events": [event(e) for e in view.events],
        "context_summary": state.context_summary(),
    }


def emit(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))
