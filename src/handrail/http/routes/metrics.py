"""``/metrics``: the Prometheus text exposition of :mod:`handrail.monitoring`.

Any authenticated principal may scrape it (Prometheus sends the token with
``authorization: {credentials: TOKEN}`` in its scrape config). One
:class:`~handrail.monitoring.Monitor` per app: it caches snapshots for a few seconds and
reads the audit log incrementally for the counters.
"""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter, Request
from fastapi.responses import Response

from handrail.http.access import Anyone
from handrail.monitoring import CONTENT_TYPE, Monitor, render_metrics

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (any principal)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {}}, "description": "Metrics."}},
)
def metrics(request: Request, who: Anyone) -> Response:
    monitor = cast(Monitor, request.app.state.monitor)
    return Response(render_metrics(monitor), media_type=CONTENT_TYPE)
