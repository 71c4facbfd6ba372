"""The HTTP API end to end: uvicorn on 127.0.0.1 over a real SQLite store, a real worker,
httpx as the client; and schemathesis fuzzing every operation of the app's own OpenAPI
document, asserting that no input makes the server fail (5xx)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from webapp import Site, build_app, free_socket, running_site, write_principals

from handrail.auth import Principals
from handrail.http import create_app
from handrail.journal import TaskStatus


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with running_site(tmp_path) as s:
        yield s


@pytest.fixture
def client(site: Site) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.url, timeout=15) as c:
        yield c


def _report(site: Site, initiator: str = "olivia") -> str:
    task = site.app.start("report", str(site.ledger), "cfo@example.com", initiator=initiator)
    site.wait_status(task.task_id, TaskStatus.AWAITING_APPROVAL)
    return task.task_id


def _pending(client: httpx.Client, site: Site, task_id: str) -> dict[str, Any]:
    r = client.get("/api/approvals", params={"task_id": task_id}, headers=site.headers("audrey"))
    assert r.status_code == 200, r.text
    (item,) = r.json()
    return dict(item)


# -- authentication and roles -------------------------------------------------------------


def test_every_api_route_needs_a_token(client: httpx.Client, site: Site) -> None:
    for method, path in [
        ("GET", "/api/tasks"),
        ("GET", "/api/tasks/x"),
        ("GET", "/api/approvals"),
        ("POST", "/api/approvals/x/y/decision"),
        ("GET", "/api/interventions"),
        ("POST", "/api/halts"),
        ("GET", "/api/notifications"),
        ("POST", "/api/notifications/retry"),
        ("GET", "/api/me"),
    ]:
        r = client.request(method, path)
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in r.json()["detail"]
    r = client.get("/api/tasks", headers={"Authorization": "Bearer hr_not-a-real-token"})
    assert r.status_code == 401
    assert "unknown token" in r.json()["detail"]
    r = client.get("/api/tasks", headers={"Authorization": f"Basic {site.tokens['root']}"})
    assert r.status_code == 401


def test_the_token_names_the_principal(client: httpx.Client, site: Site) -> None:
    r = client.get("/api/me", headers=site.headers("eric"))
    assert r.json() == {"name": "eric", "roles": ["engineer"]}
    r = client.get("/api/me", headers=site.headers("root"))
    assert r.json()["roles"] == ["approver", "auditor", "engineer", "operator"]


def test_wrong_role_is_403_naming_the_role(client: httpx.Client, site: Site) -> None:
    task_id = _report(site)
    item = _pending(client, site, task_id)
    # an approver cannot cancel; an operator cannot approve; an auditor cannot halt
    r = client.post(f"/api/tasks/{task_id}/cancel", headers=site.headers("alice"))
    assert r.status_code == 403
    assert r.json()["detail"] == (
        "alice may not change tasks: it needs the 'operator' role (has: approver)"
    )
    r = client.post(
        f"/api/approvals/{item['request_id']}/decision",
        headers=site.headers("olivia"),
        json={"decision": "approved", "digest": item["digest"]},
    )
    assert r.status_code == 403
    assert "needs the 'approver' role" in r.json()["detail"]
    r = client.post("/api/halts", headers=site.headers("audrey"), json={"scope": "all"})
    assert r.status_code == 403
    # nothing changed
    assert site.app.store.get_task(task_id).status is TaskStatus.AWAITING_APPROVAL  # type: ignore[union-attr]
    assert client.get("/api/halts", headers=site.headers("root")).json() == []


# -- reading tasks -----------------------------------------------------------------------


def test_list_filter_show_and_timeline(client: httpx.Client, site: Site) -> None:
    done = site.app.start("greet", "Ada", initiator="olivia").task_id
    site.wait_status(done, TaskStatus.COMPLETED)
    waiting = _report(site)
    h = site.headers("audrey")  # any role may read

    listed = client.get("/api/tasks", headers=h).json()
    assert [t["task_id"] for t in listed] == [waiting, done]  # newest first
    only = client.get("/api/tasks", params={"status": "completed"}, headers=h).json()
    assert [t["task_id"] for t in only] == [done]
    both = client.get(
        "/api/tasks", params=[("status", "completed"), ("status", "awaiting_approval")], headers=h
    ).json()
    assert len(both) == 2
    assert (
        client.get("/api/tasks", params={"workflow": "report"}, headers=h).json()[0]["task_id"]
        == waiting
    )
    assert client.get("/api/tasks", params={"queue": "vault"}, headers=h).json() == []
    assert len(client.get("/api/tasks", params={"limit": 1}, headers=h).json()) == 1

    shown = client.get(f"/api/tasks/{done}", headers=h).json()
    assert shown["task"]["status"] == "completed"
    assert shown["result"] == "Hello, Ada!"
    assert shown["inputs"] == {"args": ["Ada"], "kwargs": {}}
    assert [s["name"] for s in shown["steps"]] == ["lookup_greeting"]
    assert shown["steps"][0]["outputs"] == "Hello, Ada!"

    timeline = client.get(f"/api/tasks/{done}/timeline", headers=h).json()
    kinds = [e["kind"] for e in timeline["events"]]
    assert kinds[0] == "task_created"
    assert kinds[-1] == "task_completed"
    assert "step_completed" in kinds
    assert timeline["off_course"] is None
    reasoning = [e["agent_reasoning"] for e in timeline["events"] if e["agent_reasoning"]]
    assert "The user wants a greeting for Ada; look it up." in reasoning


# -- approvals ---------------------------------------------------------------------------


def test_approve_through_the_api_and_the_task_completes(client: httpx.Client, site: Site) -> None:
    task_id = _report(site)
    item = _pending(client, site, task_id)
    # every field of the request is there
    assert item["proposed_action"] == "Send the quarterly report to cfo@example.com"
    assert item["action_parameters"] == {"ledger": str(site.ledger), "recipient": "cfo@example.com"}
    assert item["reversibility"] == "irreversible"
    assert item["requesting_agent"] == "report-bot"
    assert item["expected_outcome"] == "cfo@example.com receives the report; it cannot be unsent"
    assert item["agent_reasoning"] == "The quarter closed; cfo@example.com gets the report."
    assert item["digest"].startswith("sha256:")
    assert item["context_summary"]
    shown = client.get(f"/api/approvals/{item['request_id']}", headers=site.headers("eric"))
    assert shown.json() == item
    assert not site.ledger.exists()  # nothing was sent before the approval

    r = client.post(
        f"/api/approvals/{item['request_id']}/decision",
        headers=site.headers("alice"),
        json={"decision": "approved", "comment": "numbers checked", "digest": item["digest"]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved"
    assert r.json()["decisions"][0]["by"] == "alice"
    assert r.json()["decisions"][0]["comment"] == "numbers checked"

    site.wait_status(task_id, TaskStatus.COMPLETED)
    assert site.ledger.read_text() == "sent to cfo@example.com\n"
    timeline = client.get(f"/api/tasks/{task_id}/timeline", headers=site.headers("olivia"))
    decided = [e for e in timeline.json()["events"] if e["kind"] == "approval_decided"]
    assert decided[0]["actor"] == "alice"
    assert client.get("/api/approvals", headers=site.headers("alice")).json() == []


def test_the_engine_rules_apply_to_api_decisions(client: httpx.Client, site: Site) -> None:
    task_id = _report(site, initiator="root")
    item = _pending(client, site, task_id)
    url = f"/api/approvals/{item['request_id']}/decision"
    # the digest the approver saw must be the request's
    r = client.post(
        url,
        headers=site.headers("alice"),
        json={"decision": "approved", "digest": "sha256:" + "0" * 64},
    )
    assert r.status_code == 409
    assert "the action changed since you looked at it" in r.json()["detail"]
    # separation of duties: who started the task cannot approve its gated action
    r = client.post(
        url, headers=site.headers("root"), json={"decision": "approved", "digest": item["digest"]}
    )
    assert r.status_code == 409
    assert "cannot approve its own gated actions" in r.json()["detail"]
    # a denial with a comment fails the task, and the timeline marks where
    r = client.post(
        url,
        headers=site.headers("alice"),
        json={"decision": "denied", "comment": "wrong recipient", "digest": item["digest"]},
    )
    assert r.status_code == 200
    assert r.json()["status"] == "denied"
    r = client.post(url, headers=site.headers("alice"), json={"decision": "approved"})
    assert r.status_code == 409
    assert "denied already" in r.json()["detail"]
    site.wait_status(task_id, TaskStatus.FAILED)
    timeline = client.get(f"/api/tasks/{task_id}/timeline", headers=site.headers("root")).json()
    assert timeline["off_course"]["kind"] == "approval_decided"
    assert "denied by alice: wrong recipient" in timeline["off_course"]["reason"]
    assert not site.ledger.exists()


def test_edit_approves_changed_parameters(client: httpx.Client, site: Site) -> None:
    task_id = _report(site)
    item = _pending(client, site, task_id)
    url = f"/api/approvals/{item['request_id']}/decision"
    r = client.post(
        url,
        headers=site.headers("alice"),
        json={"decision": "approved", "edit": {"amount": 3}, "digest": item["digest"]},
    )
    assert r.status_code == 422
    assert "cannot edit amount" in r.json()["detail"]
    r = client.post(
        url,
        headers=site.headers("alice"),
        json={
            "decision": "approved",
            "edit": {"recipient": "ceo@example.com"},
            "digest": item["digest"],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["decisions"][0]["edited_parameters"]["recipient"] == "ceo@example.com"
    site.wait_status(task_id, TaskStatus.COMPLETED)
    assert site.ledger.read_text() == "sent to ceo@example.com\n"


# -- operator actions --------------------------------------------------------------------


def test_cancel(client: httpx.Client, site: Site) -> None:
    task_id = _report(site)
    r = client.post(
        f"/api/tasks/{task_id}/cancel",
        headers=site.headers("olivia"),
        json={"reason": "the quarter is reopened"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"task_id": task_id, "status": "cancelled"}
    events = site.app.store.load_events(task_id)
    assert events[-1].kind.value == "task_cancelled"
    assert events[-1].actor == "olivia"
    assert events[-1].data == {"reason": "the quarter is reopened"}
    r = client.post(f"/api/tasks/{task_id}/cancel", headers=site.headers("olivia"))
    assert r.status_code == 409
    assert "cancelled already" in r.json()["detail"]
    r = client.post(f"/api/tasks/{task_id}/resume", headers=site.headers("olivia"))
    assert r.status_code == 409
    assert "only failed or stalled tasks can be resumed" in r.json()["detail"]


def test_resolve_an_intervention(client: httpx.Client, site: Site) -> None:
    marker = site.tmp / "granted"
    task_id = site.app.start("guarded", str(marker), initiator="olivia").task_id
    site.wait_status(task_id, TaskStatus.AWAITING_INTERVENTION)
    (item,) = client.get("/api/interventions", headers=site.headers("eric")).json()
    assert item["task_id"] == task_id
    assert item["kind"] == "permission"
    assert item["step_name"] == "read_vault"
    url = f"/api/interventions/{item['intervention_id']}/resolution"

    r = client.post(url, headers=site.headers("alice"), json={"action": "retry"})
    assert r.status_code == 403
    r = client.post(url, headers=site.headers("olivia"), json={"action": "explode"})
    assert r.status_code == 422
    assert "body field 'action'" in r.json()["detail"]

    marker.touch()
    r = client.post(
        url, headers=site.headers("olivia"), json={"action": "retry", "comment": "access granted"}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"task_id": task_id, "status": "pending"}
    site.wait_status(task_id, TaskStatus.COMPLETED)
    r = client.post(url, headers=site.headers("olivia"), json={"action": "retry"})
    assert r.status_code == 409
    assert "resolved already" in r.json()["detail"]
    listed = client.get(
        "/api/interventions", params={"include_resolved": True}, headers=site.headers("eric")
    ).json()
    assert listed[0]["resolved_by"] == "olivia"
    assert listed[0]["comment"] == "access granted"
    timeline = client.get(f"/api/tasks/{task_id}/timeline", headers=site.headers("eric")).json()
    assert timeline["off_course"]["kind"] == "step_failed"
    assert timeline["off_course"]["step_name"] == "read_vault"


def test_resume_a_failed_task(client: httpx.Client, site: Site) -> None:
    marker = site.tmp / "granted"
    task_id = site.app.start("guarded", str(marker), initiator="olivia").task_id
    site.wait_status(task_id, TaskStatus.AWAITING_INTERVENTION)
    (item,) = client.get("/api/interventions", headers=site.headers("olivia")).json()
    r = client.post(
        f"/api/interventions/{item['intervention_id']}/resolution",
        headers=site.headers("olivia"),
        json={"action": "fail", "comment": "no access this week"},
    )
    assert r.json()["status"] == "failed"
    shown = client.get(f"/api/tasks/{task_id}", headers=site.headers("olivia")).json()
    assert shown["error"]["message"] == "no access this week"

    marker.touch()
    r = client.post(f"/api/tasks/{task_id}/resume", headers=site.headers("olivia"))
    assert r.status_code == 200, r.text
    assert r.json() == {"task_id": task_id, "status": "pending"}
    site.wait_status(task_id, TaskStatus.COMPLETED)
    events = site.app.store.load_events(task_id)
    resumed = [e for e in events if e.kind.value == "task_resumed"]
    assert resumed[0].actor == "olivia"


def test_halt_and_release(client: httpx.Client, site: Site) -> None:
    h = site.headers("olivia")
    r = client.post(
        "/api/halts",
        headers=h,
        json={"scope": "tool", "target": "lookup_greeting", "reason": "greeting API misbehaves"},
    )
    assert r.status_code == 201, r.text
    halt = r.json()
    assert halt["halted_by"] == "olivia"
    assert halt["active"] is True
    assert [x["halt_id"] for x in client.get("/api/halts", headers=h).json()] == [halt["halt_id"]]

    task_id = site.app.start("greet", "Grace", initiator="olivia").task_id
    site.wait_status(task_id, TaskStatus.HALTED)

    r = client.post("/api/halts/release", headers=h, json={"scope": "tool", "target": "other"})
    assert r.status_code == 409
    assert "no active halt of tool other" in r.json()["detail"]
    r = client.post("/api/halts/release", headers=h, json={"scope": "tool"})
    assert r.status_code == 422
    assert "needs its target" in r.json()["detail"]

    r = client.post(
        "/api/halts/release", headers=h, json={"scope": "tool", "target": "lookup_greeting"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["resumed"] == [task_id]
    assert r.json()["released"][0]["released_by"] == "olivia"
    site.wait_status(task_id, TaskStatus.COMPLETED)
    assert client.get("/api/halts", headers=h).json() == []
    everything = client.get("/api/halts", params={"include_released": True}, headers=h).json()
    assert everything[0]["active"] is False


# -- audit and metrics -------------------------------------------------------------------


def test_audit_views_per_role(client: httpx.Client, site: Site) -> None:
    task_id = site.app.start("greet", "Ada", initiator="olivia").task_id
    site.wait_status(task_id, TaskStatus.COMPLETED)
    params = {"task_id": task_id, "kind": "tool_call"}
    for reader in ("audrey", "eric"):
        r = client.get("/api/audit/records", params=params, headers=site.headers(reader))
        assert r.status_code == 200, r.text
        (record,) = r.json()
        assert record["tool_name"] == "lookup_greeting"
        assert record["outcome"] == "success"
        assert "Ada" not in r.text  # the compliance view carries no raw payload
    for outsider in ("olivia", "alice"):
        r = client.get("/api/audit/records", headers=site.headers(outsider))
        assert r.status_code == 403
        assert "'auditor' or 'engineer'" in r.json()["detail"]

    call = f"/api/audit/records/{record['call_id']}"
    shown = client.get(call, headers=site.headers("audrey"))
    assert shown.status_code == 200
    assert "technical" not in shown.json()
    refused = client.get(f"{call}/technical", headers=site.headers("audrey"))
    assert refused.status_code == 403
    assert "audrey may not see raw payloads" in refused.json()["detail"]
    technical = client.get(f"{call}/technical", headers=site.headers("eric")).json()
    assert technical["technical"]["raw_input"] == {"name": "Ada"}
    assert technical["technical"]["raw_output"] == "Hello, Ada!"

    missing = client.get("/api/audit/records/nope:0:1", headers=site.headers("eric"))
    assert missing.status_code == 404
    assert "no audit record with id 'nope:0:1'" in missing.json()["detail"]
    r = client.get("/api/audit/records", params={"kind": "gossip"}, headers=site.headers("eric"))
    assert r.status_code == 422
    verdict = client.get("/api/audit/verify", headers=site.headers("audrey"))
    assert verdict.status_code == 200, verdict.text
    assert verdict.json()["ok"] is True
    assert client.get("/api/audit/verify", headers=site.headers("olivia")).status_code == 403


def test_metrics(client: httpx.Client, site: Site) -> None:
    task_id = site.app.start("greet", "Ada", initiator="olivia").task_id
    site.wait_status(task_id, TaskStatus.COMPLETED)
    assert client.get("/metrics").status_code == 401
    r = client.get("/metrics", headers=site.headers("olivia"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert "# TYPE handrail_" in r.text
    assert 'tool="lookup_greeting"' in r.text


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "params", "status", "message"),
    [
        ("GET", "/api/tasks", None, {"limit": 0}, 422, "query parameter 'limit'"),
        ("GET", "/api/tasks", None, {"status": "sleeping"}, 422, "query parameter 'status'"),
        ("GET", "/api/tasks/no-such-task", None, None, 404, "no task with id 'no-such-task'"),
        ("GET", "/api/tasks/no-such-task/timeline", None, None, 404, "no task with id"),
        (
            "POST",
            "/api/tasks/no-such-task/cancel",
            None,
            None,
            404,
            "list them with GET /api/tasks",
        ),
        ("GET", "/api/approvals/t/1", None, None, 404, "no approval request with id 't/1'"),
        ("POST", "/api/approvals/t/1/decision", {"decision": "maybe"}, None, 422, "'decision'"),
        ("POST", "/api/approvals/t/1/decision", {"decision": "approved"}, None, 404, "no approval"),
        ("POST", "/api/approvals/t/1/decision", None, None, 422, "body: Field required"),
        ("POST", "/api/halts", {"scope": "task"}, None, 422, "a task halt needs the task"),
        ("POST", "/api/halts", {"scope": "task", "target": "nope"}, None, 404, "no task with id"),
        ("POST", "/api/halts", {"scope": "planet"}, None, 422, "body field 'scope'"),
        ("POST", "/api/halts", {"scope": "all", "colour": 1}, None, 422, "body field 'colour'"),
        ("POST", "/api/interventions/t/1/resolution", {"action": "skip"}, None, 404, "no inter"),
    ],
)
def test_bad_input_is_4xx_with_a_clear_message(
    client: httpx.Client,
    site: Site,
    method: str,
    path: str,
    body: Any,
    params: Any,
    status: int,
    message: str,
) -> None:
    r = client.request(method, path, json=body, params=params, headers=site.headers("root"))
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]


def test_malformed_json_is_422(client: httpx.Client, site: Site) -> None:
    r = client.post(
        "/api/halts",
        content=b"{not json",
        headers={**site.headers("root"), "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert "JSON decode error" in r.json()["detail"]


# -- `handrail serve` --------------------------------------------------------------------


def test_handrail_serve_starts_the_api(tmp_path: Path) -> None:
    app = build_app(tmp_path / "handrail.db")
    app.run("greet", "Serve", task_id="served", initiator="olivia")
    app.close()
    tokens = write_principals(tmp_path / "principals.toml")
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {
        **os.environ,
        "HANDRAIL_DB": str(tmp_path / "handrail.db"),
        "HANDRAIL_PRINCIPALS": str(tmp_path / "principals.toml"),
    }
    script = Path(sys.executable).parent / "handrail"
    cmd = [str(script), "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "handrail serve did not come up"
            time.sleep(0.1)
        assert httpx.get(f"{url}/api/tasks").status_code == 401
        r = httpx.get(
            f"{url}/api/tasks/served", headers={"Authorization": f"Bearer {tokens['eric']}"}
        )
        assert r.status_code == 200
        assert r.json()["result"] == "Hello, Serve!"
        assert httpx.get(f"{url}/openapi.json").json()["info"]["title"] == "handrail"
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


def test_handrail_serve_needs_principals(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "handrail"
    env = {k: v for k, v in os.environ.items() if k != "HANDRAIL_PRINCIPALS"}
    out = subprocess.run(
        [str(script), "--db", str(tmp_path / "x.db"), "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "needs the principals file" in out.stderr


# -- fuzzing from the OpenAPI document ---------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """The app over a store with a task in each state the routes act on."""
    tmp = tmp_path_factory.mktemp("fuzz")
    app = build_app(tmp / "handrail.db")
    tokens = write_principals(tmp / "principals.toml")
    app.run("greet", "Fuzz", task_id="done", initiator="olivia")
    app.run("report", str(tmp / "ledger"), "x@example.com", task_id="gated", initiator="olivia")
    app.run("guarded", str(tmp / "never"), task_id="stuck", initiator="olivia")
    asgi = create_app(app.store, app.clock, Principals.from_file(tmp / "principals.toml"))
    yield asgi, tokens["root"]
    app.close()


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_input_makes_the_server_fail(fuzz_target: tuple[Any, str], mode: str) -> None:
    """Every operation in the app's own OpenAPI document, with generated valid (positive)
    or invalid (negative) input, as the all-roles principal: never a 5xx."""
    asgi, token = fuzz_target
    schema = schemathesis.openapi.from_asgi("/openapi.json", asgi)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    headers = {"Authorization": f"Bearer {token}"}
    skipped: list[str] = []
    for operation in operations:
        strategy = operation.as_strategy(generation_mode=GenerationMode(mode))

        @given(case=strategy)
        @settings(
            max_examples=15,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def call(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        try:
            call()
        except Unsatisfiable:
            # no invalid input exists for it (no parameters, no body): nothing to fuzz
            assert mode == "negative", operation.label
            skipped.append(operation.label)
    assert len(skipped) <= 3, skipped


# -- notifications ------------------------------------------------------------------------


def test_notifications_list_and_retry(client: httpx.Client, site: Site) -> None:
    from handrail.notify.outbox import NewNotice

    outbox = site.app.store.notice_outbox()
    added = outbox.enqueue(
        [NewNotice("webhook", f"approval_requested:t{n}/r", "approval_requested", "{}", 1e9)
         for n in range(3)],
        holder="gone",
        hold_until=1e9 + 30,
    )  # fmt: skip
    ids = [n.notice_id for n in added]
    outbox.settle(ids[:1], now=1e9 + 1, sent=True, attempts=0)
    outbox.settle(ids[1:], now=1e9 + 2, sent=False, attempts=8, error="ConnectError: refused")

    listed = client.get("/api/notifications", headers=site.headers("audrey")).json()
    assert [(n["notice_id"], n["state"]) for n in listed] == [
        (ids[2], "dropped"), (ids[1], "dropped"), (ids[0], "sent"),
    ]  # fmt: skip
    assert listed[0]["last_error"] == "ConnectError: refused"
    r = client.get("/api/notifications", params={"state": "gone"}, headers=site.headers("eric"))
    assert r.status_code == 422

    # only an operator retries, naming what
    r = client.post("/api/notifications/retry", headers=site.headers("audrey"), json={"all": True})
    assert r.status_code == 403
    h = site.headers("olivia")
    r = client.post("/api/notifications/retry", headers=h, json={})
    assert r.status_code == 422
    assert "notice_ids" in r.json()["detail"]
    r = client.post("/api/notifications/retry", headers=h, json={"notice_ids": [ids[1]]})
    assert r.json() == {"requeued": 1}
    r = client.post("/api/notifications/retry", headers=h, json={"notice_ids": [ids[0]]})
    assert r.status_code == 409
    r = client.post("/api/notifications/retry", headers=h, json={"all": True})
    assert r.json() == {"requeued": 1}
    states = client.get("/api/notifications", params={"state": "queued"}, headers=h).json()
    assert sorted(n["notice_id"] for n in states) == ids[1:]
