"""The sequencer signs every N records or T seconds, whichever comes first, and its
background thread signs what is left when stopped."""

from __future__ import annotations

import logging
import time

import pytest

from handrail.audit.checkpoint import generate_signing_key
from handrail.audit.memory import MemoryAuditLog
from handrail.audit.record import AuditRow, build_audit_record
from handrail.audit.sequencer import Sequencer
from handrail.errors import ConfigurationError
from handrail.testing import ManualClock

ORIGIN = "handrail.test/audit"
KEY = generate_signing_key(ORIGIN)


def halt(n: int) -> AuditRow:
    return build_audit_record(
        "halt", call_id=f"h{n}", task_id=None, actor="op", timestamp=0.0, logged_at=0.0
    )


def test_it_signs_every_n_records_or_every_t_seconds() -> None:
    clock = ManualClock(start=100.0)
    log = MemoryAuditLog(clock=clock)
    sequencer = Sequencer(log, KEY, ORIGIN, every_records=3, every_seconds=5.0, clock=clock)
    assert sequencer.run_once() == []  # nothing waits

    log.append([halt(n) for n in range(2)])
    assert sequencer.due()  # no checkpoint yet: the first records need not wait
    assert [c.size for c in sequencer.run_once()] == [2]

    log.append([halt(n) for n in range(2, 4)])
    assert not sequencer.due()
    assert sequencer.run_once() == []
    clock.advance(5.0)
    assert [c.size for c in sequencer.run_once()] == [4]

    log.append([halt(n) for n in range(4, 11)])  # 7 waiting: two full batches now
    assert [c.size for c in sequencer.run_once()] == [7, 10]
    assert log.pending() == 1
    assert [c.size for c in sequencer.flush()] == [11]
    assert log.latest_checkpoint() is not None


def test_the_thread_runs_rounds_and_flushes_on_stop(caplog: pytest.LogCaptureFixture) -> None:
    log = MemoryAuditLog()
    sequencer = Sequencer(log, KEY, ORIGIN, every_records=100, every_seconds=60, poll_seconds=0.01)
    sequencer.start()
    with pytest.raises(RuntimeError, match="already"):
        sequencer.start()
    log.append([halt(n) for n in range(5)])
    sequencer.stop()
    assert log.size() == 5
    assert log.pending() == 0

    broken = Sequencer(log, KEY, "another/origin", every_records=1, poll_seconds=0.01)
    log.append([halt(99)])
    with caplog.at_level(logging.ERROR, logger="handrail.audit"):
        broken.start()
        deadline = time.monotonic() + 5
        while "sequencer round failed" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)
        broken.stop(flush=False)
    assert "sequencer round failed" in caplog.text
    assert log.pending() == 1  # the record waits, nothing is lost


def test_bad_settings_are_refused() -> None:
    log = MemoryAuditLog()
    with pytest.raises(ConfigurationError):
        Sequencer(log, KEY, ORIGIN, every_records=0)
    with pytest.raises(ConfigurationError):
        Sequencer(log, KEY, ORIGIN, every_seconds=0)
