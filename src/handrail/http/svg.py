"""Line charts as inline SVG, drawn on the server: no script, no library, nothing fetched.

Every point carries a ``<title>`` (its value and the counts behind it), so hovering shows
the numbers, and the page gives the same numbers as a table for screen readers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from handrail.http.history import Series

PALETTE = ("#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2")
WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 28


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000, 2000, 5000, 10_000):
        if value <= step:
            return float(step)
    return float(value)


def line_chart(
    series: Sequence[Series],
    edges: Sequence[float],
    *,
    start: float,
    title: str,
    y_max: float | None = None,
    unit: str = "",
    label: Callable[[float], str] = str,
) -> str:
    """An SVG document fragment: one polyline per series over ``edges``; gaps where a
    series has no value."""
    top = (
        y_max
        if y_max is not None
        else _nice_max(max((v for s in series for v in s.values if v is not None), default=0.0))
    )
    end = edges[-1] if edges else start + 1
    span = max(end - start, 1e-9)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(ts: float) -> float:
        return LEFT + plot_w * (ts - start) / span

    def y(value: float) -> float:
        return TOP + plot_h * (1 - min(value, top) / top)

    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for frac in (0.0, 0.5, 1.0):
        gy = TOP + plot_h * (1 - frac)
        out.append(
            f'<line x1="{LEFT}" y1="{gy:.1f}" x2="{WIDTH - RIGHT}" y2="{gy:.1f}" '
            'stroke="#d1d5db" stroke-width="1"/>'
        )
        text = f"{top * frac:g}{unit}"
        out.append(
            f'<text x="{LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#4b5563">{escape(text)}</text>'
        )
    for ts, anchor in ((start, "start"), (end, "end")):
        out.append(
            f'<text x="{x(ts):.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}" font-size="11" '
            f'fill="#4b5563">{escape(label(ts))}</text>'
        )
    for n, s in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        segment: list[str] = []
        segments: list[list[str]] = []
        for value, edge in zip(s.values, edges, strict=False):
            if value is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            segment.append(f"{x(edge):.1f},{y(value):.1f}")
        if segment:
            segments.append(segment)
        for points in segments:
            out.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                f'points="{" ".join(points)}"/>'
            )
        for i, (value, edge) in enumerate(zip(s.values, edges, strict=False)):
            if value is None:
                continue
            note = f"; {s.notes[i]}" if i < len(s.notes) and s.notes[i] else ""
            tip = f"{s.name} at {label(edge)}: {value:.4g}{unit}{note}"
            out.append(
                f'<circle cx="{x(edge):.1f}" cy="{y(value):.1f}" r="3" fill="{color}">'
                f"<title>{escape(tip)}</title></circle>"
            )
    out.append("</svg>")
    return "".join(out)


def legend_color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]
