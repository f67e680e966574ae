"""Small charts as inline SVG: the model comparison's lines and the learning curve's dots.

The web processes must not import matplotlib (a training-only dependency), and the CSP forbids
inline scripts and ``style`` attributes, so the chart is plain SVG markup whose colours come from
classes in ``curation/admin.css``. Every value is also in the table beside it (the chart is the
picture, the table the text alternative).
"""

from __future__ import annotations

import math
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


@dataclass(frozen=True)
class Point:
    """One dot of :func:`scatter_chart_svg`: ``low``/``high`` draw an interval (may be None)."""

    x: float
    y: float
    label: str
    series: int = 1  # 1-based: the colour class ``curation-series-N``
    low: float | None = None
    high: float | None = None


def _log_ticks(low: float, high: float) -> list[float]:
    ticks, decade = [], 10 ** math.floor(math.log10(low))
    while decade <= high:
        ticks += [step * decade for step in (1, 2, 5) if low <= step * decade <= high]
        decade *= 10
    return ticks


def scatter_chart_svg(
    *,
    title: str,
    title_id: str,
    x_label: str,
    points: list[Point],
    series_labels: dict[int, str],
    y_min: float = 0.5,
    y_max: float = 1.0,
    reference: tuple[str, float] | None = None,
) -> SafeString:
    """Dots (with interval whiskers) on a logarithmic x axis, and an optional dashed horizontal
    reference line (e.g. a ceiling). Same CSP-safe markup and classes as :func:`line_chart_svg`;
    the y axis is shares (labelled in per cent), named by the title."""
    xs = [point.x for point in points if point.x > 0]
    x_low, x_high = (min(xs) / 1.3, max(xs) * 1.3) if xs else (1.0, 10.0)
    span = math.log(x_high) - math.log(x_low)
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_of(value: float) -> float:
        return LEFT + (math.log(max(value, x_low)) - math.log(x_low)) / span * plot_width

    def y_of(value: float) -> float:
        share = (min(y_max, max(y_min, value)) - y_min) / (y_max - y_min)
        return TOP + (1 - share) * plot_height

    parts = [
        format_html(
            '<svg class="curation-chart" viewBox="0 0 {} {}" role="img" aria-labelledby="{}" '
            'xmlns="http://www.w3.org/2000/svg"><title id="{}">{}</title>',
            WIDTH,
            HEIGHT,
            title_id,
            title_id,
            title,
        )
    ]
    # Gridlines every 5 points, or 10 over a wide range (labels must stay legible on a phone).
    step = 0.05 if y_max - y_min <= 0.3 else 0.1
    steps = math.floor((y_max - y_min) / step + 1e-9)
    for index in range(steps + 1):
        tick = y_max - (steps - index) * step
        parts.append(
            format_html(
                '<line class="curation-chart-grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                '<text class="curation-chart-axis" x="{}" y="{}" text-anchor="end">{}</text>',
                LEFT,
                WIDTH - RIGHT,
                f"{y_of(tick):.1f}",
                f"{y_of(tick):.1f}",
                LEFT - 6,
                f"{y_of(tick) + 4:.1f}",
                f"{tick:.0%}",
            )
        )
    for tick in _log_ticks(x_low, x_high):
        parts.append(
            format_html(
                '<text class="curation-chart-axis" x="{}" y="{}" text-anchor="middle">{}</text>',
                f"{x_of(tick):.1f}",
                HEIGHT - BOTTOM + 18,
                f"{tick:g}",
            )
        )
    parts.append(
        format_html(
            '<text class="curation-chart-axis" x="{}" y="{}" text-anchor="middle">{}</text>',
            LEFT + plot_width / 2,
            HEIGHT - 6,
            x_label,
        )
    )
    if reference is not None:
        label, value = reference
        parts.append(
            format_html(
                '<line class="curation-chart-reference" x1="{}" x2="{}" y1="{}" y2="{}">'
                "<title>{}: {}</title></line>",
                LEFT,
                WIDTH - RIGHT,
                f"{y_of(value):.1f}",
                f"{y_of(value):.1f}",
                label,
                f"{value:.1%}",
            )
        )
    for point in points:
        css = f"curation-series-{(point.series - 1) % 8 + 1}"
        x, y = x_of(point.x), y_of(point.y)
        if point.low is not None and point.high is not None:
            parts.append(
                format_html(
                    '<line class="curation-chart-whisker {}" x1="{}" x2="{}" y1="{}" y2="{}"/>',
                    css,
                    f"{x:.1f}",
                    f"{x:.1f}",
                    f"{y_of(point.low):.1f}",
                    f"{y_of(point.high):.1f}",
                )
            )
        parts.append(
            format_html(
                '<circle class="curation-chart-dot {}" cx="{}" cy="{}" r="4"><title>{}</title></circle>',
                css,
                f"{x:.1f}",
                f"{y:.1f}",
                point.label,
            )
        )
    parts.append(mark_safe("</svg>"))  # noqa: S308 (a constant)
    legend = "".join(
        f'<li><span class="curation-swatch curation-series-{(number - 1) % 8 + 1}" aria-hidden="true"></span>'
        f"{escape(label)}</li>"
        for number, label in sorted(series_labels.items())
    )
    if reference is not None:
        legend += (
            '<li><span class="curation-swatch curation-swatch-reference" aria-hidden="true"></span>'
            f"{escape(reference[0])}</li>"
        )
    return mark_safe("".join(parts) + f'<ul class="curation-chart-legend">{legend}</ul>')  # noqa: S308 (escaped)
