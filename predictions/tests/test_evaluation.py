"""Per-baby evaluation: the calibration by number of scans, intervals over babies, risk–coverage."""

import math

import numpy as np
import pytest

from ml.abstention import decide_for_baby
from ml.evaluation import (
    BabyCalibration,
    evaluate_babies,
    fit_baby_calibration,
    risk_coverage_row,
)


def _babies(n: int, *, scans: int, seed: int = 0, shared: float = 1.5, own: float = 1.0):
    """Babies whose scans share a latent score: a scan alone is calibrated, the mean is not.

    Each baby has z ~ N(+-1, shared^2) and each scan shows z + N(0, own^2); the per-scan logit
    is the exact log-likelihood ratio of one scan, so each scan is perfectly calibrated.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    latent = rng.normal(np.where(labels == 1, 1.0, -1.0), shared)
    variance = shared**2 + own**2
    readings = latent[:, None] + rng.normal(0, own, (n, scans))
    logits = 2 * readings / variance  # LLR of N(+1, v) against N(-1, v)
    keys = [f"b{i:05d}" for i in range(n) for _ in range(scans)]
    return np.repeat(labels, scans), logits.reshape(-1), keys


def test_the_per_baby_scale_is_fitted_by_number_of_scans_and_fixes_the_mean():
    labels, logits, keys = _babies(4000, scans=3)
    calibration = fit_baby_calibration(
        labels=labels, calibrated_logits=logits, baby_keys=keys, weeks=None, min_gestational_week=12
    )
    # Theory: the LLR of the mean of 3 readings is (s^2 + o^2) / (s^2 + o^2 / 3) times the mean
    # of the per-scan LLRs = 3.25 / 2.5833 = 1.258.
    assert calibration.scale(3) == pytest.approx(1.258, abs=0.08)
    assert calibration.scale(1) == 1.0 and calibration.scale(7) == calibration.scale(3)
    assert BabyCalibration.from_dict(calibration.to_dict()) == BabyCalibration(
        {3: pytest.approx(calibration.scale(3), abs=1e-6)}
    )
    assert BabyCalibration.from_dict({}).scale(3) == 1.0
    test_labels, test_logits, test_keys = _babies(4000, scans=3, seed=1)
    common = {
        "labels": test_labels,
        "raw_logits": test_logits,
        "baby_keys": test_keys,
        "weeks": None,
        "temperature": 1.0,
        "min_gestational_week": 12,
        "margin": 0.2,
        "disagreement_threshold": None,
        "bootstrap_samples": 200,
    }
    scaled = evaluate_babies(calibration=calibration, **common)
    plain = evaluate_babies(calibration=BabyCalibration(), **common)
    # The plain mean is under-confident for a baby; the scale makes the per-baby ECE small.
    assert scaled["per_baby"]["ece"] < 0.02 < plain["per_baby"]["ece"]
    assert scaled["per_baby"]["ece_plain_mean"] == pytest.approx(plain["per_baby"]["ece"])
    # A scale never changes which side a baby is on.
    assert scaled["correct"] == plain["correct"] and scaled["babies_digest"] == plain["babies_digest"]


def test_intervals_resample_babies_and_the_curve_reports_the_declined():
    labels, logits, keys = _babies(1500, scans=3, seed=2)
    report = evaluate_babies(
        labels=labels,
        raw_logits=logits,
        baby_keys=keys,
        weeks=None,
        temperature=1.0,
        calibration=BabyCalibration(),
        min_gestational_week=12,
        margin=0.2,
        disagreement_threshold=None,
        bootstrap_samples=400,
    )
    scan = report["per_scan"]
    low, high = scan["accuracy_ci95"]
    assert low < scan["accuracy"] < high
    # A binomial interval that took the 4,500 scans as independent would be narrower: the scans
    # of one baby share its latent score.
    p, n = scan["accuracy"], scan["count"]
    naive_width = 2 * 1.96 * math.sqrt(p * (1 - p) / n)
    assert high - low > 1.15 * naive_width
    row = risk_coverage_row(report, 0.2)
    assert row["margin"] == 0.2 and 0 < row["coverage"] < 1
    assert (
        row["accuracy_answered"] > report["per_baby"]["accuracy"] > row["accuracy_if_forced_on_cannot_tell"]
    )
    assert risk_coverage_row(report, 0.123)["margin"] == 0.12  # the nearest measured margin
    assert risk_coverage_row(report, 0.47) is None  # never one that was not measured
    margins = [row["margin"] for row in report["abstention"]["by_margin"]]
    assert margins[:3] == [0.0, 0.01, 0.02] and margins[-1] == 0.45
    coverages = [row["coverage"] for row in report["abstention"]["by_margin"]]
    assert coverages == sorted(coverages, reverse=True)


def test_early_scans_are_left_out_as_the_web_leaves_them_out():
    report = evaluate_babies(
        labels=[1, 1, 0, 0],
        raw_logits=[3.0, -3.0, -2.0, -2.0],
        baby_keys=["a", "a", "b", "b"],
        weeks=[11, 14, 10, 11],
        temperature=1.0,
        calibration=BabyCalibration(),
        min_gestational_week=12,
        margin=0.1,
        disagreement_threshold=0.3,
        bootstrap_samples=10,
    )
    # Baby "a" keeps only its week-14 scan (wrong side); baby "b" has no usable scan at all.
    assert report["babies"] == 2 and report["babies_without_usable_scans"] == 1
    assert report["correct"] == "0" and report["per_baby"]["count"] == 1


def test_decide_for_baby_applies_the_scale_to_the_mean():
    plain = decide_for_baby([1.0, 1.0], margin=0.0, disagreement_threshold=None)
    scaled = decide_for_baby([1.0, 1.0], margin=0.0, disagreement_threshold=None, scale=1.5)
    assert plain.combined_logit == pytest.approx(1.0) and scaled.combined_logit == pytest.approx(1.5)
    assert scaled.probability_male > plain.probability_male and scaled.leaning == plain.leaning
    with pytest.raises(ValueError, match="positive"):
        decide_for_baby([1.0], scale=0.0)


def test_the_ece_interval_brackets_the_ece():
    """Resampling always adds ECE; the interval is corrected for that bias, so it holds the value."""
    labels, logits, keys = _babies(3000, scans=3, seed=3)
    calibration = fit_baby_calibration(
        labels=labels, calibrated_logits=logits, baby_keys=keys, weeks=None, min_gestational_week=12
    )
    report = evaluate_babies(
        labels=labels,
        raw_logits=logits,
        baby_keys=keys,
        weeks=None,
        temperature=1.0,
        calibration=calibration,
        min_gestational_week=12,
        margin=0.2,
        disagreement_threshold=None,
        bootstrap_samples=300,
    )
    low, high = report["per_baby"]["ece_ci95"]
    assert 0.0 <= low <= report["per_baby"]["ece"] <= high
