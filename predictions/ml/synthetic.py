"""Synthetic, ultrasound-like scans with a known answer and a known best possible accuracy.

No real fetal ultrasound data set with sex labels can be downloaded here, so the project makes
its own: a fan-shaped sector on black, multiplicative speckle, a fetal profile lying on its
back (skull, torso, a row of vertebrae along the spine) and a genital tubercle at the caudal end.
In the "nub theory" a boy's tubercle points up, more than about 30 degrees from the spine, and
a girl's lies nearly parallel to it. Here:

* every synthetic baby has a *latent* angle ``theta ~ Normal(mean[sex], baby_angle_sd)``;
* every scan of that baby shows the angle ``a = theta + Normal(0, scan_angle_sd)``, and is
  further disturbed by position, size, facing direction, brightness, gain, blur and speckle.

Because the two normal distributions overlap, no model can always be right. With equal priors
and equal spreads the Bayes-optimal rule thresholds the angle at the midpoint of the means, so
(with ``delta = mean_male - mean_female`` and ``Phi`` the standard normal CDF)::

    per scan:            Phi(delta / (2 * sqrt(baby_sd**2 + scan_sd**2)))
    per baby, k scans:   Phi(delta / (2 * sqrt(baby_sd**2 + scan_sd**2 / k)))
    per baby, k -> inf:  Phi(delta / (2 * baby_sd))

(the mean of a baby's k angles is sufficient and normal with the variance shown). These are
ceilings for a model that could read the angle exactly; reading it from pixels only loses more.
With the defaults (8 and 38 degrees, spreads 10 and 6) they are 90.1 % per scan and 92.2 % per
baby with three scans.

Everything is seeded: the same seed and config give byte-identical JPEGs, independently of the
order or the number of babies generated (each baby draws from its own seeded stream).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from predictions.ml.records import MANIFEST_FIELDS, MANIFEST_NAME, SEX_LABELS

DATASET_INFO_NAME = "synthetic.json"
SPLIT_CODES = {"train": 1, "val": 2, "test": 3}


@dataclass(frozen=True)
class SyntheticConfig:
    """The distributions and the nuisances; recorded next to every generated data set."""

    female_mean_angle: float = 8.0
    male_mean_angle: float = 38.0
    baby_angle_sd: float = 10.0
    scan_angle_sd: float = 6.0
    male_fraction: float = 0.5
    image_size: int = 128
    jpeg_quality: int = 90
    min_gestational_week: int = 12
    max_gestational_week: int = 16

    @property
    def decision_angle(self) -> float:
        """The Bayes-optimal threshold for equal priors and equal spreads."""
        return (self.female_mean_angle + self.male_mean_angle) / 2

    def to_dict(self) -> dict:
        return asdict(self)


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def bayes_ceiling(config: SyntheticConfig, scans_per_baby: int | None = 1) -> float:
    """The best accuracy any classifier can reach from the angles of ``scans_per_baby`` scans.

    ``None`` means infinitely many scans (only the baby's own latent angle is left).
    Assumes equal priors and equal spreads, as the generator's defaults do.
    """
    delta = config.male_mean_angle - config.female_mean_angle
    if scans_per_baby is None:
        spread = config.baby_angle_sd
    else:
        if scans_per_baby < 1:
            raise ValueError("A baby has at least one scan.")
        spread = math.sqrt(config.baby_angle_sd**2 + config.scan_angle_sd**2 / scans_per_baby)
    return _normal_cdf(delta / (2 * spread))


@dataclass(frozen=True)
class SyntheticScan:
    baby_key: str
    sex: str
    scan_index: int
    latent_angle: float
    measured_angle: float
    gestational_week: int
    jpeg: bytes = field(repr=False)

    @property
    def label(self) -> int:
        return SEX_LABELS[self.sex]


def _baby_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, SPLIT_CODES.get(split, 0), index]))


def generate_baby(
    *, seed: int, split: str, index: int, scans_per_baby: int, config: SyntheticConfig
) -> list[SyntheticScan]:
    """One baby's scans, determined by (seed, split, index) alone."""
    rng = _baby_rng(seed, split, index)
    sex = "male" if rng.random() < config.male_fraction else "female"
    mean = config.male_mean_angle if sex == "male" else config.female_mean_angle
    latent = float(rng.normal(mean, config.baby_angle_sd))
    week = int(rng.integers(config.min_gestational_week, config.max_gestational_week + 1))
    baby_key = f"{split}{index:05d}"
    scans = []
    for scan_index in range(scans_per_baby):
        measured = float(latent + rng.normal(0.0, config.scan_angle_sd))
        image = render_scan(rng, angle=measured, size=config.image_size)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=config.jpeg_quality)
        scans.append(
            SyntheticScan(
                baby_key=baby_key,
                sex=sex,
                scan_index=scan_index,
                latent_angle=round(latent, 4),
                measured_angle=round(measured, 4),
                gestational_week=week,
                jpeg=buffer.getvalue(),
            )
        )
    return scans


def generate_split(
    *, seed: int, split: str, babies: int, scans_per_baby: int, config: SyntheticConfig
) -> Iterator[SyntheticScan]:
    for index in range(babies):
        yield from generate_baby(
            seed=seed, split=split, index=index, scans_per_baby=scans_per_baby, config=config
        )


def render_scan(rng: np.random.Generator, *, angle: float, size: int = 128) -> Image.Image:
    """Draw one ultrasound-like frame whose tubercle makes ``angle`` degrees with the spine.

    The fetus is drawn head-left, back down (the spine runs horizontally along the bottom of
    the torso) and then mirrored half of the time; "up" for the tubercle is towards the belly.
    """
    s = size
    # Nuisances: where the fetus is, how big, how bright, how sharp.
    scale = rng.uniform(0.72, 0.92)
    cx = 0.53 + rng.uniform(-0.06, 0.06)
    cy = 0.56 + rng.uniform(-0.06, 0.06)
    facing_right = rng.random() < 0.5
    gain = rng.uniform(0.75, 1.25)
    gamma = rng.uniform(0.85, 1.2)
    blur = rng.uniform(0.0, 1.1)
    speckle_grain = rng.uniform(0.5, 0.9)

    def px(x: float, y: float) -> tuple[float, float]:
        return (x * s, y * s)

    def ellipse(draw: ImageDraw.ImageDraw, x, y, rx, ry, fill, outline=None, width=1):
        draw.ellipse([px(x - rx, y - ry), px(x + rx, y + ry)], fill=fill, outline=outline, width=width)

    fetus = Image.new("L", (s, s), 0)
    draw = ImageDraw.Draw(fetus)
    # Torso and head: moderately echogenic soft tissue; the skull is a bright ring.
    ellipse(draw, cx - 0.04 * scale, cy, 0.27 * scale, 0.12 * scale, fill=95)
    head_x, head_y, head_r = cx - 0.34 * scale, cy - 0.03 * scale, 0.135 * scale
    ellipse(draw, head_x, head_y, head_r, head_r, fill=85, outline=190, width=max(1, round(0.015 * s)))
    # A bent thigh near the caudal end: a dimmer distractor the model must learn to ignore.
    thigh_angle = math.radians(rng.uniform(60, 120))
    thigh_start = (cx + 0.1 * scale, cy - 0.04 * scale)
    thigh_end = (
        thigh_start[0] + 0.2 * scale * math.cos(thigh_angle),
        thigh_start[1] - 0.2 * scale * math.sin(thigh_angle),
    )
    draw.line([px(*thigh_start), px(*thigh_end)], fill=105, width=max(2, round(0.05 * s * scale)))
    # The spine: a row of bright vertebrae along the back (the bottom edge of the torso).
    spine_y = cy + 0.095 * scale
    vertebra_r = 0.014 * scale
    for step in range(14):
        x = cx - 0.26 * scale + step * 0.034 * scale
        ellipse(draw, x, spine_y + rng.normal(0, 0.002), vertebra_r, vertebra_r * 0.8, fill=235)
    # The genital tubercle: a short bright bar at the caudal end, `angle` degrees up from the
    # spine's direction (pointing caudally, i.e. right before any mirroring).
    theta = math.radians(angle)
    base = (cx + 0.2 * scale, cy + 0.035 * scale)
    length = 0.12 * scale
    tip = (base[0] + length * math.cos(theta), base[1] - length * math.sin(theta))
    width = max(2, round(0.032 * s * scale))
    draw.line([px(*base), px(*tip)], fill=225, width=width)
    ellipse(draw, tip[0], tip[1], 0.016 * scale, 0.016 * scale, fill=225)
    if not facing_right:
        fetus = fetus.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    tissue = np.asarray(fetus, dtype=np.float32) / 255.0
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    apex_x, apex_y = 0.5, -0.06
    radius = np.hypot(xx - apex_x, yy - apex_y)
    bearing = np.degrees(np.arctan2(xx - apex_x, yy - apex_y))
    sector = (np.abs(bearing) <= 38.0) & (radius <= 1.0) & (radius >= 0.12)
    # Amniotic fluid is dark; the uterine wall is a bright band near the far edge of the fan.
    background = 0.06 + 0.35 * np.exp(-(((radius - 0.9) / 0.04) ** 2))
    background += 0.05 * rng.random((s, s), dtype=np.float32)
    image = np.maximum(tissue, background)
    # Smooth the shapes, then multiply by speckle (Rayleigh, mean 1) of a random grain.
    image = _blur(image, 0.8)
    speckle = rng.rayleigh(scale=1.0 / math.sqrt(math.pi / 2), size=(s, s)).astype(np.float32)
    speckle = _blur(speckle / 3.0, speckle_grain) * 3.0
    image = image * speckle
    # Depth attenuation, gain and a monitor's gamma.
    image = image * (1.05 - 0.35 * radius) * gain
    image = np.clip(image, 0.0, 1.0) ** gamma
    image = np.where(sector, image, 0.0)
    out = Image.fromarray(np.round(image * 255).astype(np.uint8), mode="L")
    if blur > 0.05:
        out = out.filter(ImageFilter.GaussianBlur(blur))
    return out


def _blur(values: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian blur of a [0, 1] float image through Pillow (8-bit is plenty for this)."""
    img = Image.fromarray(np.round(np.clip(values, 0, 1) * 255).astype(np.uint8), mode="L")
    return np.asarray(img.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32) / 255.0


@dataclass(frozen=True)
class GeneratedDataset:
    root: Path
    manifest_path: Path
    counts: dict[str, int]
    info: dict


def write_dataset(
    root: Path,
    *,
    babies: dict[str, int],
    scans_per_baby: int = 3,
    seed: int = 0,
    config: SyntheticConfig | None = None,
) -> GeneratedDataset:
    """Write ``<split>/<sex>/<baby>_<n>.jpg``, ``manifest.csv`` and ``synthetic.json`` under root.

    ``babies`` maps a split name (train, val, test) to its number of babies. Each file's path in
    the manifest is relative to ``root``. The manifest is written last, so a folder with a
    manifest is a complete data set.
    """
    config = config or SyntheticConfig()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    counts = {}
    for split, count in babies.items():
        if split not in SPLIT_CODES:
            raise ValueError(f"Unknown split {split!r}; use one of {sorted(SPLIT_CODES)}.")
        for sex in SEX_LABELS:
            (root / split / sex).mkdir(parents=True, exist_ok=True)
        counts[split] = 0
        for scan in generate_split(
            seed=seed, split=split, babies=count, scans_per_baby=scans_per_baby, config=config
        ):
            relative = Path(split) / scan.sex / f"{scan.baby_key}_{scan.scan_index}.jpg"
            (root / relative).write_bytes(scan.jpeg)
            counts[split] += 1
            rows.append(
                {
                    "path": relative.as_posix(),
                    "split": split,
                    "sex": scan.sex,
                    "label": scan.label,
                    "baby_key": scan.baby_key,
                    "scan_index": scan.scan_index,
                    "gestational_week": scan.gestational_week,
                    "latent_angle": scan.latent_angle,
                    "measured_angle": scan.measured_angle,
                    "sha256": hashlib.sha256(scan.jpeg).hexdigest(),
                }
            )
    info = {
        "kind": "synthetic",
        "seed": seed,
        "scans_per_baby": scans_per_baby,
        "babies": dict(babies),
        "config": config.to_dict(),
        "bayes_ceiling": {
            "per_scan": bayes_ceiling(config, 1),
            "per_baby": bayes_ceiling(config, scans_per_baby),
            "per_baby_unlimited_scans": bayes_ceiling(config, None),
        },
    }
    (root / DATASET_INFO_NAME).write_text(json.dumps(info, indent=2) + "\n")
    manifest_path = root / MANIFEST_NAME
    with manifest_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return GeneratedDataset(root=root, manifest_path=manifest_path, counts=counts, info=info)
