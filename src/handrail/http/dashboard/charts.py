"""Charts of queue depth, intervention rate and per-tool success, from the journals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from markupsafe import Markup

from handrail.http.access import services
from handrail.http.dashboard import views
from handrail.http.dashboard.views import Viewer
from handrail.http.history import WINDOWS, history, peak
from handrail.http.svg import legend_color, line_chart

router = APIRouter()


def _label(span: float) -> Callable[[float], str]:
    def label(ts: float) -> str:
        moment = datetime.fromtimestamp(ts, UTC)
        return moment.strftime("%H:%M:%S" if span <= 86_400 else "%m-%d %H:%M")

    return label


@router.get("/charts")
def charts(
    request: Request,
    who: Viewer,
    window: Annotated[str, Query(max_length=10)] = "auto",
    queue: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    svc = services(request)
    if window not in WINDOWS:
        window = "auto"
    h = history(svc.store, now=svc.clock.now(), window=WINDOWS[window], queue=queue or None)
    span = h.edges[-1] - h.start
    label = _label(span)
    charts = [
        {
            "title": "Queue depth (tasks)",
            "series": h.queue_depth,
            "svg": line_chart(
                h.queue_depth, h.edges, start=h.start, title="Queue depth", label=label
            ),
            "unit": "",
        },
        {
            "title": "Intervention rate (per 100 tool-call attempts)",
            "series": [h.intervention_rate],
            "svg": line_chart(
                [h.intervention_rate],
                h.edges,
                start=h.start,
                title="Intervention rate",
                y_max=max(peak([h.intervention_rate]), 1.0),
                label=label,
            ),
            "unit": "",
        },
        {
            "title": "Tool success (% of finished attempts)",
            "series": h.tool_success,
            "svg": line_chart(
                h.tool_success,
                h.edges,
                start=h.start,
                title="Tool success",
                y_max=100.0,
                unit="%",
                label=label,
            ),
            "unit": "%",
        },
    ]
    for chart in charts:
        chart["svg"] = Markup(chart["svg"])  # built by svg.line_chart, every text escaped
    return views.render(
        request,
        "charts.html",
        {
            "charts": charts,
            "history": h,
            "label": label,
            "color": legend_color,
            "windows": list(WINDOWS),
            "window": window,
            "queue": queue or "",
        },
        who=who,
    )
