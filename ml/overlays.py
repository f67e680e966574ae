"""Burned-in text and caliper marks, drawn on synthetic scans as real ultrasound screenshots have them.

``ml.markers`` detects them; ``ml.synthetic`` draws them on a share of its scans
(``SyntheticConfig.marker_fraction``) from a random stream of their own.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# The burned-in overlays the generator can draw (and the manifest's ``markers`` column names).
MARKER_KINDS = ("text", "calipers")


def choose_markers(rng: np.random.Generator) -> tuple[str, ...]:
    """Text alone, calipers alone, or both, as often as each other."""
    return [("text",), ("calipers",), ("text", "calipers")][int(rng.integers(0, 3))]


# What an ultrasound screen prints: the overlay colours and the kind of text in its corners.
_WHITE = (255, 255, 255)
_OVERLAY_COLOURS = [(255, 255, 0), (0, 255, 0), (0, 230, 255), (255, 160, 0)]


def _overlay_colour(rng: np.random.Generator, *, colour_share: float) -> tuple[int, int, int]:
    if rng.random() < colour_share:
        return _OVERLAY_COLOURS[int(rng.integers(0, len(_OVERLAY_COLOURS)))]
    if rng.random() < 0.25:  # a light grey rather than white
        level = int(rng.integers(170, 235))
        return (level, level, level)
    return _WHITE


def _overlay_text(rng: np.random.Generator, week: int) -> str:
    day = int(rng.integers(0, 7))
    choices = [
        f"GA {week}w{day}d",
        f"{int(rng.integers(1, 29)):02d}/{int(rng.integers(1, 13)):02d}/20{int(rng.integers(20, 27))}",
        f"TIs {rng.uniform(0.1, 0.9):.1f} MI {rng.uniform(0.5, 1.4):.1f}",
        f"{int(rng.integers(2, 9))}.{int(rng.integers(0, 10))}MHz",
        f"CRL {rng.uniform(40, 90):.1f}mm",
        "OB 1st TRI",
        f"Gn {int(rng.integers(20, 70))} D {rng.uniform(8, 16):.1f}cm",
    ]
    return choices[int(rng.integers(0, len(choices)))]


def burn_in_markers(
    image: Image.Image, rng: np.random.Generator, *, kinds: tuple[str, ...], week: int = 12
) -> Image.Image:
    """Draw ``kinds`` of overlay (``"text"``, ``"calipers"``) on a rendered scan.

    Text: one or two short lines in Pillow's default bitmap font, usually in a black corner
    outside the fan, sometimes over the image. Calipers: two '+' crosses on the fetus, joined by
    a dotted line most of the time. White, light grey or (a third of the time) a screen colour,
    in which case the scan becomes RGB, as a screenshot of a colour display would be.
    """
    unknown = set(kinds) - set(MARKER_KINDS)
    if unknown:
        raise ValueError(f"Unknown marker kinds {sorted(unknown)}; use {MARKER_KINDS}.")
    s = image.width
    colours = {kind: _overlay_colour(rng, colour_share=1 / 3) for kind in kinds}
    coloured = any(len(set(colour)) > 1 for colour in colours.values())
    out = image.convert("RGB") if coloured else image.copy()
    draw = ImageDraw.Draw(out)

    def paint(colour):
        return colour if out.mode == "RGB" else colour[0]

    if "text" in kinds:
        font = ImageFont.load_default_imagefont()
        colour = paint(colours["text"])
        for line in range(int(rng.integers(1, 3))):
            text = _overlay_text(rng, week)
            width, height = font.getbbox(text)[2:]
            if rng.random() < 0.8:  # a corner: outside the fan, on black
                right, bottom = rng.random() < 0.5, rng.random() < 0.5
                x = s - width - 2 if right else 2
                y = s - (line + 1) * (height + 1) - 1 if bottom else 2 + line * (height + 1)
            else:  # over the image
                x = int(rng.integers(2, max(3, s - width - 2)))
                y = int(rng.integers(s // 4, max(s // 4 + 1, s - height - 2)))
            draw.text((x, y), text, fill=colour, font=font)
    if "calipers" in kinds:
        colour = paint(colours["calipers"])
        arm = max(2, round(s * rng.uniform(0.025, 0.045)))
        # Two ends of a measurement, at least a fifth of the image apart (a caliper measures).
        first = (s * rng.uniform(0.3, 0.75), s * rng.uniform(0.35, 0.8))
        bearing = rng.uniform(0, 2 * math.pi)
        distance = s * rng.uniform(0.2, 0.35)
        second = (
            min(max(first[0] + distance * math.cos(bearing), arm + 1), s - arm - 2),
            min(max(first[1] + distance * math.sin(bearing), arm + 1), s - arm - 2),
        )
        points = [(round(x), round(y)) for x, y in (first, second)]
        if rng.random() < 0.75:
            (x0, y0), (x1, y1) = points
            steps = max(2, round(math.hypot(x1 - x0, y1 - y0) / rng.uniform(3.0, 5.0)))
            for step in range(1, steps):
                x = round(x0 + (x1 - x0) * step / steps)
                y = round(y0 + (y1 - y0) * step / steps)
                draw.point((x, y), fill=colour)
        for x, y in points:
            draw.line([(x - arm, y), (x + arm, y)], fill=colour, width=1)
            draw.line([(x, y - arm), (x, y + arm)], fill=colour, width=1)
    return out
