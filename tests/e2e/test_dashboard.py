"""The dashboard in a real browser: headless Chromium (Playwright) against uvicorn on
127.0.0.1, a real SQLite store and a real worker.

They need Debian's Chromium at /usr/bin/chromium (``apt-get install chromium``); without
it they skip, saying so, unless ``HANDRAIL_REQUIRE_BROWSER=1`` (as in CI) makes that a
failure. No browser is ever downloaded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from webapp import Site, running_site

from handrail import decisions
from handrail.journal import TaskStatus

CHROMIUM = "/usr/bin/chromium"
REQUIRE_BROWSER = os.environ.get("HANDRAIL_REQUIRE_BROWSER") == "1"


def _unavailable(reason: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"HANDRAIL_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _unavailable(
            f"{CHROMIUM} is missing; install chromium: apt-get install chromium "
            "(the browser tests use Debian's Chromium, never a downloaded one)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed; pip install -e '.[dev]'")
    with sync_playwright() as pw:
        try:
            launched = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        except Exception as exc:
            _unavailable(f"{CHROMIUM} does not start headless ({exc}); install chromium")
        yield launched
        launched.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with running_site(tmp_path) as s:
        yield s


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    context = browser.new_context(base_url=site.url)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def sign_in(page: Any, site: Site, name: str, target: str = "/tasks") -> None:
    page.goto(target)
    assert "/login" in page.url  # every page needs a signed-in principal
    page.fill("#token", site.tokens[name])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(target) + "$"))
    assert page.inner_text("#signed-in-as") == name


def _report(site: Site) -> str:
    task = site.app.start("report", str(site.ledger), "cfo@example.com", initiator="olivia")
    site.wait_status(task.task_id, TaskStatus.AWAITING_APPROVAL)
    return task.task_id


def test_a_wrong_token_does_not_sign_in(page: Any, site: Site) -> None:
    page.goto("/tasks")
    assert page.url.endswith("/login?next=/tasks")
    page.fill("#token", "hr_wrong")
    page.click("button[type=submit]")
    assert "That token names no principal" in page.inner_text("main")
    assert page.locator("#signed-in-as").count() == 0


def test_approve_from_the_inbox_and_watch_the_task_complete(page: Any, site: Site) -> None:
    task_id = _report(site)
    (pending,) = decisions.list_approvals(site.app.store)
    request = pending.request
    sign_in(page, site, "alice", "/approvals")

    card = page.locator(f"article[data-request-id='{request.request_id}']")
    fields = {
        "request_id": request.request_id,
        "task_id": task_id,
        "requesting_agent": "report-bot",
        "initiator": "olivia",
        "proposed_action": "Send the quarterly report to cfo@example.com",
        "agent_reasoning": "The quarter closed; cfo@example.com gets the report.",
        "expected_outcome": "cfo@example.com receives the report; it cannot be unsent",
        "reversibility": "irreversible",
        "approvers": "any approver",
        "quorum": "1",
        "group": request.group,
        "digest": request.digest,
        "context_summary": request.context_summary,
        "step_index": str(request.step_index),
    }
    for name, value in fields.items():
        assert card.locator(f".f-{name}").inner_text().strip() == value, name
    assert '"recipient": "cfo@example.com"' in card.locator(".f-action_parameters").inner_text()
    assert "send_report" in card.locator(".f-tool").inner_text()
    assert card.locator(".f-auto_deny_after").inner_text() == "3600 s"
    assert "(denied, in " in card.locator(".f-expires_at").inner_text()
    assert card.locator("input[name=digest]").get_attribute("value") == request.digest

    card.locator("textarea[name=comment]").fill("figures checked")
    card.locator("button.approve").click()
    page.wait_for_url(re.compile(r"/approvals$"))
    assert f"{request.request_id} approved" in page.inner_text(".flash")
    assert page.locator("#inbox-empty").is_visible()

    site.wait_status(task_id, TaskStatus.COMPLETED)
    page.goto(f"/tasks/{task_id}")
    assert page.inner_text("#task-status") == "completed"
    assert page.inner_text("#task-result") == '"sent to cfo@example.com"'
    kinds = page.locator("#timeline tbody tr").evaluate_all("rows => rows.map(r => r.dataset.kind)")
    assert kinds[0] == "task_created"
    assert kinds[-1] == "task_completed"
    assert "approval_requested" in kinds
    decided = page.locator("#timeline tr[data-kind=approval_decided]").inner_text()
    assert "alice" in decided
    assert "figures checked" in decided
    assert page.locator("#off-course").count() == 0
    assert site.ledger.read_text() == "sent to cfo@example.com\n"


def test_the_timeline_marks_where_the_task_went_off_course(page: Any, site: Site) -> None:
    marker = site.tmp / "granted"
    task_id = site.app.start("guarded", str(marker), initiator="olivia").task_id
    site.wait_status(task_id, TaskStatus.AWAITING_INTERVENTION)
    sign_in(page, site, "olivia", f"/tasks/{task_id}")

    off = page.locator("#off-course")
    assert off.get_attribute("data-kind") == "step_failed"
    assert "0 read_vault" in off.inner_text()
    assert "PermissionError" in off.inner_text()
    assert "read_vault" in page.inner_text("#off-course-summary")
    assert page.locator("#steps tr.off-course").inner_text().startswith("0")
    # the intervention that followed is in the timeline too
    assert page.locator("#timeline tr[data-kind=intervention_raised]").count() == 1

    marker.touch()
    page.select_option("select[name=action]", "retry")
    page.fill("input[name=comment]", "access granted")
    page.click("#intervention-1 button[type=submit]")
    assert "retry" in page.inner_text(".flash")
    site.wait_status(task_id, TaskStatus.COMPLETED)
    page.goto(f"/tasks/{task_id}")
    assert page.inner_text("#task-status") == "completed"
    resolved = page.locator("#timeline tr[data-kind=intervention_resolved]").inner_text()
    assert "olivia" in resolved
    assert "access granted" in resolved
    assert page.locator("#off-course").get_attribute("data-kind") == "step_failed"


def test_a_form_post_without_the_csrf_token_is_refused(page: Any, site: Site) -> None:
    task_id = _report(site)
    (pending,) = decisions.list_approvals(site.app.store)
    sign_in(page, site, "alice", "/approvals")
    form = {
        "request_id": pending.request_id,
        "decision": "approved",
        "digest": pending.request.digest,
    }
    # the browser's own session cookie goes with these requests; only the token is missing
    missing = page.request.post("/approvals/decide", form=form, max_redirects=0)
    assert missing.status == 403
    assert "CSRF token is missing or does not match" in missing.text()
    wrong = page.request.post(
        "/approvals/decide", form={**form, "csrf_token": "forged"}, max_redirects=0
    )
    assert wrong.status == 403
    assert page.request.post("/logout", max_redirects=0).status == 403
    assert site.app.store.get_task(task_id).status is TaskStatus.AWAITING_APPROVAL  # type: ignore[union-attr]
    assert decisions.find_approval(site.app.store, pending.request_id).decisions == []
    # the page's own form (which carries the token) still works
    page.goto("/approvals")
    page.locator("button.deny").click()
    assert "denied" in page.inner_text(".flash")


def test_roles_decide_what_the_dashboard_offers(page: Any, site: Site) -> None:
    task_id = _report(site)
    sign_in(page, site, "audrey", "/approvals")  # an auditor reads the inbox...
    assert "deciding needs the approver role" in page.inner_text("main")
    assert page.locator("button.approve").count() == 0
    # ...and a hand-made decision, with a valid CSRF token, is refused by role
    token = page.locator("form[action='/logout'] input[name=csrf_token]").get_attribute("value")
    (pending,) = decisions.list_approvals(site.app.store)
    refused = page.request.post(
        "/approvals/decide",
        form={
            "csrf_token": token,
            "request_id": pending.request_id,
            "decision": "approved",
            "digest": pending.request.digest,
        },
    )
    assert refused.status == 403
    assert "needs the approver role" in refused.text()
    page.goto(f"/tasks/{task_id}")
    assert page.locator("text=Cancel task").count() == 0  # operators only


def test_task_list_filters_and_charts(page: Any, site: Site) -> None:
    done = site.app.start("greet", "Ada", initiator="olivia").task_id
    site.wait_status(done, TaskStatus.COMPLETED)
    waiting = _report(site)
    sign_in(page, site, "olivia")
    rows = page.locator("#tasks tbody tr")
    assert rows.count() == 2
    page.select_option("select[name=status]", "completed")
    page.click("form.filters button[type=submit]")
    assert rows.count() == 1
    assert done in rows.inner_text()
    page.goto("/tasks?workflow=report")
    assert waiting in page.locator("#tasks tbody").inner_text()
    assert done not in page.locator("#tasks tbody").inner_text()

    page.goto(f"/tasks/{waiting}")
    page.fill("input[name=reason]", "not this quarter")
    page.click("text=Cancel task")
    assert "cancelled" in page.inner_text(".flash")
    assert page.inner_text("#task-status") == "cancelled"

    missing = page.goto("/tasks/no-such-task")
    assert missing is not None
    assert missing.status == 404
    assert "no task with id 'no-such-task'" in page.inner_text("#error-detail")

    page.goto("/charts")
    charts = page.locator("svg.chart")
    assert charts.count() == 3
    assert "lookup_greeting" in page.inner_text(".chart-box:nth-of-type(3) .legend")
    assert page.locator("svg.chart circle").count() > 0
    assert "pending or running" in page.inner_text("main")


def test_an_auditor_sees_the_compliance_view_never_raw_payloads(page: Any, site: Site) -> None:
    task_id = site.app.start("greet", "Ada Lovelace", initiator="olivia").task_id
    site.wait_status(task_id, TaskStatus.COMPLETED)
    sign_in(page, site, "audrey", "/audit")
    assert "compliance view" in page.inner_text("h1")
    row = page.locator(f"#audit-records tr[data-call-id='{task_id}:0:1']")
    assert "lookup_greeting: success, by olivia" in row.inner_text()
    assert "Ada Lovelace" not in page.content()  # the raw input is nowhere on the page
    assert page.locator("pre.raw").count() == 0
    refused = page.goto("/audit?view=technical")
    assert refused is not None
    assert refused.status == 403
    assert "audrey may not see raw payloads" in page.inner_text("#error-detail")
    page.goto("/audit/verify")
    assert page.locator("#verdict").is_visible()


def test_an_engineer_sees_the_raw_payloads(page: Any, site: Site) -> None:
    task_id = site.app.start("greet", "Ada Lovelace", initiator="olivia").task_id
    site.wait_status(task_id, TaskStatus.COMPLETED)
    sign_in(page, site, "eric", "/audit")
    assert "technical view" in page.inner_text("h1")
    raw = page.locator(f"#audit-records tr[data-call-id='{task_id}:0:1'] pre.raw").inner_text()
    assert '"raw_input": {"name": "Ada Lovelace"}' in raw
    assert '"raw_output": "Hello, Ada Lovelace!"' in raw
    # an operator has no audit view at all
    page.click("text=Sign out")
    sign_in(page, site, "olivia")
    assert page.locator("nav >> text=Audit").count() == 0
    assert page.goto("/audit").status == 403  # type: ignore[union-attr]
