"""A small line chart as inline SVG, for the admin's model comparison.

The web processes must not import matplotlib (a training-only dependency), and the CSP forbids
inline scripts and ``style`` attributes, so the chart is plain SVG markup whose colours come from
classes in ``curation/admin.css``. Every value is also in the table beside it (the chart is the
picture, the table the text alternative).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 14, 46


@dataclass(frozen=True)
class Series:
    label: str
    values: list[float | None]  # one per x position, on a 0..1 scale


def _x(index: int, count: int) -> float:
    if count == 1:
        return LEFT + (WIDTH - LEFT - RIGHT) / 2
    return LEFT + index * (WIDTH - LEFT - RIGHT) / (count - 1)


def _y(value: float) -> float:
    value = min(1.0, max(0.0, value))
    return TOP + (1 - value) * (HEIGHT - TOP - BOTTOM)


def line_chart_svg(*, title: str, x_labels: list[str], series: list[Series]) -> SafeString:
    """An accessible SVG: gridlines at 0, 0.25 … 1, one line and dots per series (gaps where a
    value is missing), each dot with a ``<title>`` tooltip, series coloured by ``curation-series-N``."""
    count = len(x_labels)
    parts = [
        format_html(
            '<svg class="curation-chart" viewBox="0 0 {} {}" role="img" aria-labelledby="chart-title" '
            'xmlns="http://www.w3.org/2000/svg"><title id="chart-title">{}</title>',
            WIDTH,
            HEIGHT,
            title,
        )
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1):
        y = _y(tick)
        parts.append(
            format_html(
                '<line class="curation-chart-grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                '<text class="curation-chart-axis" x="{}" y="{}" text-anchor="end">{}</text>',
                LEFT,
                WIDTH - RIGHT,
                f"{y:.1f}",
                f"{y:.1f}",
                LEFT - 6,
                f"{y + 4:.1f}",
                f"{tick:g}",
            )
        )
    for index, label in enumerate(x_labels):
        parts.append(
            format_html(
                '<text class="curation-chart-axis" x="{}" y="{}" text-anchor="middle">{}</text>',
                f"{_x(index, count):.1f}",
                HEIGHT - BOTTOM + 28,
                label,
            )
        )
    for number, line in enumerate(series, start=1):
        css = f"curation-series-{(number - 1) % 8 + 1}"
        segment: list[str] = []
        segments: list[list[str]] = [segment]
        for index, value in enumerate(line.values):
            if value is None:
                segment = []
                segments.append(segment)
                continue
            segment.append(f"{_x(index, count):.1f},{_y(value):.1f}")
        for points in segments:
            if len(points) > 1:
                parts.append(
                    format_html(
                        '<polyline class="curation-chart-line {}" points="{}"/>', css, " ".join(points)
                    )
                )
        for index, value in enumerate(line.values):
            if value is not None:
                parts.append(
                    format_html(
                        '<circle class="curation-chart-dot {}" cx="{}" cy="{}" r="4">'
                        "<title>{}, {}: {}</title></circle>",
                        css,
                        f"{_x(index, count):.1f}",
                        f"{_y(value):.1f}",
                        line.label,
                        x_labels[index],
                        f"{value:.3f}",
                    )
                )
    parts.append(mark_safe("</svg>"))  # noqa: S308 (a constant)
    legend = "".join(
        f'<li><span class="curation-swatch curation-series-{(number - 1) % 8 + 1}" aria-hidden="true"></span>'
        f"{escape(line.label)}</li>"
        for number, line in enumerate(series, start=1)
    )
    return mark_safe("".join(parts) + f'<ul class="curation-chart-legend">{legend}</ul>')  # noqa: S308 (escaped)
