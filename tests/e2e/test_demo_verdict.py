"""The demo's verdict is read from the journal and the systems' files, not assumed: when
the scripted failures do not happen, the stories say so and the verdict is FAIL."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from handrail.demo import systems
from handrail.demo.runner import run_demo


def _run(tmp_path: Path) -> tuple[bool, str]:
    buffer = io.StringIO()
    out = Console(file=buffer, width=250, highlight=False)
    passed = run_demo(out, db=tmp_path / "demo.db", keep=True, initiator="test")
    return passed, buffer.getvalue()


def test_the_demo_passes(tmp_path: Path) -> None:
    passed, out = _run(tmp_path)
    assert passed, out
    assert "verdict: PASS - all" in out


def test_without_the_scripted_faults_the_verdict_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(systems, "SEED_FAULTS", {})
    passed, out = _run(tmp_path)
    assert not passed
    assert "verdict: FAIL" in out
    assert "check_vendor_status never failed" in out
    assert "update_renewal_date never failed" in out


def test_with_the_permission_granted_up_front_the_verdict_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(systems, "AGENT_GRANTS", (*systems.AGENT_GRANTS, "activities:write"))
    passed, out = _run(tmp_path)
    assert not passed
    assert "no open intervention: the task did not wait for a human" in out
    assert "log_crm_activity never failed" in out
    assert "verdict: FAIL" in out
