"""Synthetic, ultrasound-like scans with a known answer and a known best possible accuracy.

No real fetal ultrasound data set with sex labels can be downloaded here, so the project makes
its own: a fan-shaped sector on black, multiplicative speckle, a fetal profile lying on its
back (skull, torso, a row of vertebrae along the spine) and a genital tubercle at the caudal end.
In the "nub theory" a boy's tubercle points up, more than about 30 degrees from the spine, and
a girl's lies nearly parallel to it. Here:

* every synthetic baby has a *latent* angle ``theta ~ Normal(mean[sex], baby_angle_sd)``;
* every scan of that baby has its own gestational week, uniform in
  ``[min_gestational_week, max_gestational_week]`` (scans may come from different appointments);
* every scan shows the angle ``a = theta + Normal(0, sd(week))``, where ``sd(week)`` is
  ``early_scan_angle_sd`` up to ``last_early_week`` and ``scan_angle_sd`` after it, and is
  further disturbed by position, size, facing direction, brightness, gain, blur and speckle.

The larger early noise mirrors the evidence on sonographers reading the tubercle: 70-90 % right
at 11-12 weeks, 98-100 % from 13 weeks. The image does not show the week (the fetus is drawn at
one size), so a model cannot learn to be less sure of an early scan by itself; the week the
parent enters is what gates early scans out (``ml.gestation``).

Because the two normal distributions overlap, no model can always be right. With equal priors
and equal spreads the Bayes-optimal rule thresholds the angle at the midpoint of the means (with
``delta = mean_male - mean_female`` and ``Phi`` the standard normal CDF)::

    per scan, week w:      Phi(delta / (2 * sqrt(baby_sd**2 + sd(w)**2)))
    per baby, k scans:     Phi(delta / (2 * sqrt(baby_sd**2 + 1 / sum_i(1 / sd(w_i)**2))))
    per baby, k -> inf:    Phi(delta / (2 * baby_sd))

For a baby the optimal statistic is the precision-weighted mean of its angles (a Gaussian
likelihood ratio with a shared latent angle is linear in it); the ceilings below average these
over the week distribution, exactly (a binomial count of early scans). They are ceilings for a
rule that reads every angle exactly *and knows every week*; the pipeline's rule (the plain mean
of the scans' logits, see ``ml.abstention``) reads the angle from pixels and gives
every scan the same weight, so it can only do worse (:func:`equal_weight_ceiling` is that rule
with exact angles). With the defaults (8 and 38 degrees, baby spread 10, scan spread 6 from week
13 and 12 up to week 12, weeks 11-20) the Bayes ceilings are 88.7 % per scan and 91.9 % per baby
with three scans (90.1 % per scan from week 13, 83.2 % at 11-12).

Optionally (``marker_fraction``, off by default) a share of the scans get burned-in text and
caliper marks drawn on them, as real screenshots of an ultrasound screen have; the manifest says
which (``markers``), so the detector in ``ml.markers`` can be tested and measured.
They are drawn from a separate random stream, so turning them on changes no other pixel.

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

from ml.overlays import MARKER_KINDS, burn_in_markers, choose_markers  # noqa: F401 - re-exported
from ml.records import MANIFEST_FIELDS, MANIFEST_NAME, SEX_LABELS

DATASET_INFO_NAME = "synthetic.json"
# "eval" is the fixed evaluation set (predictions.evaluation_set): its own random streams, so
# its babies are never any training, validation or test baby, whatever the seeds.
SPLIT_CODES = {"train": 1, "val": 2, "test": 3, "eval": 4}
# Bump when the same seed and config would give other scans or other manifest columns; a data
# set records it in synthetic.json, so a reused folder from an older generator can be spotted.
# 2: a gestational week per scan, week-dependent angle noise, optional burned-in markers.
GENERATOR_VERSION = 2
# A separate random stream per scan for the overlays: drawing them never moves the scan's pixels.
_MARKER_STREAM = 77


@dataclass(frozen=True)
class SyntheticConfig:
    """The distributions and the nuisances; recorded next to every generated data set."""

    female_mean_angle: float = 8.0
    male_mean_angle: float = 38.0
    baby_angle_sd: float = 10.0
    # Scan-to-scan noise of the angle from week last_early_week + 1 on, and up to it.
    scan_angle_sd: float = 6.0
    early_scan_angle_sd: float = 12.0
    last_early_week: int = 12
    male_fraction: float = 0.5
    image_size: int = 128
    jpeg_quality: int = 90
    min_gestational_week: int = 11
    max_gestational_week: int = 20
    # Share of scans with burned-in text and/or calipers (0 = none, the default).
    marker_fraction: float = 0.0

    def __post_init__(self):
        if not 1 <= self.min_gestational_week <= self.max_gestational_week:
            raise ValueError("The gestational weeks must satisfy 1 <= min <= max.")
        if not 0.0 <= self.marker_fraction <= 1.0:
            raise ValueError("marker_fraction is a share between 0 and 1.")
        if min(self.baby_angle_sd, self.scan_angle_sd, self.early_scan_angle_sd) <= 0:
            raise ValueError("The angle spreads must be positive.")

    @property
    def decision_angle(self) -> float:
        """The Bayes-optimal threshold for equal priors and equal spreads."""
        return (self.female_mean_angle + self.male_mean_angle) / 2

    @property
    def weeks(self) -> range:
        return range(self.min_gestational_week, self.max_gestational_week + 1)

    def scan_sd(self, week: int) -> float:
        """The scan-to-scan spread of the angle at ``week``."""
        return self.early_scan_angle_sd if week <= self.last_early_week else self.scan_angle_sd

    @property
    def early_fraction(self) -> float:
        """The share of scans drawn at an early (noisier) week."""
        return sum(week <= self.last_early_week for week in self.weeks) / len(self.weeks)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SyntheticConfig:
        """Read a config recorded in ``synthetic.json``, also one written by an older generator.

        Version 1 drew one week per baby and the same noise at every week: a recorded config
        without ``early_scan_angle_sd`` gets the scan spread for it, so its ceilings stay right.
        Unknown keys (from a newer generator) are ignored.
        """
        known = {name: value for name, value in data.items() if name in cls.__dataclass_fields__}
        if "early_scan_angle_sd" not in data and "scan_angle_sd" in data:
            known["early_scan_angle_sd"] = data["scan_angle_sd"]
        return cls(**known)


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _early_counts(config: SyntheticConfig, scans: int) -> list[tuple[int, float]]:
    """(number of early scans, its probability) for a baby with ``scans`` scans."""
    q = config.early_fraction
    return [
        (early, math.comb(scans, early) * q**early * (1 - q) ** (scans - early)) for early in range(scans + 1)
    ]


def _ceiling(config: SyntheticConfig, noise_variance: float) -> float:
    delta = config.male_mean_angle - config.female_mean_angle
    return _normal_cdf(delta / (2 * math.sqrt(config.baby_angle_sd**2 + noise_variance)))


def bayes_ceiling(config: SyntheticConfig, scans_per_baby: int | None = 1) -> float:
    """The best accuracy any classifier can reach from the angles of ``scans_per_baby`` scans.

    The rule that reaches it knows each scan's week and weighs the angles by their precision.
    ``None`` means infinitely many scans (only the baby's own latent angle is left). Assumes
    equal priors and equal spreads for the two sexes, as the generator's defaults do.
    """
    if scans_per_baby is None:
        return _ceiling(config, 0.0)
    if scans_per_baby < 1:
        raise ValueError("A baby has at least one scan.")
    early_precision = 1 / config.early_scan_angle_sd**2
    late_precision = 1 / config.scan_angle_sd**2
    return math.fsum(
        probability
        * _ceiling(config, 1 / (early * early_precision + (scans_per_baby - early) * late_precision))
        for early, probability in _early_counts(config, scans_per_baby)
    )


def equal_weight_ceiling(config: SyntheticConfig, scans_per_baby: int) -> float:
    """The accuracy of the plain mean of exact angles, the pipeline's rule, which sees no week.

    Equal to :func:`bayes_ceiling` when every week has the same noise.
    """
    if scans_per_baby < 1:
        raise ValueError("A baby has at least one scan.")
    return math.fsum(
        probability
        * _ceiling(
            config,
            (early * config.early_scan_angle_sd**2 + (scans_per_baby - early) * config.scan_angle_sd**2)
            / scans_per_baby**2,
        )
        for early, probability in _early_counts(config, scans_per_baby)
    )


def bayes_ceiling_for_weeks(config: SyntheticConfig, weeks: range | list[int]) -> float | None:
    """The per-scan ceiling for scans drawn uniformly from ``weeks`` (within the config's range)."""
    drawn = [week for week in weeks if week in config.weeks]
    if not drawn:
        return None
    return math.fsum(_ceiling(config, config.scan_sd(week) ** 2) for week in drawn) / len(drawn)


@dataclass(frozen=True)
class SyntheticScan:
    baby_key: str
    sex: str
    scan_index: int
    latent_angle: float
    measured_angle: float
    gestational_week: int
    jpeg: bytes = field(repr=False)
    # The overlays burned into this scan (a subset of MARKER_KINDS); empty for a clean scan.
    markers: tuple[str, ...] = ()

    @property
    def label(self) -> int:
        return SEX_LABELS[self.sex]


def _baby_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, SPLIT_CODES.get(split, 0), index]))


def _marker_rng(seed: int, split: str, index: int, scan_index: int) -> np.random.Generator:
    return np.random.default_rng(
        np.random.SeedSequence([seed, SPLIT_CODES.get(split, 0), index, scan_index, _MARKER_STREAM])
    )


def generate_baby(
    *, seed: int, split: str, index: int, scans_per_baby: int, config: SyntheticConfig
) -> list[SyntheticScan]:
    """One baby's scans, determined by (seed, split, index) alone."""
    rng = _baby_rng(seed, split, index)
    sex = "male" if rng.random() < config.male_fraction else "female"
    mean = config.male_mean_angle if sex == "male" else config.female_mean_angle
    latent = float(rng.normal(mean, config.baby_angle_sd))
    baby_key = f"{split}{index:05d}"
    scans = []
    for scan_index in range(scans_per_baby):
        week = int(rng.integers(config.min_gestational_week, config.max_gestational_week + 1))
        measured = float(latent + rng.normal(0.0, config.scan_sd(week)))
        image = render_scan(rng, angle=measured, size=config.image_size)
        markers: tuple[str, ...] = ()
        marker_rng = _marker_rng(seed, split, index, scan_index)
        if marker_rng.random() < config.marker_fraction:
            markers = choose_markers(marker_rng)
            image = burn_in_markers(image, marker_rng, kinds=markers, week=week)
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
                markers=markers,
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
                    "markers": "+".join(scan.markers),
                    "sha256": hashlib.sha256(scan.jpeg).hexdigest(),
                }
            )
    info = {
        "kind": "synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "scans_per_baby": scans_per_baby,
        "babies": dict(babies),
        "config": config.to_dict(),
        "bayes_ceiling": {
            "per_scan": bayes_ceiling(config, 1),
            "per_baby": bayes_ceiling(config, scans_per_baby),
            "per_baby_unlimited_scans": bayes_ceiling(config, None),
            "per_baby_equal_weights": equal_weight_ceiling(config, scans_per_baby),
        },
    }
    (root / DATASET_INFO_NAME).write_text(json.dumps(info, indent=2) + "\n")
    manifest_path = root / MANIFEST_NAME
    with manifest_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return GeneratedDataset(root=root, manifest_path=manifest_path, counts=counts, info=info)
