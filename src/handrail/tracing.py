"""OpenTelemetry traces: a span per task run and per tool-call attempt (optional extra).

Span names and attributes follow the GenAI semantic conventions: the task's run is
``invoke_workflow {workflow}`` (``gen_ai.operation.name = invoke_agent``), each executed
tool-call attempt is ``execute_tool {gen_ai.tool.name}`` (``gen_ai.operation.name =
execute_tool``, ``gen_ai.tool.name``, ``gen_ai.tool.call.id``, ``gen_ai.tool.type``), plus
handrail's own ``handrail.*`` attributes (task id, step, attempt, failure class, approval).

**One trace per task**, across crashes, resumes and workers: the trace id is derived from
the task id, and every run's span is a child of the same (synthetic, remote) root span
context, so all runs and their tool calls land in one trace.

Raw payloads (arguments, outputs, error messages) never go into spans unless
``record_payloads=True``. Replayed steps make no spans: only work that runs does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from handrail import serde

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

INSTRUMENTATION = "handrail"


def _ids(task_id: str) -> tuple[int, int]:
    digest = hashlib.sha256(b"handrail-trace\x00" + task_id.encode()).digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:24], "big") or 1
    return trace_id, span_id


def trace_id_of(task_id: str) -> int:
    """The trace id every span of ``task_id`` carries."""
    return _ids(task_id)[0]


class Tracing:
    """Makes the spans of tasks and tool calls (needs ``handrail[otel]``).

    ``tracer_provider``: where spans go (default: OpenTelemetry's global provider).
    ``record_payloads``: put tool arguments, outputs and error messages into spans (off by
    default: they may hold personal data).
    """

    def __init__(
        self, tracer_provider: TracerProvider | None = None, *, record_payloads: bool = False
    ):
        from opentelemetry import trace

        self._trace = trace
        self.tracer: Tracer = trace.get_tracer(INSTRUMENTATION, tracer_provider=tracer_provider)
        self.record_payloads = record_payloads

    def _root(self, task_id: str) -> Any:
        trace = self._trace
        trace_id, span_id = _ids(task_id)
        parent = trace.SpanContext(
            trace_id=trace_id,
            span_id=span_id,
            is_remote=True,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        )
        return trace.set_span_in_context(trace.NonRecordingSpan(parent))

    @contextmanager
    def task_span(
        self, *, task_id: str, workflow: str, agent: str, worker: str, epoch: int
    ) -> Iterator[Span]:
        """The span of one run of a task (a claim): from claim to suspend or finish."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent,
            "gen_ai.conversation.id": task_id,
            "handrail.task.id": task_id,
            "handrail.workflow": workflow,
            "handrail.worker.id": worker,
            "handrail.lease.epoch": epoch,
        }
        with self.tracer.start_as_current_span(
            f"invoke_workflow {workflow}",
            context=self._root(task_id),
            kind=self._trace.SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span

    @contextmanager
    def tool_span(
        self,
        *,
        task_id: str,
        tool: str,
        index: int,
        attempt: int,
        approval: str | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Iterator[Span]:
        """The span of one executed tool-call attempt."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool,
            "gen_ai.tool.call.id": f"{task_id}:{index}:{attempt}",
            "gen_ai.tool.type": "function",
            "handrail.task.id": task_id,
            "handrail.step.index": index,
            "handrail.attempt": attempt,
        }
        if approval is not None:
            attributes["handrail.approval.id"] = approval
        if self.record_payloads:
            attributes["gen_ai.tool.call.arguments"] = serde.dumps({"args": args, "kwargs": kwargs})
        with self.tracer.start_as_current_span(
            f"execute_tool {tool}",
            kind=self._trace.SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span

    def succeeded(self, span: Span | None, output: Any) -> None:
        if span is not None and self.record_payloads:
            span.set_attribute("gen_ai.tool.call.result", serde.dumps(output))

    def failed(self, span: Span | None, exc: BaseException, failure_class: str | None) -> None:
        """Mark the span failed: the error's type always, its message only when payloads
        are recorded."""
        from opentelemetry.trace import Status, StatusCode

        if span is None:
            return
        span.set_attribute("error.type", type(exc).__qualname__)
        if failure_class is not None:
            span.set_attribute("handrail.failure_class", failure_class)
        message = str(exc) if self.record_payloads else None
        span.set_status(Status(StatusCode.ERROR, message))

    def outcome(self, span: Span, status: str) -> None:
        span.set_attribute("handrail.task.status", status)
