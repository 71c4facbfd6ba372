"""The dashboard's signed session cookie, its redirects, and where a journal says a task
went off course."""

from __future__ import annotations

import time

import pytest

from handrail.http.dashboard.views import local_path
from handrail.http.sessions import Session, SessionCodec
from handrail.http.timeline import off_course
from handrail.journal import Event, EventKind


def test_a_session_round_trips() -> None:
    codec = SessionCodec("secret", max_age=60)
    session = Session()
    session.sign_in("alice")
    session.say("hello")
    back = codec.loads(codec.dumps(session))
    assert back is not None
    assert (back.principal, back.csrf, back.flash) == ("alice", session.csrf, session.flash)
    assert back.changed is False


def test_signing_in_replaces_the_csrf_token() -> None:
    session = Session()
    before = session.csrf
    session.sign_in("alice")
    assert session.csrf != before


@pytest.mark.parametrize(
    "tamper",
    [
        lambda v: v.replace(v[3], "A" if v[3] != "A" else "B", 1),  # the payload
        lambda v: v[:-2] + ("xx" if not v.endswith("xx") else "yy"),  # the signature
        lambda v: v.split(".")[0],  # no signature
        lambda v: v + ".extra",
        lambda v: "",
        lambda v: "é.é",
    ],
)
def test_a_forged_or_damaged_cookie_is_no_session(tamper: object) -> None:
    codec = SessionCodec("secret", max_age=60)
    session = Session()
    session.sign_in("alice")
    assert codec.loads(tamper(codec.dumps(session))) is None  # type: ignore[operator]


def test_another_secret_or_an_old_cookie_is_no_session() -> None:
    session = Session()
    session.sign_in("alice")
    value = SessionCodec("secret", max_age=60).dumps(session)
    assert SessionCodec("other", max_age=60).loads(value) is None
    session.issued_at = time.time() - 61
    assert (
        SessionCodec("secret", max_age=60).loads(SessionCodec("secret", max_age=60).dumps(session))
        is None
    )


def _event(seq: int, kind: EventKind, **fields: object) -> Event:
    return Event(task_id="t", seq=seq, kind=kind, timestamp=float(seq), **fields)  # type: ignore[arg-type]


def test_off_course_is_the_first_failure_intervention_or_denial() -> None:
    events = [
        _event(0, EventKind.TASK_CREATED),
        _event(1, EventKind.STEP_STARTED, step_index=0, step_name="pay"),
        _event(2, EventKind.STEP_COMPLETED, step_index=0, step_name="pay"),
    ]
    assert off_course(events) is None
    denied = _event(
        3,
        EventKind.APPROVAL_DECIDED,
        actor="alice",
        data={"request_id": "t/1", "decision": "denied", "comment": "too much"},
    )
    failed = _event(
        4,
        EventKind.STEP_FAILED,
        step_index=1,
        step_name="mail",
        error={"type": "OSError", "message": "down"},
    )
    found = off_course([*events, denied, failed])
    assert found is not None
    assert found[0].seq == 3
    assert found[1] == "approval t/1 denied by alice: too much"
    found = off_course([*events, failed, denied])
    assert found is not None
    assert found[1] == "step 1 (mail) failed: OSError: down"
    approved = denied._replace(data={"request_id": "t/1", "decision": "approved"})
    assert off_course([*events, approved]) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/approvals", "/approvals"),
        ("/tasks?status=failed", "/tasks?status=failed"),
        ("//evil.example", "/tasks"),
        ("/\t/evil.example", "/tasks"),
        ("/\\evil.example", "/tasks"),
        ("https://evil.example", "/tasks"),
        (None, "/tasks"),
    ],
)
def test_sign_in_only_redirects_within_the_site(value: str | None, expected: str) -> None:
    assert local_path(value) == expected
