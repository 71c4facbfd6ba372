"""Sinks and delivery details: JSONL rotation keeps N files, webhooks are HMAC-signed and
fail on non-2xx, stdout prints lines, back-off grows and caps, technical sinks get sealed
or opened payloads."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from pathlib import Path

import httpx
import pytest

from handrail.audit.checkpoint import generate_signing_key
from handrail.audit.delivery import Backoff, Delivery, render
from handrail.audit.memory import MemoryAuditLog
from handrail.audit.record import build_tool_call_record
from handrail.audit.sinks import JsonlSink, SinkError, StdoutSink, WebhookSink
from handrail.errors import ConfigurationError
from handrail.testing import ManualClock


def test_jsonl_rotation_keeps_the_newest_files(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "compliance.jsonl"
    sink = JsonlSink(path, max_bytes=100, backups=2)
    try:
        for n in range(12):
            sink.send({"n": n, "pad": "x" * 30})  # 41 bytes a line: two lines a file
    finally:
        sink.close()
    files = sink.files()
    assert [f.name for f in files] == [
        "compliance.jsonl",
        "compliance.jsonl.1",
        "compliance.jsonl.2",
    ]
    assert not (tmp_path / "audit" / "compliance.jsonl.3").exists()
    lines = [json.loads(line) for f in reversed(files) for line in f.read_text().splitlines()]
    assert [d["n"] for d in lines] == list(range(6, 12))  # the oldest rotated away
    assert all(f.stat().st_size <= 100 for f in files)


def test_jsonl_without_backups_starts_over(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "a.jsonl", max_bytes=50, backups=0, fsync=True)
    for n in range(3):
        sink.send({"n": n, "pad": "y" * 20})
    sink.close()
    assert [f.name for f in sink.files()] == ["a.jsonl"]
    assert json.loads((tmp_path / "a.jsonl").read_text())["n"] == 2
    with pytest.raises(ConfigurationError):
        JsonlSink(tmp_path / "b.jsonl", view="raw")  # type: ignore[arg-type]


def test_jsonl_write_errors_are_sink_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    sink = JsonlSink(blocker / "under-a-file.jsonl")
    with pytest.raises(SinkError, match="cannot write"):
        sink.send({"n": 1})
    sink.close()


def test_webhooks_are_signed_and_non_2xx_fails() -> None:
    seen: list[httpx.Request] = []
    status = {"code": 204}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status["code"])

    sink = WebhookSink(
        "https://siem.example/in",
        "s3cret",
        view="technical",
        transport=httpx.MockTransport(handler),
    )
    try:
        sink.send({"call_id": "c1", "leaf_index": 0})
        request = seen[0]
        timestamp = request.headers["X-Handrail-Timestamp"]
        body = request.content
        expected = hmac.new(b"s3cret", timestamp.encode() + b"." + body, hashlib.sha256)
        assert request.headers["X-Handrail-Signature"] == "sha256=" + expected.hexdigest()
        assert json.loads(body) == {"call_id": "c1", "leaf_index": 0}
        assert sink.view == "technical"
        assert sink.name == "webhook:https://siem.example/in"
        status["code"] = 503
        with pytest.raises(SinkError, match="503"):
            sink.send({"call_id": "c2"})
    finally:
        sink.close()
    with pytest.raises(ConfigurationError, match="secret"):
        WebhookSink("https://x.example", "")


def test_stdout_sink_prints_json_lines() -> None:
    out = io.StringIO()
    sink = StdoutSink(stream=out)
    sink.send({"b": 1, "a": "é"})
    sink.close()
    assert out.getvalue() == '{"a":"é","b":1}\n'


def test_backoff_grows_and_caps() -> None:
    backoff = Backoff(initial=1.0, factor=3.0, maximum=20.0, jitter=0.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 4)] == [1.0, 3.0, 9.0, 20.0]
    jittered = Backoff(initial=10.0, jitter=0.5)
    assert all(5.0 <= jittered.delay(1) <= 10.0 for _ in range(50))


def test_technical_sinks_get_sealed_or_opened_payloads() -> None:
    clock = ManualClock(start=1_000.0)
    log = MemoryAuditLog(clock=clock)
    log.append(
        [
            build_tool_call_record(
                call_id="c1",
                task_id="t",
                tool_name="lookup",
                params={"email": "a@b.example"},
                started_at=1_000.0,
                duration_ms=1.0,
                logged_at=1_000.0,
                vault=log.vault,
                output={"found": True},
            )
        ]
    )
    key = generate_signing_key("o")
    log.sequence(key, "o", sinks=["tech"])
    record = log.records()[0]
    sealed = render(record, "technical", None)
    assert "a@b.example" not in json.dumps(sealed)
    opened = render(record, "technical", log.vault)
    assert opened["raw_input"] == {"email": "a@b.example"}
    assert render(record, "compliance", None)["leaf_index"] == 0

    received: list[dict[str, object]] = []

    class Tech:
        name, view = "tech", "technical"

        def send(self, document: dict[str, object]) -> None:
            received.append(document)

        def close(self) -> None:
            pass

    delivery = Delivery(log, [Tech()], vault=log.vault, clock=clock)
    assert delivery.run_once().delivered == {"tech": 1}
    assert received[0]["raw_output"] == {"found": True}
    with pytest.raises(ConfigurationError, match="unique"):
        Delivery(log, [Tech(), Tech()])
