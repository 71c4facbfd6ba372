"""OpenTelemetry traces: a span per task run and per tool call, GenAI attributes, one trace
per task across crashes and resumes, no raw payloads unless opted in (issue 6 item 3)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from handrail import App, TaskContext
from handrail.testing import ManualClock
from handrail.tracing import Tracing, trace_id_of

MakeApp = Callable[..., App]


class Crash(BaseException):
    """The process dies here."""


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


def tracing(exporter: InMemorySpanExporter, **kwargs: Any) -> Tracing:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider, **kwargs)


def spans(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


def test_spans_follow_the_genai_conventions_and_keep_payloads_out(
    make_app: MakeApp, clock: ManualClock, exporter: InMemorySpanExporter
) -> None:
    app = make_app(tracing=tracing(exporter), max_inline_wait=0)
    failures = [TimeoutError("vendor API timed out")]

    @app.tool(idempotent=True)
    def lookup(email: str) -> str:
        if failures:
            raise failures.pop()
        return f"secret for {email}"

    @app.workflow(agent="renewal-bot")
    def renew(ctx: TaskContext) -> str:
        ctx.now()
        return str(lookup("ann@example.com"))

    handle = app.run(renew)
    clock.advance(120)
    app.execute(handle.task_id)
    assert handle.result() == "secret for ann@example.com"

    runs = spans(exporter, "invoke_workflow")
    calls = spans(exporter, "execute_tool")
    assert len(runs) == 2  # the back-off suspended the first run
    assert [s.name for s in calls] == ["execute_tool lookup", "execute_tool lookup"]
    trace_id = trace_id_of(handle.task_id)
    assert {s.context.trace_id for s in runs + calls} == {trace_id}
    for run in runs:
        assert run.name == "invoke_workflow renew"
        assert run.attributes is not None
        assert run.attributes["gen_ai.operation.name"] == "invoke_agent"
        assert run.attributes["gen_ai.agent.name"] == "renewal-bot"
        assert run.attributes["handrail.task.id"] == handle.task_id
    assert runs[-1].attributes is not None
    assert runs[-1].attributes["handrail.task.status"] == "completed"
    failed, succeeded = calls
    assert failed.attributes is not None
    assert succeeded.attributes is not None
    assert failed.attributes["gen_ai.operation.name"] == "execute_tool"
    assert failed.attributes["gen_ai.tool.name"] == "lookup"
    assert failed.attributes["gen_ai.tool.call.id"] == f"{handle.task_id}:1:1"
    assert succeeded.attributes["gen_ai.tool.call.id"] == f"{handle.task_id}:1:2"
    assert failed.attributes["handrail.step.index"] == 1
    assert failed.attributes["handrail.failure_class"] == "transient"
    assert failed.attributes["error.type"] == "TimeoutError"
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description is None  # the message may hold personal data
    # each tool span is a child of its run's span
    assert failed.parent is not None
    assert failed.parent.span_id == runs[0].context.span_id
    for span in runs + calls:
        text = repr(dict(span.attributes or {}))
        assert "ann@example.com" not in text
        assert "secret" not in text


def test_payloads_go_into_spans_only_when_asked(
    make_app: MakeApp, exporter: InMemorySpanExporter
) -> None:
    app = make_app(tracing=tracing(exporter, record_payloads=True))

    @app.tool
    def lookup(email: str) -> str:
        return f"found {email}"

    @app.workflow
    def wf(ctx: TaskContext) -> str:
        return str(lookup("ann@example.com"))

    app.run(wf)
    (call,) = spans(exporter, "execute_tool")
    assert call.attributes is not None
    assert "ann@example.com" in str(call.attributes["gen_ai.tool.call.arguments"])
    assert call.attributes["gen_ai.tool.call.result"] == '"found ann@example.com"'


def test_one_trace_per_task_across_a_crash_and_another_worker(
    make_app: MakeApp, exporter: InMemorySpanExporter
) -> None:
    crash = [True]

    def build() -> tuple[App, Any]:
        app = make_app(tracing=tracing(exporter), worker_id="w")

        @app.tool(idempotent=True)
        def step_one(x: int) -> int:
            return x + 1

        @app.tool(idempotent=True)
        def step_two(x: int) -> int:
            if crash and crash.pop():
                raise Crash
            return x * 2

        @app.workflow
        def wf(ctx: TaskContext) -> int:
            return int(step_two(step_one(1)))

        return app, wf

    first, wf = build()
    handle = first.start(wf)
    with pytest.raises(Crash):
        first.execute(handle.task_id)
    second, _ = build()
    second.execute(handle.task_id)
    assert second.handle(handle.task_id).result() == 4
    everything = exporter.get_finished_spans()
    assert {s.context.trace_id for s in everything} == {trace_id_of(handle.task_id)}
    assert len(spans(exporter, "invoke_workflow")) == 2
    names = [s.name for s in spans(exporter, "execute_tool")]
    assert names == ["execute_tool step_one", "execute_tool step_two", "execute_tool step_two"]
    other = first.start(wf)
    first.execute(other.task_id)
    assert trace_id_of(other.task_id) != trace_id_of(handle.task_id)


def test_an_approved_call_names_its_approval(
    make_app: MakeApp, exporter: InMemorySpanExporter
) -> None:
    app = make_app(tracing=tracing(exporter))

    @app.tool(reversibility="irreversible")
    def wire(amount: int) -> str:
        return "sent"

    @app.workflow
    def wf(ctx: TaskContext) -> str:
        return str(wire(10))

    handle = app.run(wf)
    (pending,) = app.approvals(task_id=handle.task_id)
    app.approve(pending.request_id, by="dana")
    app.execute(handle.task_id)
    (call,) = spans(exporter, "execute_tool")
    assert call.attributes is not None
    assert call.attributes["handrail.approval.id"] == pending.request_id
