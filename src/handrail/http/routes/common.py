"""What the API's routes share: the documented error responses and the id parameters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path

from handrail.http.models import Problem

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No token, or an unknown one."},
    403: {"model": Problem, "description": "The principal lacks the role this route needs."},
    404: {"model": Problem, "description": "No such task, request, intervention or halt."},
    409: {"model": Problem, "description": "The current state does not allow it."},
    422: {"model": Problem, "description": "The request is malformed; detail says how."},
}

TaskId = Annotated[str, Path(min_length=1, max_length=500, description="A task id.")]
