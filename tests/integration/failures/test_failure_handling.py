"""Failure handling against a real HTTP service that misbehaves on command.

Tools call the vendor CRM in ``service.py`` with httpx (and requests, to show that both
clients' errors are classified by status). Each test checks the journal and the service's
request log: how many attempts reached the service, with which inputs, and what the engine
recorded and decided about each.

Timing logic runs on a ``ManualClock`` (``max_inline_wait=0``: every back-off returns to the
test, which moves the clock); the two real-clock tests use tiny delays and only ``>=``
checks. Engine tests run on SQLite and PostgreSQL (skipped when PostgreSQL is unreachable).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from service import Fault, VendorCRM, running_crm

import handrail
from handrail import App, Event, EventKind, TaskContext, TaskHandle, TaskStatus, ToolCall
from handrail.errors import (
    HumanInterventionRequired,
    InvalidOperationError,
    TaskFailedError,
    TaskFailure,
)
from handrail.failures import FailureClass, RetryPolicy, classify, http_status
from handrail.store.url import open_store
from handrail.testing import ManualClock

HERE = Path(__file__).parent
MakeApp = Callable[..., App]

T = FailureClass.TRANSIENT
S = FailureClass.STALE_DATA
P = FailureClass.PERMISSION
D = FailureClass.DATA_ERROR
F = FailureClass.FATAL


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_kind(request: pytest.FixtureRequest) -> str:
    """Engine tests here run on the durable stores (overrides the conftest's list)."""
    kind: str = request.param
    return kind


@pytest.fixture
def crm() -> Iterator[VendorCRM]:
    with running_crm() as service:
        service.add_record("42", name="Acme", stage="lead")
        service.add_record("7", name="Globex", stage="lead")
        yield service
    assert service.errors == []


# -- clients and tools -------------------------------------------------------------------


def httpx_get(url: str, timeout: float = 2.0) -> Any:
    response = httpx.get(url, timeout=timeout)
    response.raise_for_status()
    return response.json()


def requests_get(url: str, timeout: float = 2.0) -> Any:
    response = requests.get(url, timeout=timeout)
    response.raise_for_status()
    return response.json()


CLIENTS: dict[str, Callable[..., Any]] = {"httpx": httpx_get, "requests": requests_get}


def raised(fn: Callable[..., Any], *args: Any) -> Exception:
    try:
        fn(*args)
    except Exception as exc:
        return exc
    raise AssertionError(f"{fn.__name__}{args} raised nothing")


@dataclass
class CrmTools:
    """The vendor's API as tools of one app (httpx)."""

    get_record: Callable[..., Any]
    update_record: Callable[..., Any]
    update_if_match: Callable[..., Any]
    create_record: Callable[..., Any]
    refreshes: list[tuple[ToolCall, BaseException]]


def crm_tools(app: App, url: str, *, retry: RetryPolicy | None = None) -> CrmTools:
    """``update_record`` and ``update_if_match`` re-read the record when their version is
    stale (their refresh hook GETs it); ``create_record`` has no refresh hook."""
    refreshes: list[tuple[ToolCall, BaseException]] = []

    def reread_version(call: ToolCall, error: BaseException) -> dict[str, Any]:
        refreshes.append((call, error))
        record = httpx_get(f"{url}/records/{call.args[0]}")
        return {"version": record["version"]}

    @app.tool(idempotent=True, retry=retry)
    def get_record(record_id: str) -> dict[str, Any]:
        return dict(httpx_get(f"{url}/records/{record_id}"))

    # a PUT carrying the version it expects is idempotent: sent twice, the second gets a 409
    @app.tool(idempotent=True, retry=retry, refresh=reread_version)
    def update_record(record_id: str, version: int, fields: dict[str, Any]) -> dict[str, Any]:
        body = {"version": version, "fields": fields}
        response = httpx.put(f"{url}/records/{record_id}", json=body, timeout=2.0)
        response.raise_for_status()
        return dict(response.json())

    @app.tool(idempotent=True, retry=retry, refresh=reread_version)
    def update_if_match(record_id: str, version: int, fields: dict[str, Any]) -> dict[str, Any]:
        response = httpx.put(
            f"{url}/records/{record_id}",
            json={"version": version, "fields": fields},
            headers={"If-Match": f'"{version}"'},
            timeout=2.0,
        )
        response.raise_for_status()
        return dict(response.json())

    @app.tool(retry=retry)
    def create_record(fields: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{url}/records", json={"fields": fields}, timeout=2.0)
        response.raise_for_status()
        return dict(response.json())

    return CrmTools(get_record, update_record, update_if_match, create_record, refreshes)


# -- journal helpers ---------------------------------------------------------------------


def of_kind(handle: TaskHandle, kind: EventKind) -> list[Event]:
    return [e for e in handle.events() if e.kind is kind]


def failures(handle: TaskHandle) -> list[tuple[str, int]]:
    """``(failure_class, attempt)`` of every STEP_FAILED event, in order."""
    return [
        (e.error["failure_class"], e.error["attempt"])
        for e in of_kind(handle, EventKind.STEP_FAILED)
        if e.error is not None
    ]


def delays(handle: TaskHandle) -> list[float]:
    """The back-off each retry decision scheduled (``retry_at`` - the failure's time)."""
    return [
        e.data["retry_at"] - e.timestamp
        for e in of_kind(handle, EventKind.STEP_FAILED)
        if e.data is not None and "retry_at" in e.data
    ]


def row(app: App, handle: TaskHandle) -> Any:
    record = app.store.get_task(handle.task_id)
    assert record is not None
    return record


def assert_waiting_without_lease(app: App, handle: TaskHandle, due: float) -> None:
    """Backing off: a durable due time on the row, and no worker holds the task."""
    record = row(app, handle)
    assert record.status is TaskStatus.IN_PROGRESS
    assert record.run_at == pytest.approx(due)
    assert record.lease_owner is None
    assert record.lease_expires_at is None


def drive(app: App, clock: ManualClock, handle: TaskHandle, rounds: int = 20) -> TaskHandle:
    """Move the clock to each due time and run the task, until it stops needing the clock."""
    for _ in range(rounds):
        record = row(app, handle)
        if record.status.terminal or record.run_at is None:
            return handle
        clock.set(max(clock.now(), record.run_at))
        app.execute(handle.task_id)
    raise AssertionError(f"task {handle.task_id} still runs after {rounds} rounds")


# -- classification ----------------------------------------------------------------------

STATUS_CLASSES = {
    408: T,
    425: T,
    429: T,
    500: T,
    502: T,
    503: T,
    504: T,
    409: S,
    412: S,
    401: P,
    403: P,
    400: D,
    422: D,
    404: D,
    418: F,
}


@pytest.mark.parametrize("client", CLIENTS)
def test_classify_real_http_errors_by_status(crm: VendorCRM, client: str) -> None:
    got: dict[int, FailureClass] = {}
    for status in STATUS_CLASSES:
        crm.fail("GET", "/records/42", Fault.answer(status))
        exc = raised(CLIENTS[client], f"{crm.url}/records/42")
        expected_type = httpx.HTTPStatusError if client == "httpx" else requests.HTTPError
        assert isinstance(exc, expected_type)
        assert http_status(exc) == status
        got[status] = classify(exc)
    assert got == STATUS_CLASSES
    assert [r.fault for r in crm.requests_to("GET", "/records/42")] == ["status"] * len(got)


@pytest.fixture
def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("client", CLIENTS)
def test_classify_real_transport_errors(crm: VendorCRM, client: str, closed_port: int) -> None:
    get = CLIENTS[client]
    url = f"{crm.url}/records/42"
    crm.fail("GET", "/records/42", Fault.slow(30))
    timeout = raised(get, url, 0.2)
    crm.fail("GET", "/records/42", Fault.drop())
    dropped = raised(get, url)
    crm.fail("GET", "/records/42", Fault.reset())
    reset = raised(get, url)
    refused = raised(get, f"http://127.0.0.1:{closed_port}/records/42")

    if client == "httpx":
        assert isinstance(timeout, httpx.ReadTimeout)
        assert isinstance(dropped, httpx.RemoteProtocolError)
        assert isinstance(reset, httpx.TransportError)
        assert isinstance(refused, httpx.ConnectError)
    else:
        assert isinstance(timeout, requests.ReadTimeout)
        assert isinstance(dropped, requests.ConnectionError)
        assert isinstance(reset, requests.ConnectionError)
        assert isinstance(refused, requests.ConnectionError)
    for exc in (timeout, dropped, reset, refused):
        assert http_status(exc) is None
        assert classify(exc) is T, repr(exc)
    assert [r.fault for r in crm.requests_to("GET", "/records/42")] == ["slow", "drop", "reset"]


class VendorError(Exception):
    """A vendor SDK's error: a status attribute and a free-text message."""

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


def quota_is_transient(exc: BaseException) -> FailureClass | None:
    """This vendor answers 403 when the daily quota is used up: that passes."""
    response = getattr(exc, "response", None)
    if http_status(exc) == 403 and response is not None and "quota" in response.text:
        return FailureClass.TRANSIENT
    return None


def test_rules_win_over_builtins_and_messages_come_last(crm: VendorCRM) -> None:
    crm.fail("GET", "/records/42", Fault.answer(403, {"error": "daily quota exceeded"}))
    quota = raised(httpx_get, f"{crm.url}/records/42")
    assert classify(quota) is P
    assert classify(quota, [quota_is_transient]) is T
    assert classify(quota, [lambda e: None, lambda e: "data_error"]) is D  # first verdict

    # the type and attributes speak first, the message only when they say nothing
    assert classify(VendorError("permission denied", status_code=503)) is T
    assert classify(VendorError("permission denied")) is P
    assert classify(RuntimeError("Rate limit exceeded, try again later")) is T
    assert classify(RuntimeError("record version conflict")) is S
    assert classify(RuntimeError("invalid phone number")) is D
    assert classify(RuntimeError("boom")) is F
    assert classify(KeyError("phone")) is F


def test_app_rule_and_tool_rule_win_in_the_engine(
    make_app: MakeApp, clock: ManualClock, crm: VendorCRM
) -> None:
    app = make_app(max_inline_wait=0, retry_policy=RetryPolicy(initial_delay=5, jitter=False))
    app.classifier.register(quota_is_transient)
    url = crm.url

    @app.tool(idempotent=True)
    def read(record_id: str) -> Any:
        return httpx_get(f"{url}/records/{record_id}")

    def forbidden_is_data(exc: BaseException) -> FailureClass | None:
        return FailureClass.DATA_ERROR if http_status(exc) == 403 else None

    @app.tool(idempotent=True, classify=forbidden_is_data)
    def read_strict(record_id: str) -> Any:
        return httpx_get(f"{url}/records/{record_id}")

    @app.workflow
    def plain(ctx: TaskContext, record_id: str) -> Any:
        return read(record_id)

    @app.workflow
    def strict(ctx: TaskContext, record_id: str) -> Any:
        return read_strict(record_id)

    quota = Fault.answer(403, {"error": "daily quota exceeded"})
    crm.fail("GET", "/records/42", quota, Fault.answer(403, {"error": "no access"}), quota)
    by_app_rule = app.run(plain, "42")  # app rule: transient, a back-off
    by_builtin = app.run(plain, "42")  # the app rule passes: built-in permission
    by_tool_rule = app.run(strict, "42")  # the tool's rule is asked before the app's

    assert failures(by_app_rule) == [("transient", 1)]
    assert of_kind(by_app_rule, EventKind.STEP_FAILED)[0].data["decision"] == "retry"
    assert by_builtin.status() is TaskStatus.AWAITING_INTERVENTION
    assert failures(by_builtin) == [("permission", 1)]
    assert by_tool_rule.status() is TaskStatus.AWAITING_INTERVENTION
    assert failures(by_tool_rule) == [("data_error", 1)]
    assert crm.count("GET", "/records/42") == 3

    drive(app, clock, by_app_rule)
    assert by_app_rule.result()["fields"]["name"] == "Acme"


# -- transient failures ------------------------------------------------------------------


def test_503_twice_then_200_completes_on_attempt_3_with_durable_backoffs(
    make_app: MakeApp, clock: ManualClock, crm: VendorCRM
) -> None:
    app = make_app(max_inline_wait=0)
    policy = RetryPolicy(max_attempts=5, initial_delay=10, multiplier=3, jitter=False)
    tools = crm_tools(app, crm.url, retry=policy)

    @app.workflow
    def read(ctx: TaskContext, record_id: str) -> Any:
        return tools.get_record(record_id)

    crm.fail("GET", "/records/42", Fault.unavailable(), times=2)
    t0 = clock.now()
    handle = app.run(read, "42")
    assert crm.count("GET", "/records/42") == 1
    assert_waiting_without_lease(app, handle, t0 + 10)

    # not due: neither this app nor any worker can run it early
    clock.advance(9.5)
    with pytest.raises(InvalidOperationError, match="not runnable now"):
        app.execute(handle.task_id)
    assert app.store.claim_task("other-worker", now=clock.now(), lease_seconds=30) is None
    assert crm.count("GET", "/records/42") == 1

    clock.set(t0 + 10)
    app.execute(handle.task_id)
    assert crm.count("GET", "/records/42") == 2
    assert_waiting_without_lease(app, handle, t0 + 10 + 30)

    clock.set(t0 + 40)
    app.execute(handle.task_id)
    assert handle.status() is TaskStatus.COMPLETED
    assert handle.result() == crm.record("42")
    assert crm.count("GET", "/records/42") == 3

    failed = of_kind(handle, EventKind.STEP_FAILED)
    assert failures(handle) == [("transient", 1), ("transient", 2)]
    assert [e.error["http_status"] for e in failed if e.error] == [503, 503]
    assert [e.error["type"] for e in failed if e.error] == ["HTTPStatusError"] * 2
    assert [e.data["decision"] for e in failed if e.data] == ["retry", "retry"]
    assert [e.data["retry_at"] for e in failed if e.data] == [t0 + 10, t0 + 40]
    retried = of_kind(handle, EventKind.STEP_RETRIED)
    assert [e.data["attempt"] for e in retried if e.data] == [2, 3]
    assert [e.data["reason"] for e in retried if e.data] == ["back-off elapsed"] * 2
    for fail, retry in zip(failed, retried, strict=True):
        assert fail.data is not None
        assert retry.timestamp >= fail.data["retry_at"]
    # each attempt was a separate claim: the lease was given back while waiting
    claims = of_kind(handle, EventKind.TASK_CLAIMED)
    assert [c.data["epoch"] for c in claims if c.data] == [1, 2, 3]
    step = handle.state().steps[0]
    assert (step.status.value, step.attempts, step.retry_at) == ("completed", 3, None)


@pytest.mark.parametrize("jitter", [False, True])
def test_backoff_is_exponential_and_capped_with_full_jitter(
    make_app: MakeApp, clock: ManualClock, crm: VendorCRM, jitter: bool
) -> None:
    app = make_app(max_inline_wait=0)
    policy = RetryPolicy(max_attempts=6, initial_delay=1, multiplier=2, max_delay=5, jitter=jitter)
    tools = crm_tools(app, crm.url, retry=policy)

    @app.workflow
    def read(ctx: TaskContext, record_id: str) -> Any:
        return tools.get_record(record_id)

    crm.fail("GET", "/records/42", Fault.answer(502), Fault.drop(), times=1)
    crm.fail("GET", "/records/42", Fault.unavailable(), times=3)
    handle = drive(app, clock, app.run(read, "42"))

    assert handle.result()["id"] == "42"
    assert crm.count("GET", "/records/42") == 6
    assert failures(handle) == [("transient", n) for n in range(1, 6)]
    ceilings = [1, 2, 4, 5, 5]
    waited = delays(handle)
    if jitter:  # full jitter: uniform in [0, ceiling)
        assert all(0 <= d < c for d, c in zip(waited, ceilings, strict=True)), waited
    else:
        assert waited == pytest.approx(ceilings)
    failed = of_kind(handle, EventKind.STEP_FAILED)
    retried = of_kind(handle, EventKind.STEP_RETRIED)
    for fail, retry in zip(failed, retried, strict=True):
        assert fail.data is not None
        assert retry.timestamp >= fail.data["retry_at"]


def http_date(timestamp: float) -> str:
    return format_datetime(dt.datetime.fromtimestamp(timestamp, dt.UTC), usegmt=True)


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_retry_after_is_honoured(
    make_app: MakeApp, clock: ManualClock, crm: VendorCRM, form: str
) -> None:
    app = make_app(max_inline_wait=0)
    tools = crm_tools(app, crm.url, retry=RetryPolicy(initial_delay=2, jitter=False))

    @app.workflow
    def read(ctx: TaskContext, record_id: str) -> Any:
        return tools.get_record(record_id)

    t0 = clock.now()
    retry_after = "120" if form == "seconds" else http_date(t0 + 120)
    crm.fail(
        "GET",
        "/records/42",
        Fault.too_many_requests(retry_after),
        Fault.unavailable(retry_after=1),  # shorter than the back-off (4 s): the back-off wins
    )
    handle = app.run(read, "42")
    assert_waiting_without_lease(app, handle, t0 + 120)
    clock.advance(119)
    assert app.store.claim_task("other-worker", now=clock.now(), lease_seconds=30) is None

    drive(app, clock, handle)
    assert handle.result()["id"] == "42"
    assert crm.count("GET", "/records/42") == 3
    waited = delays(handle)
    assert waited[0] >= 120
    assert waited[1] >= 4
    assert [e.error["http_status"] for e in of_kind(handle, EventKind.STEP_FAILED) if e.error] == [
        429,
        503,
    ]


def test_attempts_exhausted_fail_the_task_naming_step_class_and_error(
    make_app: MakeApp, clock: ManualClock, crm: VendorCRM
) -> None:
    app = make_app(max_inline_wait=0)
    tools = crm_tools(app, crm.url, retry=RetryPolicy(max_attempts=3, initial_delay=1))

    @app.workflow
    def strict(ctx: TaskContext, record_id: str) -> Any:
        return tools.get_record(record_id)

    @app.workflow
    def careful(ctx: TaskContext, record_id: str) -> Any:
        try:
            return tools.get_record(record_id)
        except handrail.ToolCallFailed as exc:
            return {
                "final": isinstance(exc, TaskFailure),
                "class": exc.failure_class,
                "step": exc.step_index,
                "tool": exc.tool,
                "type": exc.error_type,
                "503": "503" in exc.error_message,
            }

    crm.fail("GET", "/records/42", Fault.unavailable(), times=None)
    failed = drive(app, clock, app.run(strict, "42"))
    caught = drive(app, clock, app.run(careful, "42"))

    assert failed.status() is TaskStatus.FAILED
    error = failed.state().error
    assert error is not None
    assert error["step_index"] == 0
    assert error["tool"] == "get_record"
    assert error["failure_class"] == "transient"
    assert error["type"] == "HTTPStatusError"
    assert "503 Service Unavailable" in error["message"]
    with pytest.raises(TaskFailedError, match="503"):
        failed.result()
    assert failures(failed) == [("transient", 1), ("transient", 2), ("transient", 3)]
    last = of_kind(failed, EventKind.STEP_FAILED)[-1].data
    assert last == {"decision": "fail", "reason": "gave up after 3 attempts"}
    assert row(app, failed).run_at is None

    assert caught.result() == {
        "final": True,
        "class": "transient",
        "step": 0,
        "tool": "get_record",
        "type": "HTTPStatusError",
        "503": True,
    }
    assert crm.count("GET", "/records/42") == 6


def test_resume_after_exhausted_retries_gets_a_fresh_retry_budget(
    make_app: MakeApp, clock: ManualClock, crm: VendorCRM
) -> None:
    app = make_app(max_inline_wait=0)
    tools = crm_tools(app, crm.url, retry=RetryPolicy(max_attempts=3, initial_delay=1))

    @app.workflow
    def read(ctx: TaskContext, record_id: str) -> Any:
        return tools.get_record(record_id)

    crm.fail("GET", "/records/42", Fault.unavailable(), times=3)
    handle = drive(app, clock, app.run(read, "42"))
    assert handle.status() is TaskStatus.FAILED  # the outage outlasted the retries

    crm.fail("GET", "/records/42", Fault.unavailable())  # one blip after the outage
    app.resume(handle.task_id, by="ops")
    app.execute(handle.task_id)
    assert handle.status() is not TaskStatus.FAILED  # today: failed, "gave up after 4 attempts"
    drive(app, clock, handle)
    assert handle.result()["id"] == "42"


def test_deadline_stops_retries(make_app: MakeApp, clock: ManualClock, crm: VendorCRM) -> None:
    app = make_app(max_inline_wait=0)
    policy = RetryPolicy(max_attempts=10, initial_delay=4, multiplier=1, jitter=False, deadline=10)
    tools = crm_tools(app, crm.url, retry=policy)

    @app.workflow
    def read(ctx: TaskContext, record_id: str) -> Any:
        return tools.get_record(record_id)

    crm.fail("GET", "/records/42", Fault.unavailable(), times=None)
    t0 = clock.now()
    handle = drive(app, clock, app.run(read, "42"))
    # attempts at t0, t0+4, t0+8; a fourth would start at t0+12, past the deadline
    assert crm.count("GET", "/records/42") == 3
    assert [e.timestamp - t0 for e in of_kind(handle, EventKind.STEP_FAILED)] == [0, 4, 8]
    assert handle.status() is TaskStatus.FAILED
    last = of_kind(handle, EventKind.STEP_FAILED)[-1].data
    assert last is not None
    assert last["decision"] == "fail"
    assert "10s deadline" in last["reason"]

    # a Retry-After beyond the deadline: no point waiting for it
    crm.fail("GET", "/records/7", Fault.too_many_requests(3600))
    handle = app.run(read, "7")
    assert handle.status() is TaskStatus.FAILED
    assert crm.count("GET", "/records/7") == 1
    assert handle.state().error["failure_class"] == "transient"  # type: ignore[index]


def test_requests_client_errors_are_classified_in_a_workflow(
    make_app: MakeApp, clock: ManualClock, crm: VendorCRM
) -> None:
    app = make_app(max_inline_wait=0)
    url = crm.url

    @app.tool(retry=RetryPolicy(max_attempts=5, initial_delay=1, jitter=False))
    def create_contact(fields: dict[str, Any]) -> Any:
        response = requests.post(f"{url}/records", json={"fields": fields}, timeout=2.0)
        response.raise_for_status()
        return response.json()

    @app.workflow
    def onboard(ctx: TaskContext, email: str) -> Any:
        return create_contact({"email": email, "name": "Initech"})

    crm.fail("POST", "/records", Fault.too_many_requests(30), Fault.drop())
    t0 = clock.now()
    handle = drive(app, clock, app.run(onboard, "not-an-email"))  # then a real 422

    assert handle.status() is TaskStatus.AWAITING_INTERVENTION
    assert failures(handle) == [("transient", 1), ("transient", 2), ("data_error", 3)]
    failed = [e.error for e in of_kind(handle, EventKind.STEP_FAILED) if e.error]
    assert [e["type"] for e in failed] == ["HTTPError", "ConnectionError", "HTTPError"]
    assert [e.get("http_status") for e in failed] == [429, None, 422]
    assert delays(handle)[0] >= 30
    assert of_kind(handle, EventKind.STEP_RETRIED)[0].timestamp >= t0 + 30
    assert crm.count("POST", "/records") == 3
    assert crm.created() == []

    [item] = app.interventions(task_id=handle.task_id)
    assert item.kind == "data_error"
    assert item.details["error"]["http_status"] == 422
    app.resolve_intervention(
        item.intervention_id, action="mark_done", by="ops", output={"id": "r-by-hand"}
    )
    app.execute(handle.task_id)
    assert handle.result() == {"id": "r-by-hand"}
    assert crm.count("POST", "/records") == 3


def test_async_httpx_tool_backs_off_and_completes(
    make_app: MakeApp, clock: ManualClock, crm: VendorCRM
) -> None:
    app = make_app(max_inline_wait=0)
    url = crm.url

    @app.tool(idempotent=True, retry=RetryPolicy(initial_delay=5, jitter=False))
    async def fetch(record_id: str) -> Any:
        async with httpx.AsyncClient(timeout=2.0) as client:
            response = await client.get(f"{url}/records/{record_id}")
            response.raise_for_status()
            return response.json()

    @app.workflow
    async def read(ctx: TaskContext, record_id: str) -> Any:
        return await fetch(record_id)

    crm.fail("GET", "/records/42", Fault.reset(), Fault.unavailable())
    t0 = clock.now()
    handle = app.run(read, "42")
    assert_waiting_without_lease(app, handle, t0 + 5)
    drive(app, clock, handle)
    assert handle.result()["id"] == "42"
    assert failures(handle) == [("transient", 1), ("transient", 2)]
    assert delays(handle) == [5, 10]
    assert crm.count("GET", "/records/42") == 3


# -- a real restart during a back-off ----------------------------------------------------


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_worker_process_killed_during_backoff_another_retries_when_due(
    tmp_path: Path, crm: VendorCRM
) -> None:
    db = str(tmp_path / "restart.db")
    env = {**os.environ, "FA_DB": db, "FA_URL": crm.url, "PYTHONPATH": str(HERE)}

    def failapp(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "failapp", *args],
            env=env,
            cwd=HERE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    starter = failapp("start", "42")
    out, err = starter.communicate(timeout=30)
    assert starter.returncode == 0, err
    task_id = out.strip()

    crm.fail("GET", "/records/42", Fault.too_many_requests(2))
    store = open_store(db)
    try:
        first = failapp("work", task_id)

        def backing_off() -> bool:
            record = store.get_task(task_id)
            failed = any(e.kind is EventKind.STEP_FAILED for e in store.load_events(task_id))
            return failed and record is not None and record.lease_owner is None

        try:
            _wait_for(backing_off, "the first worker to journal the back-off")
        finally:
            first.send_signal(signal.SIGKILL)  # in the middle of the wait
            first.communicate(timeout=30)
        assert first.returncode == -signal.SIGKILL

        [failed] = [e for e in store.load_events(task_id) if e.kind is EventKind.STEP_FAILED]
        assert failed.error is not None
        assert failed.data is not None
        assert failed.error["failure_class"] == "transient"
        assert failed.error["http_status"] == 429
        retry_at = failed.data["retry_at"]
        [first_attempt] = crm.requests_to("GET", "/records/42")
        assert retry_at >= first_attempt.at + 2  # Retry-After: 2 honoured
        record = store.get_task(task_id)
        assert record is not None
        assert record.run_at == pytest.approx(retry_at)
        assert record.lease_owner is None

        second = failapp("work", task_id)  # started at once: it must wait for the due time
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err

        attempts = crm.requests_to("GET", "/records/42")
        assert len(attempts) == 2
        assert attempts[1].at >= retry_at  # not early
        events = store.load_events(task_id)
        assert events[-1].kind is EventKind.TASK_COMPLETED
        assert events[-1].outputs == crm.record("42")
        claims = [e for e in events if e.kind is EventKind.TASK_CLAIMED]
        assert len(claims) == 2
        assert claims[0].data is not None
        assert claims[1].data is not None
        assert claims[0].data["worker"] != claims[1].data["worker"]
        assert claims[1].timestamp >= retry_at
        [retried] = [e for e in events if e.kind is EventKind.STEP_RETRIED]
        assert retried.data == {"reason": "back-off elapsed", "attempt": 2}
    finally:
        store.close()


def test_a_long_backoff_holds_no_worker(
    make_app: MakeApp, clock: ManualClock, crm: VendorCRM
) -> None:
    app = make_app(max_inline_wait=0)
    tools = crm_tools(app, crm.url)

    @app.workflow
    def read(ctx: TaskContext, record_id: str) -> Any:
        return tools.get_record(record_id)

    crm.fail("GET", "/records/42", Fault.too_many_requests(3600))
    t0 = clock.now()
    with app.worker(concurrency=1, poll_interval=0.02):
        slow = app.start(read, "42")
        _wait_for(lambda: bool(of_kind(slow, EventKind.STEP_FAILED)), "the back-off")
        _wait_for(lambda: row(app, slow).lease_owner is None, "the lease to be released")
        assert_waiting_without_lease(app, slow, t0 + 3600)

        fast = app.start(read, "7")  # the only thread is free: it runs this one meanwhile
        assert fast.result(timeout=30)["id"] == "7"
        assert slow.status() is TaskStatus.IN_PROGRESS
        assert row(app, slow).lease_owner is None

        clock.advance(3600)
        assert slow.result(timeout=30)["id"] == "42"

    order = [(r.path, r.fault) for r in crm.requests]
    assert order == [
        ("/records/42", "status"),
        ("/records/7", None),
        ("/records/42", None),
    ]
    assert len(of_kind(slow, EventKind.TASK_CLAIMED)) == 2


def test_real_clock_inline_retries_with_small_delays(tmp_path: Path, crm: VendorCRM) -> None:
    policy = RetryPolicy(max_attempts=5, initial_delay=0.02, jitter=False)
    app = App(tmp_path / "real.db", retry_policy=policy, max_inline_wait=2.0)
    url = crm.url

    @app.tool(idempotent=True)
    def fetch(record_id: str) -> Any:
        return httpx_get(f"{url}/records/{record_id}", 0.2)

    @app.workflow
    def read(ctx: TaskContext, record_id: str) -> Any:
        return fetch(record_id)

    crm.fail("GET", "/records/42", Fault.drop(), Fault.slow(30), Fault.reset(), Fault.unavailable())
    try:
        handle = app.run(read, "42")  # every back-off is short: waited for inline
        assert handle.status() is TaskStatus.COMPLETED
        assert handle.result()["id"] == "42"
        assert failures(handle) == [("transient", n) for n in range(1, 5)]
        types = [e.error["type"] for e in of_kind(handle, EventKind.STEP_FAILED) if e.error]
        assert types[0] == "RemoteProtocolError"
        assert types[1] == "ReadTimeout"
        assert types[3] == "HTTPStatusError"
        attempts = crm.requests_to("GET", "/records/42")
        assert len(attempts) == 5
        for fail, attempt in zip(of_kind(handle, EventKind.STEP_FAILED), attempts[1:], strict=True):
            assert fail.data is not None
            assert attempt.at >= fail.data["retry_at"]
    finally:
        app.close()


# -- stale data --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool_name", "status"), [("update_record", 409), ("update_if_match", 412)]
)
def test_stale_version_is_refreshed_and_retried(
    make_app: MakeApp, clock: ManualClock, crm: VendorCRM, tool_name: str, status: int
) -> None:
    app = make_app(max_inline_wait=0)
    tools = crm_tools(app, crm.url)
    update = getattr(tools, tool_name)

    @app.workflow
    def win(ctx: TaskContext, record_id: str) -> Any:
        record = tools.get_record(record_id)
        updated = update(record_id, record["version"], {"stage": "won"})
        ctx.sleep(60)  # the task is replayed from the top after this
        return updated

    # someone else edits the record between our read and our write
    crm.fail("PUT", "/records/42", Fault.concurrent_edit(owner="bob"))
    handle = app.run(win, "42")

    assert crm.count("GET", "/records/42") == 2  # the workflow's read, the refresh hook's
    puts = crm.requests_to("PUT", "/records/42")
    assert [p.body["version"] for p in puts] == [1, 2]
    if status == 412:
        assert [p.headers["if-match"] for p in puts] == ['"1"', '"2"']
    [(call, error)] = tools.refreshes
    assert (call.args, call.step_index) == (("42", 1, {"stage": "won"}), 1)
    assert http_status(error) == status

    [failed] = of_kind(handle, EventKind.STEP_FAILED)
    assert failed.step_index == 1
    assert failed.error is not None
    assert (failed.error["failure_class"], failed.error["attempt"]) == ("stale_data", 1)
    assert failed.error["http_status"] == status
    assert failed.data == {"decision": "refresh", "reason": "refresh the inputs and retry"}
    [retried] = of_kind(handle, EventKind.STEP_RETRIED)
    assert retried.data == {"reason": "inputs refreshed after stale data", "attempt": 2}
    assert retried.inputs == {"args": ["42", 2, {"stage": "won"}], "kwargs": {}}
    step = handle.state().steps[1]
    assert step.inputs_refreshed
    assert step.attempts == 2

    drive(app, clock, handle)  # replay: the read and the update come from the journal
    assert handle.result()["version"] == 3
    assert crm.record("42")["fields"] == {"name": "Acme", "stage": "won", "owner": "bob"}
    assert crm.count("GET", "/records/42") == 2
    assert crm.count("PUT", "/records/42") == 2
    assert len(tools.refreshes) == 1


def test_refreshed_inputs_survive_a_backoff_and_every_attempt_is_classified(
    make_app: MakeApp, clock: ManualClock, crm: VendorCRM
) -> None:
    app = make_app(max_inline_wait=0)
    tools = crm_tools(app, crm.url, retry=RetryPolicy(max_attempts=5, initial_delay=3))

    @app.workflow
    def win(ctx: TaskContext, record_id: str, version: int) -> Any:
        return tools.update_record(record_id, version, {"stage": "won"})

    crm.fail(
        "PUT",
        "/records/42",
        Fault.drop(),  # transient: back off
        Fault.concurrent_edit(owner="bob"),  # 409: refresh, retry at once
        Fault.unavailable(),  # transient again: back off with the refreshed inputs
    )
    handle = drive(app, clock, app.run(win, "42", 1))

    assert handle.result()["version"] == 3
    assert failures(handle) == [("transient", 1), ("stale_data", 2), ("transient", 3)]
    assert [p.body["version"] for p in crm.requests_to("PUT", "/records/42")] == [1, 1, 2, 2]
    retried = of_kind(handle, EventKind.STEP_RETRIED)
    assert [e.data["attempt"] for e in retried if e.data] == [2, 3, 4]
    assert [e.inputs for e in retried] == [
        None,
        {"args": ["42", 2, {"stage": "won"}], "kwargs": {}},
        None,
    ]


def test_stale_data_without_refresh_hook_raises_an_intervention(
    make_app: MakeApp, crm: VendorCRM
) -> None:
    app = make_app(max_inline_wait=0)
    url = crm.url

    @app.tool
    def set_stage(record_id: str, version: int, stage: str) -> Any:
        body = {"version": version, "fields": {"stage": stage}}
        response = httpx.put(f"{url}/records/{record_id}", json=body, timeout=2.0)
        response.raise_for_status()
        return response.json()

    @app.workflow
    def win(ctx: TaskContext, record_id: str, version: int) -> Any:
        return set_stage(record_id, version, "won")

    crm.edit("42", owner="bob")
    handle = app.run(win, "42", 1)
    assert handle.status() is TaskStatus.AWAITING_INTERVENTION
    assert crm.count("PUT", "/records/42") == 1
    assert failures(handle) == [("stale_data", 1)]
    [item] = app.interventions(task_id=handle.task_id)
    assert item.kind == "stale_data"
    assert item.step_index == 0
    assert item.details["failure_class"] == "stale_data"
    assert item.details["tool"] == "set_stage"
    assert item.details["error"]["http_status"] == 409
    assert "re-read" in item.details["needed"]
    assert item.details["options"] == ["retry", "mark_done", "skip", "fail"]
    record = row(app, handle)
    assert (record.run_at, record.lease_owner) == (None, None)


def test_stale_every_time_ends_in_an_intervention_after_max_attempts(
    make_app: MakeApp, crm: VendorCRM
) -> None:
    app = make_app(max_inline_wait=0)
    tools = crm_tools(app, crm.url, retry=RetryPolicy(max_attempts=3))

    @app.workflow
    def win(ctx: TaskContext, record_id: str, version: int) -> Any:
        return tools.update_record(record_id, version, {"stage": "won"})

    crm.fail("PUT", "/records/42", Fault.concurrent_edit(owner="bob"), times=None)
    handle = app.run(win, "42", 1)
    assert handle.status() is TaskStatus.AWAITING_INTERVENTION
    assert [p.body["version"] for p in crm.requests_to("PUT", "/records/42")] == [1, 2, 3]
    assert failures(handle) == [("stale_data", 1), ("stale_data", 2), ("stale_data", 3)]
    [item] = app.interventions(task_id=handle.task_id)
    assert item.kind == "stale_data"
    assert "gave up after 3 attempts" in of_kind(handle, EventKind.STEP_FAILED)[-1].data["reason"]  # type: ignore[index]


def test_refresh_hook_failure_is_journaled_and_classified(
    make_app: MakeApp, clock: ManualClock, crm: VendorCRM
) -> None:
    app = make_app(max_inline_wait=0)
    tools = crm_tools(app, crm.url, retry=RetryPolicy(initial_delay=1))

    @app.workflow
    def win(ctx: TaskContext, record_id: str, version: int) -> Any:
        return tools.update_record(record_id, version, {"stage": "won"})

    crm.edit("42", owner="bob")
    crm.fail("GET", "/records/42", Fault.unavailable())  # the hook's re-read fails once
    handle = app.run(win, "42", 1)
    assert crm.count("PUT", "/records/42") == 1
    assert failures(handle)[:1] == [("stale_data", 1)]  # the 409 attempt is journaled
    assert handle.status() is not TaskStatus.FAILED  # a 503 on the re-read is transient
    drive(app, clock, handle)
    assert handle.result()["version"] == 3


# -- permission and data errors: interventions -------------------------------------------


def test_permission_403_waits_for_a_human_who_retries_after_the_fix(
    make_app: MakeApp, crm: VendorCRM
) -> None:
    app = make_app(max_inline_wait=0)
    tools = crm_tools(app, crm.url)

    @app.workflow
    def onboard(ctx: TaskContext, email: str) -> Any:
        return tools.create_record({"email": email})

    no_access = Fault.answer(403, {"error": "token lacks scope crm.write"})
    crm.fail("POST", "/records", no_access, times=None)
    handle = app.run(onboard, "ceo@initech.example")

    assert handle.status() is TaskStatus.AWAITING_INTERVENTION
    record = row(app, handle)
    assert (record.run_at, record.lease_owner) == (None, None)
    [item] = app.interventions(task_id=handle.task_id)
    assert item.kind == "permission"
    assert (item.step_index, item.step_name) == (0, "create_record")
    details = item.details
    assert details["failure_class"] == "permission"
    assert details["tool"] == "create_record"
    assert details["error"]["type"] == "HTTPStatusError"
    assert details["error"]["http_status"] == 403
    assert details["error"]["attempt"] == 1
    assert "403 Forbidden" in details["error"]["message"]
    assert "grant the access" in details["needed"]
    assert details["options"] == ["retry", "mark_done", "skip", "fail"]
    assert "permission" in item.reason
    with pytest.raises(InvalidOperationError):
        app.execute(handle.task_id)  # nothing runs until a human decides

    # retried before the fix: a new intervention, the service saw a second attempt
    assert app.resolve_intervention(item.intervention_id, action="retry", by="ops") is (
        TaskStatus.PENDING
    )
    app.execute(handle.task_id)
    assert handle.status() is TaskStatus.AWAITING_INTERVENTION
    [again] = app.interventions(task_id=handle.task_id)
    assert again.intervention_id != item.intervention_id
    assert again.details["error"]["attempt"] == 2

    crm.fix("POST", "/records")  # access granted
    app.resolve_intervention(again.intervention_id, action="retry", by="ops", comment="granted")
    app.execute(handle.task_id)
    assert handle.result()["fields"] == {"email": "ceo@initech.example"}
    assert crm.count("POST", "/records") == 3
    assert len(crm.created()) == 1

    assert failures(handle) == [("permission", 1), ("permission", 2)]
    resolved = of_kind(handle, EventKind.INTERVENTION_RESOLVED)
    assert [(e.actor, e.data["action"]) for e in resolved if e.data] == [
        ("ops", "retry"),
        ("ops", "retry"),
    ]
    assert resolved[1].data is not None
    assert resolved[1].data["comment"] == "granted"
    retried = of_kind(handle, EventKind.STEP_RETRIED)
    assert [e.data["reason"] for e in retried if e.data] == ["authorized by an operator"] * 2
    history = app.interventions(task_id=handle.task_id, include_resolved=True)
    assert [(i.resolution, i.resolved_by) for i in history] == [("retry", "ops"), ("retry", "ops")]


@pytest.mark.parametrize("action", ["mark_done", "skip", "fail"])
def test_data_error_422_waits_for_a_human(make_app: MakeApp, crm: VendorCRM, action: str) -> None:
    app = make_app(max_inline_wait=0)
    tools = crm_tools(app, crm.url)

    @app.workflow
    def onboard(ctx: TaskContext, email: str) -> Any:
        created = tools.create_record({"email": email})
        return {"created": created}

    handle = app.run(onboard, "ceo-at-initech")  # the service answers 422 by itself
    assert handle.status() is TaskStatus.AWAITING_INTERVENTION
    [item] = app.interventions(task_id=handle.task_id)
    assert item.kind == "data_error"
    assert item.details["failure_class"] == "data_error"
    assert item.details["tool"] == "create_record"
    assert item.details["error"]["http_status"] == 422
    assert "investigate" in item.details["needed"]
    assert item.details["options"] == ["retry", "mark_done", "skip", "fail"]
    assert crm.requests_to("POST", "/records")[0].body == {"fields": {"email": "ceo-at-initech"}}

    output = {"id": "r-by-hand", "note": "created in the vendor UI"}
    supplied = output if action == "mark_done" else None
    status = app.resolve_intervention(
        item.intervention_id, action=action, by="ops", output=supplied
    )
    if action == "fail":
        assert status is TaskStatus.FAILED
        assert handle.status() is TaskStatus.FAILED
        error = handle.state().error
        assert error is not None
        assert error["type"] == "InterventionFailed"
        assert "ops" in error["message"]
        with pytest.raises(TaskFailedError):
            handle.result()
        assert of_kind(handle, EventKind.TASK_FAILED)[0].actor == "ops"
    else:
        app.execute(handle.task_id)
        expected = output if action == "mark_done" else None
        assert handle.result() == {"created": expected}
        [done] = of_kind(handle, EventKind.STEP_COMPLETED)
        assert (done.actor, done.data["via"]) == ("ops", action)  # type: ignore[index]
    [resolved] = of_kind(handle, EventKind.INTERVENTION_RESOLVED)
    assert resolved.actor == "ops"
    assert resolved.data == {"intervention_id": item.intervention_id, "action": action}
    assert crm.count("POST", "/records") == 1
    assert crm.created() == []


def test_401_and_400_from_requests_raise_interventions(make_app: MakeApp, crm: VendorCRM) -> None:
    app = make_app(max_inline_wait=0)
    url = crm.url

    @app.tool(idempotent=True)
    def read(record_id: str) -> Any:
        return requests_get(f"{url}/records/{record_id}")

    @app.workflow
    def wf(ctx: TaskContext, record_id: str) -> Any:
        return read(record_id)

    crm.fail("GET", "/records/42", Fault.answer(401, {"error": "token expired"}))
    crm.fail("GET", "/records/7", Fault.answer(400, {"error": "bad record id"}))
    unauthorized = app.run(wf, "42")
    bad_request = app.run(wf, "7")
    assert [i.kind for i in app.interventions(task_id=unauthorized.task_id)] == ["permission"]
    assert [i.kind for i in app.interventions(task_id=bad_request.task_id)] == ["data_error"]
    assert failures(unauthorized) == [("permission", 1)]
    assert failures(bad_request) == [("data_error", 1)]


# -- fatal failures and interventions the tool asks for ----------------------------------


def test_fatal_failure_fails_the_task_and_the_workflow_can_catch_it(
    make_app: MakeApp, clock: ManualClock, crm: VendorCRM
) -> None:
    app = make_app(max_inline_wait=0)
    url = crm.url

    @app.tool(idempotent=True)
    def phone_of(record_id: str) -> str:
        record = httpx_get(f"{url}/records/{record_id}")
        return str(record["fields"]["phone"])  # the vendor sent none: KeyError

    @app.workflow
    def call_customer(ctx: TaskContext, record_id: str) -> str:
        return phone_of(record_id)

    @app.workflow
    def call_or_email(ctx: TaskContext, record_id: str) -> dict[str, Any]:
        try:
            phone = phone_of(record_id)
        except handrail.ToolCallFailed as exc:
            outcome = {
                "final": isinstance(exc, TaskFailure),
                "class": exc.failure_class,
                "type": exc.error_type,
            }
        else:
            outcome = {"phone": phone}
        ctx.sleep(30)  # replayed after this: the failure is raised again from the journal
        return outcome

    failed = app.run(call_customer, "42")
    assert failed.status() is TaskStatus.FAILED
    error = failed.state().error
    assert error is not None
    assert error["failure_class"] == "fatal"
    assert (error["type"], error["tool"], error["step_index"]) == ("KeyError", "phone_of", 0)
    assert failures(failed) == [("fatal", 1)]
    data = of_kind(failed, EventKind.STEP_FAILED)[0].data
    assert data == {"decision": "fail", "reason": "the failure cannot be recovered"}
    with pytest.raises(TaskFailedError, match="KeyError"):
        failed.result()

    caught = drive(app, clock, app.run(call_or_email, "42"))
    assert caught.result() == {"final": True, "class": "fatal", "type": "KeyError"}
    assert crm.count("GET", "/records/42") == 2  # one per task: no retry, none on replay


def test_tool_raising_human_intervention_required(make_app: MakeApp, crm: VendorCRM) -> None:
    app = make_app(max_inline_wait=0)
    url = crm.url

    @app.tool(idempotent=True)
    def contactable(record_id: str) -> Any:
        record = httpx_get(f"{url}/records/{record_id}")
        if record["fields"].get("do_not_contact"):
            raise HumanInterventionRequired(
                f"record {record_id} is marked do-not-contact",
                needed="confirm consent with the account owner, clear the flag, then retry",
            )
        if record["fields"].get("duplicate_of"):
            raise HumanInterventionRequired("possible duplicate", failure_class="data_error")
        return record

    @app.workflow
    def reach_out(ctx: TaskContext, record_id: str) -> Any:
        return contactable(record_id)["id"]

    crm.edit("42", do_not_contact=True)
    crm.edit("7", duplicate_of="42")
    blocked = app.run(reach_out, "42")
    duplicate = app.run(reach_out, "7")

    assert blocked.status() is TaskStatus.AWAITING_INTERVENTION
    [item] = app.interventions(task_id=blocked.task_id)
    assert item.kind == "permission"  # the default class
    assert item.details["needed"].startswith("confirm consent")
    assert item.details["tool"] == "contactable"
    assert item.details["error"]["type"] == "HumanInterventionRequired"
    assert "do-not-contact" in item.reason
    assert failures(blocked) == [("permission", 1)]
    [other] = app.interventions(task_id=duplicate.task_id)
    assert other.kind == "data_error"

    crm.edit("42", do_not_contact=False)
    app.resolve_intervention(item.intervention_id, action="retry", by="ops")
    app.execute(blocked.task_id)
    assert blocked.result() == "42"
    assert crm.count("GET", "/records/42") == 2


# -- in doubt after a timeout --------------------------------------------------------------


def test_timeout_retry_with_idempotency_key_creates_one_record(
    make_app: MakeApp, clock: ManualClock, crm: VendorCRM
) -> None:
    app = make_app(max_inline_wait=0)
    url = crm.url

    @app.tool(idempotency_key=True, retry=RetryPolicy(initial_delay=1))
    def create_contact(fields: dict[str, Any], idempotency_key: str) -> Any:
        response = httpx.post(
            f"{url}/records",
            json={"fields": fields},
            headers={"Idempotency-Key": idempotency_key},
            timeout=0.2,
        )
        response.raise_for_status()
        return response.json()

    @app.workflow
    def onboard(ctx: TaskContext, email: str) -> Any:
        return create_contact({"email": email})

    crm.fail("POST", "/records", Fault.slow(30))  # created, but the answer never comes in time
    handle = drive(app, clock, app.run(onboard, "ceo@initech.example"))

    assert failures(handle) == [("transient", 1)]
    posts = crm.requests_to("POST", "/records")
    assert len(posts) == 2
    assert posts[0].headers["idempotency-key"] == posts[1].headers["idempotency-key"]
    [created] = crm.created()
    assert handle.result() == created


def test_timeout_of_a_non_idempotent_tool_is_not_blindly_retried(
    make_app: MakeApp, clock: ManualClock, crm: VendorCRM
) -> None:
    app = make_app(max_inline_wait=0)
    url = crm.url

    @app.tool(retry=RetryPolicy(initial_delay=1))
    def create_contact(fields: dict[str, Any]) -> Any:
        response = httpx.post(f"{url}/records", json={"fields": fields}, timeout=0.2)
        response.raise_for_status()
        return response.json()

    @app.workflow
    def onboard(ctx: TaskContext, email: str) -> Any:
        return create_contact({"email": email})

    crm.fail("POST", "/records", Fault.slow(30))
    drive(app, clock, app.run(onboard, "ceo@initech.example"))
    assert len(crm.created()) == 1  # today: 2 records, the retry repeated the side effect
