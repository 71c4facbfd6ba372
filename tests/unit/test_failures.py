"""Failure classification and retry decisions as data."""

from __future__ import annotations

import errno
from email.utils import formatdate
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handrail import FailureClass, RetryPolicy, classify
from handrail.errors import ConfigurationError
from handrail.failures import Classifier, decide, retry_after

T, S, P, D, F = (
    FailureClass.TRANSIENT,
    FailureClass.STALE_DATA,
    FailureClass.PERMISSION,
    FailureClass.DATA_ERROR,
    FailureClass.FATAL,
)


class HTTPError(Exception):
    def __init__(self, status: int, headers: dict[str, str] | None = None):
        super().__init__(f"HTTP {status}")
        self.response = type("R", (), {"status_code": status, "headers": headers or {}})()


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (408, T),
        (425, T),
        (429, T),
        (500, T),
        (503, T),
        (409, S),
        (412, S),
        (401, P),
        (403, P),
        (400, D),
        (422, D),
        (418, F),
    ],
)
def test_http_status_decides(status: int, expected: FailureClass) -> None:
    assert classify(HTTPError(status)) is expected


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError("read"), T),
        (ConnectionResetError(), T),
        (OSError(errno.ECONNREFUSED, "refused"), T),
        (OSError(errno.EACCES, "denied"), P),
        (PermissionError("nope"), P),
        (KeyError("x"), F),
        (RuntimeError("optimistic lock failed for row 7"), S),
        (RuntimeError("user is unauthorized"), P),
        (RuntimeError("validation failed: amount"), D),
        (RuntimeError("service temporarily unavailable"), T),
    ],
)
def test_types_and_attributes_first_messages_last(exc: BaseException, expected: Any) -> None:
    assert classify(exc) is expected


def test_type_beats_message() -> None:
    # a 403 whose message mentions a timeout is a permission failure
    exc = HTTPError(403)
    exc.args = ("timeout while checking permissions",)
    assert classify(exc) is P


def test_rules_are_asked_first() -> None:
    classifier = Classifier()

    @classifier.register
    def vendor_codes(exc: BaseException) -> FailureClass | None:
        return S if "E-LOCKED" in str(exc) else None

    assert classifier.classify(RuntimeError("E-LOCKED by bob")) is S
    assert classifier.classify(HTTPError(500), [lambda e: "data_error"]) is D
    assert classifier.classify(HTTPError(500)) is T


def test_declared_failure_class_attribute() -> None:
    class Conflict(Exception):
        failure_class = "stale_data"

    assert classify(Conflict("x")) is S


def test_retry_after_seconds_and_http_date() -> None:
    assert retry_after(HTTPError(429, {"Retry-After": "7"}), now=0) == 7
    now = 1_800_000_000.0
    date = formatdate(now + 30, usegmt=True)
    assert retry_after(HTTPError(503, {"Retry-After": date}), now=now) == pytest.approx(30)
    assert retry_after(HTTPError(503), now=now) is None
    assert retry_after(HTTPError(503, {"Retry-After": "soon"}), now=now) is None


def test_policy_backoff_exponential_capped() -> None:
    policy = RetryPolicy(max_attempts=6, initial_delay=1, multiplier=2, max_delay=5, jitter=False)
    assert [policy.backoff(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    with pytest.raises(ConfigurationError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ConfigurationError):
        RetryPolicy(multiplier=0.5)


@given(st.integers(1, 20), st.floats(0, 1, exclude_max=True))
def test_full_jitter_stays_within_the_ceiling(attempt: int, draw: float) -> None:
    policy = RetryPolicy(initial_delay=0.5, multiplier=3, max_delay=40)
    ceiling = min(40, 0.5 * 3 ** (attempt - 1))
    assert 0 <= policy.backoff(attempt, lambda: draw) <= ceiling


def test_decisions_by_class() -> None:
    policy = RetryPolicy(max_attempts=3, initial_delay=1, jitter=False, deadline=10)
    assert decide(T, attempt=1, policy=policy, elapsed=0).action == "retry"
    assert decide(T, attempt=1, policy=policy, elapsed=0, server_delay=4).delay == 4
    assert decide(T, attempt=3, policy=policy, elapsed=0).action == "fail"
    assert decide(T, attempt=2, policy=policy, elapsed=9.5).action == "fail"  # past deadline
    assert decide(S, attempt=1, policy=policy, elapsed=0, can_refresh=True).action == "refresh"
    assert decide(S, attempt=1, policy=policy, elapsed=0).action == "intervene"
    assert decide(S, attempt=3, policy=policy, elapsed=0, can_refresh=True).action == "intervene"
    assert decide(P, attempt=1, policy=policy, elapsed=0).action == "intervene"
    assert decide(D, attempt=1, policy=policy, elapsed=0).action == "intervene"
    assert decide(F, attempt=1, policy=policy, elapsed=0).action == "fail"
