"""`handrail status` (a one-screen summary) and `handrail metrics` (Prometheus text)."""

from __future__ import annotations

import dataclasses

import click

from handrail.cli import json_output, status_render
from handrail.cli.render import console
from handrail.cli.runtime import runtime
from handrail.monitoring import AlertRule, Finding, Monitor, default_alert_rules

_WINDOW = click.option(
    "--window",
    type=click.FloatRange(min=1.0),
    default=3600.0,
    show_default=True,
    metavar="SECONDS",
    help="The window of the windowed figures: tool calls, decided approvals, the "
    "human-intervention rate.",
)
_EXPECTED = click.option(
    "--expected-decision",
    "expected_decision",
    type=click.FloatRange(min=0.0, min_open=True),
    metavar="SECONDS",
    help="Count a pending approval as missed once it waits longer than this, even before "
    "its deadline (default: only past its deadline).",
)


def _rules() -> list[AlertRule]:
    """The app's alert rules with --app (when it has any), else the built-in ones."""
    rt = runtime()
    if rt.has_app:
        rules = rt.app("status").alert_rules
        if rules:
            return list(rules)
    return default_alert_rules()


def _monitor(window: float, expected: float | None, *, totals: bool) -> Monitor:
    rt = runtime()
    return Monitor(
        rt.store(),
        clock=rt.clock(),
        window=window,
        expected_decision_seconds=expected,
        totals=totals,
    )


@click.command()
@_WINDOW
@_EXPECTED
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def status(window: float, expected_decision: float | None, as_json: bool) -> None:
    """One screen of what an operator watches: queue depth, the oldest due task, stuck
    tasks, missed approvals, tool success and latency, the human-intervention rate and the
    alerts that fire now (the app's rules with --app, else the built-in ones).

    Computed from the store, so it covers every worker.
    """
    snapshot = _monitor(window, expected_decision, totals=False).snapshot()
    firing: list[tuple[str, Finding]] = []
    for rule in _rules():
        firing.extend((rule.name, finding) for finding in rule.check(snapshot))
    if as_json:
        alerts = [
            {"rule": name, **dataclasses.asdict(finding), "details": dict(finding.details)}
            for name, finding in firing
        ]
        json_output.emit({**snapshot.to_dict(), "alerts": alerts})
        return
    console().print(status_render.status_view(snapshot, firing))


@click.command()
@_WINDOW
@_EXPECTED
def metrics(window: float, expected_decision: float | None) -> None:
    """Print the Prometheus text exposition of the store's metrics (what /metrics serves).

    Reads the whole audit log for the counters; a long-running exporter should keep one
    handrail.monitoring.Monitor instead (see docs/monitoring.md).
    """
    from handrail.monitoring.prometheus import render_metrics

    text = render_metrics(_monitor(window, expected_decision, totals=True))
    click.echo(text.decode("utf-8"), nl=False)
