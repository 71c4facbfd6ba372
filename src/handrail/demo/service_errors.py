"""How the demo's pretend services fail: as HTTP services do.

A :class:`ServiceError` carries a status code and a response with headers, as an HTTP
client's error would (httpx's ``HTTPStatusError``), so handrail classifies it by its status
and honours its ``Retry-After`` as it would a real client's.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Response:
    """The part of an HTTP response an error carries."""

    status_code: int
    headers: dict[str, str] = field(default_factory=dict)


class ServiceError(Exception):
    """An error answer from a pretend service, shaped like an HTTP client's."""

    status_code = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.response = Response(self.status_code, dict(headers or {}))


class ServiceUnavailable(ServiceError):
    status_code = 503


class VersionConflict(ServiceError):
    status_code = 409

    def __init__(self, message: str, *, current_version: int):
        super().__init__(message)
        self.current_version = current_version


class Forbidden(ServiceError):
    status_code = 403
