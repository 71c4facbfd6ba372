"""Monitoring on every store: each metric computed right for a constructed scenario, the
Prometheus exposition, and alert rules that fire once and resolve once (issue 6)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from handrail import App, ApprovalPolicy, RetryPolicy, TaskContext, TaskStatus
from handrail.audit.record import build_tool_call_record
from handrail.monitoring import (
    Alerting,
    MissedApprovals,
    Monitor,
    PendingTooLong,
    StuckTasks,
    ToolSuccessRate,
    render_metrics,
)
from handrail.monitoring.totals import Totals
from handrail.testing import ManualClock

MakeApp = Callable[..., App]
T0 = 1_000_000.0  # the clock fixture's start


class RecordingNotifier:
    """A notifier that keeps what it is sent."""

    name = "recording"

    def __init__(self) -> None:
        self.received: list[Any] = []

    def send(self, batch: Sequence[Any]) -> None:
        self.received.extend(batch)


def queue_app(make_app: MakeApp, **kwargs: Any) -> App:
    app = make_app(**kwargs)

    @app.tool(idempotent=True)
    def echo(text: str) -> str:
        return text

    @app.workflow
    def quick(ctx: TaskContext, text: str) -> str:
        return str(echo(text))

    @app.workflow(queue="batch", max_execution_time=100)
    def slow(ctx: TaskContext) -> str:
        return str(echo("slow"))

    return app


# -- tasks: queue depth, due, oldest pending, stuck ------------------------------------------


def stuck_scenario(app: App, clock: ManualClock) -> dict[str, str]:
    """At T0 + 150: q1 and q3 pending, q2's worker died at T0 + 40 (lease expired), s1
    in progress since T0 past its 100 s max_execution_time (its lease is live)."""
    ids = {
        "q1": app.start("quick", "a").task_id,
        "q2": app.start("quick", "b").task_id,
        "s1": app.start("slow").task_id,
    }
    assert app.store.claim_task("busy", now=T0, lease_seconds=10_000, task_id=ids["s1"])
    clock.advance(10)
    ids["q3"] = app.start("quick", "c").task_id
    assert app.store.claim_task("dead", now=T0 + 10, lease_seconds=30, task_id=ids["q2"])
    clock.set(T0 + 150)
    return ids


def test_queue_depth_oldest_pending_and_stuck_tasks(make_app: MakeApp, clock: ManualClock) -> None:
    app = queue_app(make_app)
    ids = stuck_scenario(app, clock)
    snap = Monitor(app.store, clock=clock).snapshot()
    assert snap.taken_at == T0 + 150
    assert dict(snap.tasks) == {
        ("default", "pending"): 2,
        ("default", "in_progress"): 1,
        ("batch", "in_progress"): 1,
    }
    assert snap.depth() == 4
    assert snap.depth("default") == 3
    # q1 due since T0, q3 since T0 + 10, q2 since its lease ran out at T0 + 40; s1 is held
    assert dict(snap.due) == {"default": 3, "batch": 0}
    oldest = snap.oldest_pending["default"]
    assert (oldest.task_id, oldest.age_seconds) == (ids["q1"], 150.0)
    assert "batch" not in snap.oldest_pending
    assert snap.oldest_pending_age == 150.0
    stuck = {s.task_id: s for s in snap.stuck}
    assert set(stuck) == {ids["q2"], ids["s1"]}
    assert stuck[ids["q2"]].reason == "lease_expired"
    assert (stuck[ids["q2"]].since, stuck[ids["q2"]].seconds) == (T0 + 40, 110.0)
    assert stuck[ids["q2"]].worker == "dead"
    assert stuck[ids["s1"]].reason == "overdue"
    assert (stuck[ids["s1"]].since, stuck[ids["s1"]].seconds) == (T0, 150.0)
    assert stuck[ids["s1"]].max_execution_seconds == 100


def test_a_task_is_overdue_from_when_it_last_went_in_progress(
    make_app: MakeApp, clock: ManualClock
) -> None:
    app = queue_app(make_app)
    tid = app.start("slow").task_id
    clock.advance(500)  # queued for 500 s: not running, so not overdue
    assert app.store.claim_task("w", now=clock.now(), lease_seconds=10_000, task_id=tid)
    clock.advance(60)
    monitor = Monitor(app.store, clock=clock, ttl=0)
    assert monitor.snapshot().stuck == ()
    clock.advance(41)
    (stuck,) = monitor.snapshot().stuck
    assert (stuck.reason, stuck.since, stuck.seconds) == ("overdue", T0 + 500, 101.0)


def test_snapshots_are_cached_for_ttl_seconds(make_app: MakeApp, clock: ManualClock) -> None:
    app = queue_app(make_app)
    monitor = Monitor(app.store, clock=clock, ttl=5)
    first = monitor.snapshot()
    app.start("quick", "x")
    assert monitor.snapshot() is first
    assert monitor.snapshot(fresh=True).depth() == 1
    clock.advance(5)
    assert monitor.snapshot().taken_at == T0 + 5


# -- approvals: missed, time to decision -----------------------------------------------------


def approval_app(make_app: MakeApp, **kwargs: Any) -> App:
    app = make_app(**kwargs)

    @app.tool(
        reversibility="irreversible",
        describe="Send notice to {vendor}",
        approval=ApprovalPolicy(auto_deny_after=600),
    )
    def send_notice(vendor: str) -> str:
        return f"sent to {vendor}"

    @app.tool(
        reversibility="fully_reversible", approval=ApprovalPolicy("always", auto_deny_after=None)
    )
    def add_note(vendor: str) -> str:
        return "noted"

    @app.workflow
    def notify(ctx: TaskContext, vendor: str) -> str:
        return str(send_notice(vendor))

    @app.workflow
    def note(ctx: TaskContext, vendor: str) -> str:
        return str(add_note(vendor))

    return app


def test_missed_approvals_and_time_to_decision(make_app: MakeApp, clock: ManualClock) -> None:
    app = approval_app(make_app)
    late = app.run("notify", "late", initiator="carol")  # deadline T0 + 600
    waiting = app.run("note", "slow", initiator="carol")  # no deadline
    decided = app.run("notify", "fast", initiator="carol")
    (request,) = app.approvals(task_id=decided.task_id)
    clock.advance(120)
    app.approve(request.request_id, by="dana")
    app.execute(decided.task_id)
    assert decided.status() is TaskStatus.COMPLETED
    clock.set(T0 + 700)

    snap = Monitor(app.store, clock=clock).snapshot()
    assert snap.approvals.pending == 2
    assert {(p.task_id, p.missed) for p in snap.pending_approvals} == {
        (late.task_id, "past_deadline"),
        (waiting.task_id, None),
    }
    (missed,) = snap.missed_approvals
    assert (missed.tool, missed.waiting_seconds, missed.expires_at) == (
        "send_notice",
        700,
        T0 + 600,
    )
    a = snap.approvals
    assert (a.decided, a.approved, a.denied, a.by_timer) == (1, 1, 0, 0)
    assert a.decision_p50 == a.decision_p95 == a.decision_max == 120.0
    assert snap.totals is not None
    histogram = snap.totals.decisions["approved"]
    assert (histogram.count, histogram.total) == (1, 120.0)

    expecting = Monitor(app.store, clock=clock, expected_decision_seconds=300).snapshot()
    assert {(p.task_id, p.missed) for p in expecting.missed_approvals} == {
        (late.task_id, "past_deadline"),
        (waiting.task_id, "past_expected"),
    }
    # a rule can bring its own expected time
    found = MissedApprovals(expected_decision_seconds=600).check(snap)
    assert {(f.details["task_id"], f.details["reason"]) for f in found} == {
        (late.task_id, "past_deadline"),
        (waiting.task_id, "past_expected"),
    }
    found = MissedApprovals(expected_decision_seconds=800).check(snap)
    assert [(f.details["task_id"], f.details["reason"]) for f in found] == [
        (late.task_id, "past_deadline")
    ]


# -- tools and interventions -----------------------------------------------------------------


class Flaky:
    def __init__(self) -> None:
        self.calls = 0


def tools_app(make_app: MakeApp) -> App:
    app = make_app(retry_policy=RetryPolicy(max_attempts=3, initial_delay=0, jitter=False))
    flaky = Flaky()

    @app.tool(idempotent=True)
    def fetch(key: str) -> str:
        flaky.calls += 1
        if flaky.calls == 1:
            raise ConnectionRefusedError("service not listening yet")
        return key

    @app.tool(idempotent=True)
    def read_vault(key: str) -> str:
        raise PermissionError("no access to the vault")

    @app.tool(idempotent=True)
    def ok(key: str) -> str:
        return key

    @app.tool(idempotent=True)
    def boom(key: str) -> str:
        raise RuntimeError("unexpected")

    @app.workflow
    def fetching(ctx: TaskContext) -> str:
        return str(fetch("k"))

    @app.workflow
    def vault(ctx: TaskContext) -> str:
        return str(read_vault("k"))

    @app.workflow
    def plain(ctx: TaskContext) -> str:
        return str(ok("k"))

    @app.workflow
    def broken(ctx: TaskContext) -> str:
        return str(boom("k"))

    return app


def tools_scenario(app: App, clock: ManualClock) -> None:
    """Five tasks finish: one after a retry, one after a human resolved an intervention,
    two plainly, one failed."""
    assert app.run("fetching").status() is TaskStatus.COMPLETED
    vault = app.run("vault")
    assert vault.status() is TaskStatus.AWAITING_INTERVENTION
    (item,) = app.interventions(task_id=vault.task_id)
    clock.advance(30)
    app.resolve_intervention(item.intervention_id, action="mark_done", by="ops", output="v")
    app.execute(vault.task_id)
    assert vault.status() is TaskStatus.COMPLETED
    app.run("plain")
    app.run("plain")
    assert app.run("broken").status() is TaskStatus.FAILED
    clock.advance(10)


def test_tool_calls_by_outcome_and_failure_class_retries_and_interventions(
    make_app: MakeApp, clock: ManualClock
) -> None:
    app = tools_app(make_app)
    tools_scenario(app, clock)
    snap = Monitor(app.store, clock=clock).snapshot()
    by_tool = {t.tool: t for t in snap.tools}
    assert set(by_tool) == {"fetch", "read_vault", "ok", "boom"}
    fetch = by_tool["fetch"]
    assert (fetch.calls, fetch.retries) == (2, 1)
    assert dict(fetch.outcomes) == {"failure": 1, "success": 1}
    assert dict(fetch.failure_classes) == {"transient": 1}
    assert fetch.success_rate == 0.5
    assert dict(by_tool["read_vault"].failure_classes) == {"permission": 1}
    assert dict(by_tool["boom"].failure_classes) == {"fatal": 1}
    assert by_tool["ok"].success_rate == 1.0
    assert (by_tool["ok"].calls, by_tool["ok"].retries) == (2, 0)
    for tool in snap.tools:
        assert tool.latency_max is not None
        assert 0 <= tool.latency_p50 <= tool.latency_p95 <= tool.latency_max  # type: ignore[operator]

    i = snap.interventions
    assert (i.finished, i.intervened, i.approval_requested) == (5, 1, 0)
    assert i.ratio == 0.2

    assert snap.totals is not None
    assert dict(snap.totals.calls) == {
        ("fetch", "failure", "transient"): 1,
        ("fetch", "success", "none"): 1,
        ("read_vault", "failure", "permission"): 1,
        ("ok", "success", "none"): 2,
        ("boom", "failure", "fatal"): 1,
    }
    assert dict(snap.totals.retries) == {"fetch": 1, "read_vault": 0, "ok": 0, "boom": 0}
    assert {t: h.count for t, h in snap.totals.latency.items()} == {
        "fetch": 2,
        "read_vault": 1,
        "ok": 2,
        "boom": 1,
    }


def test_a_resumed_task_counts_as_an_intervention(make_app: MakeApp, clock: ManualClock) -> None:
    app = tools_app(make_app)
    failed = app.run("broken")
    app.run("plain")
    app.resume(failed.task_id, by="ops")
    app.cancel(failed.task_id, by="ops")
    i = Monitor(app.store, clock=clock).snapshot().interventions
    assert (i.finished, i.intervened, i.ratio) == (2, 1, 0.5)


def test_window_figures_leave_out_what_happened_before_the_window(
    make_app: MakeApp, clock: ManualClock
) -> None:
    app = tools_app(make_app)
    tools_scenario(app, clock)
    clock.advance(3600)
    app.run("plain")
    snap = Monitor(app.store, clock=clock, window=600).snapshot()
    assert [(t.tool, t.calls) for t in snap.tools] == [("ok", 1)]
    assert (snap.interventions.finished, snap.interventions.intervened) == (1, 0)
    assert snap.totals is not None  # counters are cumulative: everything the log holds
    assert sum(snap.totals.calls.values()) == 7


def append_call(app: App, n: int, *, seconds: float, at: float, attempt: int = 1) -> None:
    app.store.audit_log().append(
        [
            build_tool_call_record(
                call_id=f"t{n}:0:{attempt}",
                task_id=f"t{n}",
                tool_name="lookup",
                params={"n": n},
                started_at=at - seconds,
                duration_ms=seconds * 1000,
                logged_at=at,
                vault=None,
                attempt=attempt,
            )
        ]
    )


def test_latency_quantiles_and_histogram_buckets(make_app: MakeApp, clock: ManualClock) -> None:
    app = make_app()
    for n in range(9):
        append_call(app, n, seconds=0.1, at=T0)
    append_call(app, 9, seconds=2.0, at=T0, attempt=2)
    snap = Monitor(app.store, clock=clock).snapshot()
    (lookup,) = snap.tools
    assert (lookup.latency_p50, lookup.latency_p95, lookup.latency_max) == (0.1, 2.0, 2.0)
    assert (lookup.calls, lookup.retries) == (10, 1)
    assert snap.totals is not None
    histogram = snap.totals.latency["lookup"]
    buckets = dict(histogram.cumulative())
    assert (buckets[0.05], buckets[0.1], buckets[1.0], buckets[2.5]) == (0, 9, 9, 10)
    assert buckets[float("inf")] == 10
    assert histogram.total == pytest.approx(2.9)


def test_totals_read_the_log_incrementally_without_counting_twice(
    make_app: MakeApp, clock: ManualClock
) -> None:
    app = make_app()
    totals = Totals(app.store.audit_log(), settle_seconds=60)
    append_call(app, 1, seconds=0.1, at=T0)
    assert totals.update(T0).calls == {("lookup", "success", "none"): 1}
    append_call(app, 2, seconds=0.1, at=T0 + 1)
    assert totals.update(T0 + 1).calls == {("lookup", "success", "none"): 2}
    assert totals.update(T0 + 120).calls == {("lookup", "success", "none"): 2}  # settled
    append_call(app, 3, seconds=0.1, at=T0 + 121)
    seen = totals.update(T0 + 121)
    assert seen.calls == {("lookup", "success", "none"): 3}
    assert seen.records == 3
    # another reader of the same log from scratch agrees
    assert Totals(app.store.audit_log()).update(T0 + 121).calls == seen.calls


# -- Prometheus ------------------------------------------------------------------------------


def samples(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def labelled(families: dict[str, Any], name: str, **labels: str) -> float:
    """The value of family ``name``'s sample with exactly ``labels``."""
    found: float = next(
        s.value for s in families[name].samples
        if s.labels == labels and not s.name.endswith("_created")
    )  # fmt: skip
    return found


def test_prometheus_exposition_parses_with_the_expected_names_and_labels(
    make_app: MakeApp, clock: ManualClock
) -> None:
    stuck_scenario(queue_app(make_app), clock)  # unfinished tasks; the clock at T0 + 150
    app = tools_app(make_app)  # the same store
    tools_scenario(app, clock)  # the clock at T0 + 190
    families = samples(render_metrics(Monitor(app.store, clock=clock)).decode())

    types = {name: f.type for name, f in families.items()}
    assert types["handrail_tasks"] == "gauge"
    assert types["handrail_oldest_pending_task_age_seconds"] == "gauge"
    assert types["handrail_stuck_tasks"] == "gauge"
    assert types["handrail_missed_approvals"] == "gauge"
    assert types["handrail_human_intervention_ratio"] == "gauge"
    assert types["handrail_tool_calls"] == "counter"  # exposed as handrail_tool_calls_total
    assert types["handrail_tool_retries"] == "counter"
    assert types["handrail_tool_call_duration_seconds"] == "histogram"
    assert types["handrail_approval_decision_seconds"] == "histogram"

    def values(name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {
            tuple(sorted(s.labels.items())): s.value
            for s in families[name].samples
            if s.name in (name, name + "_total")
        }

    tasks = values("handrail_tasks")
    assert tasks[(("queue", "default"), ("status", "pending"))] == 2
    assert tasks[(("queue", "batch"), ("status", "in_progress"))] == 1
    assert tasks[(("queue", "batch"), ("status", "halted"))] == 0
    assert values("handrail_oldest_pending_task_age_seconds") == {
        (("queue", "batch"),): 0.0,
        (("queue", "default"),): 190.0,
    }
    assert values("handrail_stuck_tasks") == {
        (("reason", "lease_expired"),): 1.0,
        (("reason", "overdue"),): 1.0,
    }
    assert values("handrail_human_intervention_ratio") == {(): 0.2}
    calls = values("handrail_tool_calls")
    assert calls[(("failure_class", "transient"), ("outcome", "failure"), ("tool", "fetch"))] == 1
    assert calls[(("failure_class", "none"), ("outcome", "success"), ("tool", "ok"))] == 2
    assert values("handrail_tool_retries")[(("tool", "fetch"),)] == 1
    latency = families["handrail_tool_call_duration_seconds"].samples
    counts = {s.labels["tool"]: s.value for s in latency if s.name.endswith("_count")}
    assert counts == {"boom": 1, "fetch": 2, "ok": 2, "read_vault": 1}
    inf = {s.labels["tool"]: s.value for s in latency if s.labels.get("le") == "+Inf"}
    assert inf == counts


def test_the_notification_outbox_in_the_snapshot_the_status_line_and_the_exposition(
    make_app: MakeApp, clock: ManualClock
) -> None:
    from handrail.cli.status_render import notifications_line
    from handrail.notify.outbox import NewNotice

    app = make_app()
    outbox = app.store.notice_outbox()
    t0 = clock.now()
    notices = outbox.enqueue(
        [NewNotice("webhook", f"k{n}", "approval_requested", "{}", t0 + n) for n in range(4)]
        + [NewNotice("email", "k0", "approval_requested", "{}", t0)],
        holder="w",
        hold_until=t0 + 300,
    )
    ids = [n.notice_id for n in notices]
    outbox.settle(ids[:2], now=t0 + 5, sent=True, attempts=0)
    outbox.settle(ids[2:3], now=t0 + 5, sent=False, attempts=8, error="503")
    outbox.settle(ids[4:], now=t0 + 5, sent=True, attempts=1)
    clock.advance(400)

    snap = Monitor(app.store, clock=clock).snapshot()
    webhook, email = snap.notices["webhook"], snap.notices["email"]
    assert (webhook.queued, webhook.sent, webhook.dropped) == (1, 2, 1)
    assert webhook.oldest_queued_at == t0 + 3
    assert (email.queued, email.sent, email.dropped) == (0, 1, 0)
    assert snap.to_dict()["notifications"]["webhook"]["dropped"] == 1
    line = notifications_line(snap)
    assert line.plain == (
        "Notifications: email 0 queued, 1 sent, 0 given up; "
        "webhook 1 queued (oldest 7 min), 2 sent, 1 given up"
    )
    assert line.style == "red"

    families = samples(render_metrics(Monitor(app.store, clock=clock)).decode())
    assert families["handrail_notifications_queued"].type == "gauge"
    assert families["handrail_notifications_sent"].type == "counter"
    assert families["handrail_notifications_dropped"].type == "gauge"

    def value(name: str, notifier: str) -> float:
        return labelled(families, name, notifier=notifier)

    assert value("handrail_notifications_queued", "webhook") == 1
    assert value("handrail_notifications_oldest_queued_age_seconds", "webhook") == 397.0
    assert value("handrail_notifications_oldest_queued_age_seconds", "email") == 0.0
    assert value("handrail_notifications_sent", "webhook") == 2
    assert value("handrail_notifications_dropped", "webhook") == 1


def test_the_audit_sinks_backlog_in_the_snapshot_the_status_line_and_the_exposition(
    make_app: MakeApp, clock: ManualClock
) -> None:
    from handrail.audit.checkpoint import generate_signing_key
    from handrail.cli.status_render import sinks_line

    app = make_app()
    log = app.store.audit_log()
    t0 = clock.now()
    for n in range(3):
        append_call(app, n, seconds=0.01, at=t0 + n)
    log.sequence(generate_signing_key("test/audit"), "test/audit", sinks=["archive", "siem"])
    ids = [r.record_id for r in log.records()]
    log.delivered("archive", ids, now=t0 + 5)
    log.failed("siem", ids[0], next_at=t0 + 60, error="ConnectError: refused")
    clock.advance(600)

    snap = Monitor(app.store, clock=clock).snapshot()
    assert snap.sinks["archive"].pending == 0
    assert snap.sinks["archive"].delivered == 3
    assert (snap.sinks["siem"].pending, snap.sinks["siem"].attempts) == (3, 1)
    assert snap.to_dict()["audit_sinks"]["siem"]["last_error"] == "ConnectError: refused"
    line = sinks_line(snap)
    assert line.plain == (
        "Audit sinks: archive 0 pending, 3 delivered; "
        "siem 3 pending, 0 delivered (oldest 10 min, 1 attempts: ConnectError: refused)"
    )
    assert line.style == "red"

    families = samples(render_metrics(Monitor(app.store, clock=clock)).decode())
    assert families["handrail_audit_sink_pending"].type == "gauge"
    assert families["handrail_audit_sink_delivered"].type == "counter"

    def value(name: str, sink: str) -> float:
        return labelled(families, name, sink=sink)

    assert value("handrail_audit_sink_pending", "siem") == 3
    assert value("handrail_audit_sink_oldest_pending_age_seconds", "siem") == 600.0
    assert value("handrail_audit_sink_oldest_pending_age_seconds", "archive") == 0.0
    assert value("handrail_audit_sink_delivered", "archive") == 3


# -- alerts ----------------------------------------------------------------------------------


def test_alert_rules_fire_once_per_incident_and_resolve_once(
    make_app: MakeApp, clock: ManualClock
) -> None:
    seen = RecordingNotifier()
    app = queue_app(
        make_app,
        notifiers=[seen],
        alert_rules=[StuckTasks(), PendingTooLong(max_age=60), ToolSuccessRate(min_calls=1)],
    )
    tid = app.start("quick", "a").task_id
    assert app.store.claim_task("dead", now=T0, lease_seconds=30, task_id=tid)
    alerting: Alerting = app.alerting
    assert alerting.evaluate() == []  # lease still live
    clock.advance(100)  # lease expired at T0 + 30, due since then: 70 s
    fired = alerting.evaluate()
    assert sorted((c.state, c.incident.rule, c.incident.key) for c in fired) == [
        ("firing", "pending_too_long", "default"),
        ("firing", "stuck_task", tid),
    ]
    clock.advance(10)
    assert alerting.evaluate() == []  # still open: nothing new
    assert [i.rule for i in alerting.firing] == ["pending_too_long", "stuck_task"]
    app.execute(tid)  # a live worker takes it over and finishes it
    resolved = alerting.evaluate()
    assert sorted((c.state, c.incident.rule) for c in resolved) == [
        ("resolved", "pending_too_long"),
        ("resolved", "stuck_task"),
    ]
    assert alerting.evaluate() == []
    assert alerting.firing == []
    assert app.notifications.flush(10)
    notes = sorted(seen.received, key=lambda n: (n.details["state"], n.details["rule"]))
    assert [n.kind for n in notes] == ["alert"] * 4
    assert [(n.details["state"], n.details["rule"]) for n in notes] == [
        ("firing", "pending_too_long"),
        ("firing", "stuck_task"),
        ("resolved", "pending_too_long"),
        ("resolved", "stuck_task"),
    ]
    assert notes[1].title.startswith(f"ALERT [stuck_task] Task {tid} (quick) is stuck")
    assert notes[3].title.startswith("RESOLVED [stuck_task]")
    assert notes[3].details["resolved_at"] == T0 + 110
    assert notes[1].details["started_at"] == T0 + 100
    app.close()


def test_the_worker_runs_the_alert_loop(make_app: MakeApp, clock: ManualClock) -> None:
    seen = RecordingNotifier()
    app = queue_app(make_app, notifiers=[seen], alert_rules=[StuckTasks()], alert_interval=0.01)
    tid = app.start("slow").task_id
    assert app.store.claim_task("dead", now=T0, lease_seconds=30, task_id=tid)
    clock.advance(60)
    with app.worker(queues=["default"], poll_interval=0.05):  # not the stuck task's queue
        assert app.alerting.running
        for _ in range(1000):
            if app.alerting.firing:
                break
            app.wait_finished(0.01)
    assert not app.alerting.running
    assert [i.key for i in app.alerting.firing] == [tid]
    assert app.notifications.flush(10)
    assert [n.details["state"] for n in seen.received] == ["firing"]
    app.close()
