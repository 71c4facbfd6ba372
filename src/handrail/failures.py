"""Failure handling as data: what class a failure is, and what to do about it.

``classify(exc)`` looks at the exception's type and attributes first (an explicit
``failure_class``, an HTTP status from httpx or requests, ``TimeoutError``,
``ConnectionError``, ``OSError`` errnos, ``PermissionError``, validation errors) and at its
message last. Tools and the app register their own rules, which are asked first.

- transient (timeout, connection reset, 408/425/429/5xx): retry with back-off and jitter,
  honouring Retry-After;
- stale_data (optimistic-lock or version conflict, 409/412): refresh the inputs with the
  tool's hook and retry;
- permission (401/403, authorization errors): raise an intervention for a human;
- data_error (validation, invalid data, 400/422): raise an intervention to investigate;
- fatal (anything else): fail the task with a clear reason.
"""

from __future__ import annotations

import datetime as _dt
import errno
import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, Literal

from handrail.errors import ConfigurationError


class FailureClass(StrEnum):
    """How a failed tool call can be recovered."""

    TRANSIENT = "transient"
    STALE_DATA = "stale_data"
    PERMISSION = "permission"
    DATA_ERROR = "data_error"
    FATAL = "fatal"


Rule = Callable[[BaseException], "FailureClass | str | None"]
"""A classification rule: a class for exceptions it recognises, ``None`` to pass."""

_TRANSIENT_ERRNOS = frozenset(
    {
        errno.ECONNRESET,
        errno.ECONNREFUSED,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EPIPE,
        errno.EAGAIN,
        errno.EBUSY,
    }
)
_PERMISSION_ERRNOS = frozenset({errno.EACCES, errno.EPERM})

# Exception classes of HTTP clients, by name, so no client has to be imported to classify.
_TRANSIENT_CLASS_NAMES = frozenset(
    {
        "TimeoutException",  # httpx
        "TransportError",  # httpx
        "NetworkError",  # httpx
        "RemoteProtocolError",  # httpx
        "Timeout",  # requests
        "ConnectTimeout",
        "ReadTimeout",
        "ChunkedEncodingError",  # requests
    }
)
_DATA_CLASS_NAMES = frozenset({"ValidationError", "JSONDecodeError", "UnicodeDecodeError"})

_MESSAGE_PATTERNS: tuple[tuple[re.Pattern[str], FailureClass], ...] = (
    (
        re.compile(r"optimistic.?lock|version.?conflict|stale|precondition failed|etag", re.I),
        FailureClass.STALE_DATA,
    ),
    (
        re.compile(r"permission|unauthori[sz]ed|forbidden|access denied|not allowed", re.I),
        FailureClass.PERMISSION,
    ),
    (
        re.compile(
            r"timed? ?out|timeout|connection (reset|refused|aborted)|temporar|"
            r"unavailable|rate.?limit|too many requests|try again",
            re.I,
        ),
        FailureClass.TRANSIENT,
    ),
    (re.compile(r"invalid|validation|malformed|unprocessable", re.I), FailureClass.DATA_ERROR),
)


def http_status(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (httpx, requests, or a ``status_code``/``status``
    attribute on it or on its ``response``)."""
    for holder in (exc, getattr(exc, "response", None)):
        if holder is None:
            continue
        for attr in ("status_code", "status"):
            value = getattr(holder, attr, None)
            if isinstance(value, int) and 100 <= value <= 599:
                return value
    return None


_NOT_PROCESSED_STATUSES = frozenset({408, 425, 429, 503})
_NEVER_CONNECTED_NAMES = frozenset({"ConnectTimeout", "ConnectError", "PoolTimeout", "ProxyError"})
_AMBIGUOUS_NAMES = frozenset(
    {
        "ReadTimeout",
        "WriteTimeout",
        "ReadError",
        "WriteError",
        "RemoteProtocolError",
        "ChunkedEncodingError",
        "IncompleteRead",
        "ProtocolError",
    }
)


def may_have_taken_effect(exc: BaseException) -> bool:
    """Whether a failed call may still have done its work: the request may have reached the
    service (a read timeout, a dropped or reset connection, a gateway error) rather than
    having been refused before anything happened (a connection never made, 429, 503). An
    exception can say so itself with a ``may_have_taken_effect`` attribute."""
    declared = getattr(exc, "may_have_taken_effect", None)
    if isinstance(declared, bool):
        return declared
    status = http_status(exc)
    if status is not None:
        return status not in _NOT_PROCESSED_STATUSES and status >= 500
    names = _mro_names(exc)
    if names & _NEVER_CONNECTED_NAMES or isinstance(exc, ConnectionRefusedError):
        return False
    if names & _AMBIGUOUS_NAMES:
        return True
    return isinstance(
        exc, TimeoutError | ConnectionResetError | ConnectionAbortedError | BrokenPipeError
    )


def _class_of_status(status: int) -> FailureClass:
    if status in (408, 425, 429) or status >= 500:
        return FailureClass.TRANSIENT
    if status in (409, 412):
        return FailureClass.STALE_DATA
    if status in (401, 403, 407):
        return FailureClass.PERMISSION
    if status in (400, 404, 410, 413, 415, 422):
        return FailureClass.DATA_ERROR
    return FailureClass.FATAL


def _mro_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _by_type(exc: BaseException) -> FailureClass | None:
    declared = getattr(exc, "failure_class", None)
    if declared is not None:
        return FailureClass(declared)
    status = http_status(exc)
    if status is not None:
        return _class_of_status(status)
    if isinstance(exc, PermissionError):
        return FailureClass.PERMISSION
    if isinstance(exc, TimeoutError | ConnectionError):
        return FailureClass.TRANSIENT
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno in _TRANSIENT_ERRNOS:
            return FailureClass.TRANSIENT
        if exc.errno in _PERMISSION_ERRNOS:
            return FailureClass.PERMISSION
    names = _mro_names(exc)
    if names & _TRANSIENT_CLASS_NAMES:
        return FailureClass.TRANSIENT
    if "ConnectionError" in names:  # requests.ConnectionError is not the builtin
        return FailureClass.TRANSIENT
    if names & _DATA_CLASS_NAMES:
        return FailureClass.DATA_ERROR
    return None


def _by_message(exc: BaseException) -> FailureClass | None:
    text = f"{type(exc).__name__}: {exc}"
    for pattern, failure_class in _MESSAGE_PATTERNS:
        if pattern.search(text):
            return failure_class
    return None


class Classifier:
    """Rules first (most recently registered first), then types and attributes, then
    message patterns; ``fatal`` when nothing matches."""

    def __init__(self, rules: Iterable[Rule] = ()):
        self._rules: list[Rule] = list(rules)

    def register(self, rule: Rule) -> Rule:
        """Add a rule (usable as a decorator); it is asked before the built-in ones."""
        self._rules.insert(0, rule)
        return rule

    def classify(self, exc: BaseException, extra: Iterable[Rule] = ()) -> FailureClass:
        for rule in (*extra, *self._rules):
            verdict = rule(exc)
            if verdict is not None:
                return FailureClass(verdict)
        return _by_type(exc) or _by_message(exc) or FailureClass.FATAL


_DEFAULT = Classifier()


def classify(exc: BaseException, rules: Iterable[Rule] = ()) -> FailureClass:
    """The failure class of ``exc``, asking ``rules`` first."""
    return _DEFAULT.classify(exc, rules)


def retry_after(exc: BaseException, now: float) -> float | None:
    """Seconds the failing service asked to wait (``Retry-After``: seconds or an HTTP-date,
    or a ``retry_after`` attribute), or ``None``."""
    value: Any = getattr(exc, "retry_after", None)
    if value is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        if isinstance(headers, Mapping) or hasattr(headers, "get"):
            value = headers.get("Retry-After") or headers.get("retry-after")  # type: ignore[union-attr]
    if value is None:
        return None
    if isinstance(value, int | float):
        return max(0.0, float(value))
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a tool's transient and stale-data failures are retried.

    ``max_attempts`` counts every attempt, the first included. The wait before attempt
    *n + 1* is ``min(max_delay, initial_delay * multiplier ** (n - 1))``, drawn uniformly
    from zero up to that with ``jitter`` (full jitter), and never shorter than a
    ``Retry-After`` the service sent. ``deadline``: no retry starts later than this many
    seconds after the first attempt.
    """

    max_attempts: int = 3
    initial_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 60.0
    jitter: bool = True
    deadline: float | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError("RetryPolicy.max_attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ConfigurationError("RetryPolicy delays must be >= 0")
        if self.multiplier < 1:
            raise ConfigurationError("RetryPolicy.multiplier must be >= 1")
        if self.deadline is not None and self.deadline <= 0:
            raise ConfigurationError("RetryPolicy.deadline must be > 0")

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        return ceiling * rng() if self.jitter else ceiling


NO_RETRY = RetryPolicy(max_attempts=1)

Action = Literal["retry", "refresh", "intervene", "fail"]


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What to do after one failed attempt."""

    action: Action
    failure_class: FailureClass
    delay: float = 0.0
    reason: str = ""


def decide(
    failure_class: FailureClass,
    *,
    attempt: int,
    policy: RetryPolicy,
    elapsed: float,
    server_delay: float | None = None,
    can_refresh: bool = False,
    rng: Callable[[], float] = random.random,
) -> RetryDecision:
    """The decision after failed attempt ``attempt`` (1-based) of a call, ``elapsed``
    seconds after its first attempt."""
    fc = failure_class
    if fc is FailureClass.PERMISSION:
        return RetryDecision("intervene", fc, reason="a human must grant access or fix it")
    if fc is FailureClass.DATA_ERROR:
        return RetryDecision("intervene", fc, reason="the data must be investigated")
    if fc is FailureClass.FATAL:
        return RetryDecision("fail", fc, reason="the failure cannot be recovered")
    if fc is FailureClass.STALE_DATA and not can_refresh:
        return RetryDecision(
            "intervene", fc, reason="the inputs are stale and the tool has no refresh hook"
        )
    if attempt >= policy.max_attempts:
        exhausted = f"gave up after {attempt} attempt{'s' if attempt > 1 else ''}"
        if fc is FailureClass.STALE_DATA:
            return RetryDecision("intervene", fc, reason=exhausted)
        return RetryDecision("fail", fc, reason=exhausted)
    delay = 0.0 if fc is FailureClass.STALE_DATA else policy.backoff(attempt, rng)
    if server_delay is not None:
        delay = max(delay, server_delay)
    if policy.deadline is not None and elapsed + delay > policy.deadline:
        return RetryDecision(
            "fail", fc, reason=f"the next attempt would start past the {policy.deadline}s deadline"
        )
    if fc is FailureClass.STALE_DATA:
        return RetryDecision("refresh", fc, delay=delay, reason="refresh the inputs and retry")
    return RetryDecision("retry", fc, delay=delay, reason=f"retry in {delay:.3f}s")
