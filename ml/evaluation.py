"""Per-baby evaluation: what a model version is judged on, at training, at activation and later.

A parent is answered about a baby, not a scan, so the headline figures are per baby and use
exactly the rule the web uses (``ml.abstention.decide_for_baby``): scans before the
minimum gestational week left out, each scan's logit divided by the temperature, the mean
multiplied by the per-baby scale for that number of scans (:class:`BabyCalibration`).

Intervals are bootstrapped over **babies**: the scans of one baby share its anatomy, so they are
not independent draws, and an interval that treats them as such is too narrow. The report also
keeps which babies the version got right (``correct``, in a fixed order, with a digest of the
babies and labels), so two versions evaluated on the same babies can be compared pair by pair
(``ml.gate``).

NumPy only: the training pipeline, ``manage.py evaluate_model`` and the activation gate (in web
processes too) all call :func:`evaluate_babies`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ml import metrics
from ml.metrics import Baby, usable_babies

# The risk–coverage curve: every margin from 0 to 0.45 in steps of 0.01, so the figures for the
# margin in force now can be looked up whatever it is set to.
RISK_COVERAGE_MARGINS = tuple(round(step / 100, 2) for step in range(46))
BOOTSTRAP_SAMPLES = 1000
# A number of scans needs this many validation babies before it gets a scale of its own.
MIN_BABIES_PER_SCALE = 30


@dataclass(frozen=True)
class BabyCalibration:
    """The per-baby scale of the mean calibrated logit, by number of usable scans.

    One scan needs no scale (the temperature already calibrates a scan), so ``scale(1)`` is 1. A
    number of scans without a fitted scale takes the nearest fitted one below it (the scale grows
    with the scans and levels off), or 1 when there is none.
    """

    scales: dict[int, float] = field(default_factory=dict)

    def scale(self, scans: int) -> float:
        if scans <= 1 or not self.scales:
            return 1.0
        fitted = [count for count in self.scales if count <= scans]
        return self.scales[max(fitted)] if fitted else 1.0

    def to_dict(self) -> dict:
        return {
            "method": "scale_by_scan_count",
            "scales": {str(count): round(value, 6) for count, value in sorted(self.scales.items())},
        }

    @classmethod
    def from_dict(cls, data) -> BabyCalibration:
        """Read what :meth:`to_dict` wrote; anything else (an old version's ``{}``) is no scale."""
        scales = (data or {}).get("scales") if isinstance(data, dict) else None
        if not isinstance(scales, dict):
            return cls()
        parsed = {}
        for count, value in scales.items():
            try:
                count, value = int(count), float(value)
            except (TypeError, ValueError):
                continue
            if count >= 2 and math.isfinite(value) and value > 0:
                parsed[count] = value
        return cls(parsed)


def _fit_scale(mean_logits: np.ndarray, labels: np.ndarray) -> float:
    """The scale a > 0 minimising the log-loss of sigmoid(a * mean logit) (convex in a)."""

    def loss(log_a: float) -> float:
        z = mean_logits * math.exp(log_a)
        return float(np.mean(np.logaddexp(0.0, -z) * labels + np.logaddexp(0.0, z) * (1 - labels)))

    low, high = math.log(0.2), math.log(10.0)
    for _ in range(100):  # ternary search on a convex function
        a, b = low + (high - low) / 3, high - (high - low) / 3
        if loss(a) < loss(b):
            high = b
        else:
            low = a
    return float(math.exp((low + high) / 2))


def fit_baby_calibration(
    *,
    labels: Sequence[int],
    calibrated_logits: Sequence[float],
    baby_keys: Sequence[str],
    weeks: Sequence[int | None] | None,
    min_gestational_week: int,
    min_babies: int = MIN_BABIES_PER_SCALE,
) -> BabyCalibration:
    """Fit one scale per number of usable scans (2 or more) on validation babies."""
    babies, _ = usable_babies(
        labels=labels,
        calibrated_logits=calibrated_logits,
        baby_keys=baby_keys,
        weeks=weeks,
        min_gestational_week=min_gestational_week,
    )
    by_count: dict[int, list[Baby]] = {}
    for baby in babies:
        by_count.setdefault(len(baby.logits), []).append(baby)
    scales = {}
    for count, group in sorted(by_count.items()):
        if count < 2 or len(group) < min_babies or len({baby.label for baby in group}) < 2:
            continue
        means = np.array([baby.logits.mean() for baby in group])
        scales[count] = _fit_scale(means, np.array([baby.label for baby in group], dtype=np.float64))
    return BabyCalibration(scales)


def _bootstrap(
    statistic, size: int, *, samples: int, seed: int, bias_corrected: bool = False
) -> list[float] | None:
    """The 2.5th and 97.5th percentiles of ``statistic(indices)`` over resampled babies.

    ``bias_corrected`` shifts them by the bootstrap's estimate of the statistic's bias (mean of the
    resamples minus the value on all babies), clipped at 0. The binned ECE needs it: resampling
    duplicates babies, which adds noise to every bin and so always raises the ECE; the plain
    percentiles would sit above the value they are meant to bracket.
    """
    if size == 0:
        return None
    rng = np.random.default_rng(seed)
    values = [statistic(rng.integers(0, size, size)) for _ in range(samples)]
    low, high = np.percentile(values, [2.5, 97.5])
    if bias_corrected:
        bias = float(np.mean(values)) - statistic(np.arange(size))
        low, high = max(0.0, low - bias), max(0.0, high - bias)
    return [float(low), float(high)]


def babies_digest(keys: Sequence[str], labels: Sequence[int]) -> str:
    """Names a list of babies and their labels: two reports with the same digest can be paired."""
    digest = hashlib.sha256()
    for key, label in zip(keys, labels, strict=True):
        digest.update(f"{key}:{int(label)}\n".encode())
    return digest.hexdigest()


def evaluate_babies(
    *,
    labels: Sequence[int],
    raw_logits: Sequence[float],
    baby_keys: Sequence[str],
    weeks: Sequence[int | None] | None,
    temperature: float,
    calibration: BabyCalibration,
    min_gestational_week: int,
    margin: float,
    disagreement_threshold: float | None,
    bootstrap_samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> dict:
    """Everything a version is judged on, for the babies given (see the module's docstring).

    Keys: ``babies``, ``babies_without_usable_scans``, ``per_baby`` (count, accuracy with a
    bootstrap and a Wilson 95 % interval, ROC AUC, Brier, ``ece`` with its bootstrap interval,
    ``ece_plain_mean`` (without the per-baby scale, for comparison), confusion matrix),
    ``per_scan`` (every scan, accuracy with an interval bootstrapped over babies, ECE),
    ``abstention`` (``metrics.abstention_report`` over :data:`RISK_COVERAGE_MARGINS`: the
    risk–coverage curve, with the accuracy on the declined babies), ``correct`` (one character
    per baby, "1" right and "0" wrong, in the order of ``babies_digest``), ``baby_labels`` and
    ``baby_probabilities`` (each baby's label and probability of male, in that order) and
    ``babies_digest``.
    """
    labels = np.asarray(labels)
    calibrated = np.asarray(raw_logits, dtype=np.float64) / temperature
    babies, gated_out = usable_babies(
        labels=labels,
        calibrated_logits=calibrated,
        baby_keys=baby_keys,
        weeks=weeks,
        min_gestational_week=min_gestational_week,
    )
    baby_labels = np.array([baby.label for baby in babies])
    means = np.array([baby.logits.mean() for baby in babies])
    scaled = np.array([calibration.scale(len(baby.logits)) for baby in babies]) * means
    probabilities = metrics.sigmoid(scaled)
    correct = (probabilities >= 0.5) == (baby_labels == 1)
    per_baby = metrics.binary_report(baby_labels, probabilities)
    per_baby["accuracy_wilson95"] = per_baby.pop("accuracy_ci95")
    per_baby["accuracy_ci95"] = _bootstrap(
        lambda idx: float(correct[idx].mean()), len(babies), samples=bootstrap_samples, seed=seed
    )
    per_baby["ece_ci95"] = _bootstrap(
        lambda idx: metrics.expected_calibration_error(baby_labels[idx], probabilities[idx]),
        len(babies),
        samples=bootstrap_samples,
        seed=seed + 1,
        bias_corrected=True,
    )
    per_baby["ece_plain_mean"] = metrics.expected_calibration_error(baby_labels, metrics.sigmoid(means))

    # Per scan, every scan (also the early ones): intervals resample babies, not scans.
    scan_probabilities = metrics.sigmoid(calibrated)
    scan_correct = (scan_probabilities >= 0.5) == (labels == 1)
    index_of: dict[str, list[int]] = {}
    for index, key in enumerate(baby_keys):
        index_of.setdefault(key, []).append(index)
    keys = sorted(index_of)
    right = np.array([scan_correct[index_of[key]].sum() for key in keys], dtype=np.float64)
    counts = np.array([len(index_of[key]) for key in keys], dtype=np.float64)
    per_scan = {
        "count": len(labels),
        "accuracy": float(scan_correct.mean()) if len(labels) else None,
        "accuracy_ci95": _bootstrap(
            lambda idx: float(right[idx].sum() / counts[idx].sum()),
            len(keys),
            samples=bootstrap_samples,
            seed=seed + 2,
        ),
        "ece": metrics.expected_calibration_error(labels, scan_probabilities),
    }
    abstention = metrics.abstention_report(
        labels=labels,
        calibrated_logits=calibrated,
        baby_keys=baby_keys,
        weeks=weeks,
        min_gestational_week=min_gestational_week,
        margin=margin,
        stricter_margin=round(min(0.45, margin + 0.1), 4),
        disagreement_threshold=disagreement_threshold,
        margins=RISK_COVERAGE_MARGINS,
        scale_for_scans=calibration.scale,
    )
    return {
        "unit": "baby",
        "babies": len(babies) + gated_out,
        "babies_without_usable_scans": gated_out,
        "rule": {
            "min_gestational_week": min_gestational_week,
            "margin": margin,
            "disagreement_threshold": disagreement_threshold,
            "temperature": temperature,
            "baby_calibration": calibration.to_dict(),
        },
        "per_baby": per_baby,
        "per_scan": per_scan,
        "abstention": abstention,
        "correct": "".join("1" if ok else "0" for ok in correct),
        # Each baby's label ("1" male) and probability of male, in the same order: the gate
        # compares two versions' calibration on the same babies with them (``ml.gate``, rule 3).
        "baby_labels": "".join("1" if label == 1 else "0" for label in baby_labels),
        "baby_probabilities": [round(float(value), 6) for value in probabilities],
        "babies_digest": babies_digest([baby.key for baby in babies], baby_labels),
    }


def risk_coverage_row(evaluation: dict, margin: float) -> dict | None:
    """The row of the risk–coverage curve for ``margin`` (the nearest measured one within 0.005)."""
    rows = ((evaluation or {}).get("abstention") or {}).get("by_margin") or []
    best = min(rows, key=lambda row: abs(row["margin"] - margin), default=None)
    if best is None or abs(best["margin"] - margin) > 0.005:
        return None
    return best
