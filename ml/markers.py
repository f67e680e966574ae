"""Burned-in text, caliper marks and colour overlays on a scan: a simple heuristic, NumPy + Pillow.

A photo or screenshot of an ultrasound screen often carries what the machine printed on it: the
patient's name, the date, "GA 12w3d" in a corner, a measurement's '+' calipers and dotted line,
sometimes in yellow or green. A model can learn those instead of the anatomy (a caliper is put
on the tubercle more often when the sonographer saw something), and text may be personal data,
so such scans are flagged: for the parent's crop step, or for a curator's review.

What the heuristic looks for, each measured on a working copy at most ``WORKING_MAX_SIDE`` wide
(the brightest channel per pixel, so yellow text counts as bright):

* **outside the fan** - the fan is where a 9x9 median of the luma is not black (a median keeps
  tissue and drops thin strokes); bright pixels more than 3 pixels outside it are printed on the
  black margin, where speckle never is. Text right next to the fan merges into it (JPEG rings
  around it), so that text is left to the stroke signal.
* **colour** - an ultrasound image is grey; pixels with a strong colour (max - min channel) are
  overlays. A display with a colour map (sepia) tints most of the image: then colour says
  nothing and is ignored.
* **'+' crosses** - a pixel whose four arms (up to 2 pixels away, horizontally and vertically)
  are as bright as itself while every off-axis neighbour at distance 2 is much darker: what a
  1-pixel '+' looks like and round speckle or tissue does not.
* **glyph stems** - pixels on a vertical line at most 3 pixels wide (brighter by ``CONTRAST``
  than the pixels 2 away on both sides) and flat along it for 5 pixels (within ``FLATNESS``),
  inside the fan and away from any cross. Drawn lines are one flat colour; speckle is not, for
  5 pixels. Vertical, because burned-in text is always upright and its letters stand on
  vertical stems, while the anatomy's long bright lines (the spine) lie any way, in these
  synthetic scans horizontally: there the horizontal count is as high on clean scans as on
  text, the vertical one is not (both are in ``evidence``). A photo turned by 90 degrees with
  no EXIF orientation turns its text's stems horizontal, and this signal misses them.
  Dotted lines are not looked for: their dots are single pixels, like speckle grains.

Each signal is divided by its threshold (``THRESHOLDS``); the largest ratio ``r`` gives the
score ``r / (1 + r)``, so a score of 0.5 is a signal exactly at its threshold and
``has_markers`` is ``score >= 0.5``. The thresholds were set on seeded synthetic scans and
measured on other seeds (``bench/markers.py``); on real scans they should be checked against
what curators flag before anything is rejected automatically (this only flags).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ml.preprocessing import ImageSource, open_scan

# Bigger images are box-reduced first: an antialiased stroke 2-3 pixels wide on a phone photo
# becomes the 1-2 pixel stroke the filters below look for, and the work stays small.
WORKING_MAX_SIDE = 640
# A pixel this much brighter than its surroundings (0..255) stands out as drawn, not scanned.
CONTRAST = 90
# Below this a pixel is not a drawn mark (marks are white, light grey or a bright colour).
BRIGHT = 140
# The fan: where the 9x9 median is at least this (black outside is 0-5 after JPEG).
FAN_LEVEL = 8
# A stroke pixel's neighbours this far along the stroke (both ways) differ from it by at most
# FLATNESS: drawn lines are one flat colour, speckle is not.
STROKE_REACH = 2
FLATNESS = 20
# How far (pixels, at least; 5 % of the image's side if more) a caliper cross's arms reach.
CROSS_REACH = 8
# Signal -> the count at which it alone flags the scan.
THRESHOLDS = {
    "bright_outside_fan": 12,
    "coloured_pixels": 12,
    "crosses": 1,
    "vertical_strokes": 8,
}
# More than this share of the non-black pixels coloured: a tinted display, not an overlay.
TINT_SHARE = 0.25


@dataclass(frozen=True)
class MarkerReport:
    """What :func:`detect_markers` found; ``evidence`` holds the raw counts behind the flags."""

    has_text: bool
    has_calipers: bool
    has_colour_overlay: bool
    score: float
    evidence: dict[str, float] = field(default_factory=dict)

    @property
    def has_markers(self) -> bool:
        return self.has_text or self.has_calipers or self.has_colour_overlay

    @property
    def flags(self) -> list[str]:
        """``"text"``, ``"calipers"``, ``"colour_overlay"``: the ones raised, in that order."""
        names = [("text", self.has_text), ("calipers", self.has_calipers)]
        names.append(("colour_overlay", self.has_colour_overlay))
        return [name for name, raised in names if raised]

    def to_dict(self) -> dict:
        """JSON for a scan's quality record or the curation admin."""
        return {"flags": self.flags, "score": round(self.score, 4), "evidence": self.evidence}


def detect_markers(source: ImageSource | Image.Image | np.ndarray) -> MarkerReport:
    """Look for burned-in text, '+' calipers and colour overlays on one scan.

    ``source`` is the JPEG's (or PNG's) bytes, a path, an open binary file, a Pillow image or
    an array (``H x W`` grey or ``H x W x 3`` RGB, 0..255). Undecodable bytes raise
    :class:`ml.preprocessing.PreprocessingError`, as preprocessing does.
    """
    luma, value, chroma = _working_pixels(_as_image(source))
    height, width = value.shape
    fan = _fan_mask(luma)
    padded = np.pad(value, 2, mode="edge")

    def shifted(dy: int, dx: int) -> np.ndarray:
        return padded[2 + dy : 2 + dy + height, 2 + dx : 2 + dx + width]

    bright = value >= BRIGHT
    outside = _count((value >= 120) & ~_dilate(fan, 3))

    coloured = (chroma >= 60) & (value >= 100)
    non_black = max(1, _count(value >= 40))
    tinted = _count(chroma >= 30) / non_black > TINT_SHARE
    coloured_pixels = 0 if tinted else _count(coloured)

    arms = functools.reduce(np.minimum, [shifted(dy, dx) for dy, dx in _ARMS])
    off_axis = functools.reduce(np.maximum, [shifted(dy, dx) for dy, dx in _OFF_AXIS])
    cross_centres = bright & (arms >= value - 50) & (off_axis <= value - CONTRAST)
    crosses = _count(cross_centres)
    # A cross's own arms are strokes too: only strokes away from any cross can be a letter's.
    away_from_crosses = ~_dilate(cross_centres, max(CROSS_REACH, round(0.05 * max(height, width))))

    flat_along_x = np.ones_like(bright)
    flat_along_y = np.ones_like(bright)
    for step in range(1, STROKE_REACH + 1):
        for sign in (-1, 1):
            flat_along_x &= np.abs(shifted(0, sign * step) - value) <= FLATNESS
            flat_along_y &= np.abs(shifted(sign * step, 0) - value) <= FLATNESS
    across_y = value - np.maximum(shifted(-2, 0), shifted(2, 0))
    across_x = value - np.maximum(shifted(0, -2), shifted(0, 2))
    candidates = bright & fan & away_from_crosses
    horizontal = _count(candidates & (across_y >= CONTRAST) & flat_along_x)
    vertical = _count(candidates & (across_x >= CONTRAST) & flat_along_y)
    evidence = {
        "bright_outside_fan": outside,
        "coloured_pixels": coloured_pixels,
        "crosses": crosses,
        "vertical_strokes": vertical,
    }
    ratios = {name: evidence[name] / THRESHOLDS[name] for name in THRESHOLDS}
    strongest = max(ratios.values())
    return MarkerReport(
        has_text=ratios["bright_outside_fan"] >= 1 or ratios["vertical_strokes"] >= 1,
        has_calipers=ratios["crosses"] >= 1,
        has_colour_overlay=ratios["coloured_pixels"] >= 1,
        score=strongest / (1 + strongest),
        evidence={**evidence, "horizontal_strokes": horizontal, "tinted": tinted},
    )


# Offsets (dy, dx): the four arms of a '+' up to 2 pixels, and the ring of off-axis pixels at
# distance 2 that must stay dark around its centre.
_ARMS = [(0, -1), (0, -2), (0, 1), (0, 2), (-1, 0), (-2, 0), (1, 0), (2, 0)]
_OFF_AXIS = [(dy, dx) for dy in (-2, -1, 1, 2) for dx in (-2, -1, 1, 2) if max(abs(dy), abs(dx)) == 2]


def _as_image(source: ImageSource | Image.Image | np.ndarray) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        array = np.clip(source, 0, 255).astype(np.uint8)
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[..., 0]
        return Image.fromarray(array)
    return open_scan(source)


def _working_pixels(image: Image.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Luma, the brightest channel and the colour strength per pixel, on a copy of bounded size.

    The fan is found on luma: JPEG's halved colour resolution bleeds a coloured stroke's chroma
    into the black around it, which lifts the brightest channel there but hardly the luma.
    """
    image = image.convert("RGB")
    factor = math.ceil(max(image.size) / WORKING_MAX_SIDE)
    if factor > 1:
        image = image.reduce(factor)
    pixels = np.asarray(image, dtype=np.int16)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    # Channel by channel: numpy's max(axis=2) over three values per pixel is several times slower.
    value = np.maximum(np.maximum(red, green), blue)
    luma = np.asarray(image.convert("L"), dtype=np.int16)
    return luma, value, value - np.minimum(np.minimum(red, green), blue)


def _count(mask: np.ndarray) -> int:
    """How many pixels of ``mask`` are set (count_nonzero: several times faster than a sum)."""
    return int(np.count_nonzero(mask))


def _box_count(mask: np.ndarray, radius: int) -> np.ndarray:
    """How many pixels of ``mask`` lie in the (2 radius + 1)^2 square around each pixel."""
    size = 2 * radius + 1
    padded = np.pad(mask.astype(np.int32), radius)
    integral = np.pad(padded.cumsum(axis=0, dtype=np.int32).cumsum(axis=1, dtype=np.int32), ((1, 0), (1, 0)))
    return (
        integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]
    )


def _fan_mask(luma: np.ndarray) -> np.ndarray:
    """Where the 9x9 median is at least FAN_LEVEL: half the square or more is not black."""
    return _box_count(luma >= FAN_LEVEL, 4) * 2 >= 81


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    return _box_count(mask, radius) > 0
