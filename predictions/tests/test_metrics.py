"""Metrics and temperature scaling against values worked out by hand."""

import numpy as np
import pytest

from ml import metrics


def test_roc_auc_counts_pairs_and_ties():
    assert metrics.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert metrics.roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert metrics.roc_auc([1, 1], [0.2, 0.9]) is None


def test_roc_curve_ends_at_the_corners():
    fpr, tpr = metrics.roc_curve([0, 1, 1, 0], [0.2, 0.9, 0.6, 0.7])
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)


def test_brier_ece_and_confusion():
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([0.1, 0.6, 0.8, 0.4])
    assert metrics.brier_score(labels, probabilities) == pytest.approx((0.01 + 0.36 + 0.04 + 0.36) / 4)
    assert metrics.confusion_matrix(labels, probabilities) == [[1, 1], [1, 1]]
    # Four bins of one: |0.1-0|, |0.6-0|, |0.8-1|, |0.4-1| averaged.
    assert metrics.expected_calibration_error(labels, probabilities) == pytest.approx(
        (0.1 + 0.6 + 0.2 + 0.6) / 4
    )
    assert metrics.expected_calibration_error(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.0)


def test_wilson_interval_contains_the_estimate_and_narrows():
    low, high = metrics.wilson_interval(90, 100)
    assert (
        low < 0.9 < high
        and high - low > metrics.wilson_interval(900, 1000)[1] - metrics.wilson_interval(900, 1000)[0]
    )
    assert metrics.wilson_interval(0, 0) == (0.0, 1.0)


def test_temperature_recovers_an_overconfident_network():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, 20_000)
    labels = (rng.random(20_000) < metrics.sigmoid(true_logits)).astype(int)
    temperature = metrics.fit_temperature(labels, true_logits * 3)
    assert temperature == pytest.approx(3.0, rel=0.05)
    before = metrics.expected_calibration_error(labels, metrics.sigmoid(true_logits * 3))
    after = metrics.expected_calibration_error(labels, metrics.sigmoid(true_logits * 3 / temperature))
    assert after < 0.02 < before


def test_per_baby_uses_the_mean_logit():
    report = metrics.evaluate(
        labels=np.array([1, 1, 0, 0]),
        logits=np.array([3.0, -1.0, -2.0, 0.5]),
        baby_keys=["a", "a", "b", "b"],
        gestational_weeks=[12, 12, 14, None],
    )
    assert report["per_scan"]["accuracy"] == pytest.approx(0.5)
    assert report["per_baby"]["accuracy"] == pytest.approx(1.0) and report["per_baby"]["count"] == 2
    assert report["per_scan_accuracy_by_week"] == {
        "12": {"count": 2, "accuracy": 0.5},
        "14": {"count": 1, "accuracy": 1.0},
    }


def test_bayes_oracle_thresholds_angles_per_scan_and_per_baby_mean():
    oracle = metrics.bayes_oracle(
        labels=np.array([1, 1, 0, 0]),
        measured_angles=np.array([40.0, 20.0, 10.0, 30.0]),
        baby_keys=["a", "a", "b", "b"],
        decision_angle=23.0,
    )
    assert oracle == {"per_scan_accuracy": 0.5, "per_baby_accuracy": 1.0, "babies": 2}


def test_bayes_oracle_weighs_each_angle_by_its_precision_when_asked():
    # Baby a: a noisy scan at 60 and a precise one at 10 -> plain mean 35 (male), weighted 12 (female).
    arguments = {
        "labels": np.array([0, 0]),
        "measured_angles": np.array([60.0, 10.0]),
        "baby_keys": ["a", "a"],
        "decision_angle": 23.0,
    }
    assert metrics.bayes_oracle(**arguments)["per_baby_accuracy"] == 0.0
    weighted = metrics.bayes_oracle(**arguments, scan_weights=np.array([1 / 144, 1 / 36]))
    assert weighted["per_baby_accuracy"] == 1.0


@pytest.mark.parametrize(
    ("week", "band"),
    [
        (None, "unknown"),
        (4, "<12"),
        (11, "<12"),
        (12, "12"),
        (13, "13-15"),
        (15, "13-15"),
        (16, "16+"),
        (40, "16+"),
    ],
)
def test_week_bands(week, band):
    assert metrics.week_band(week) == band


def _logit(p):
    return float(np.log(p / (1 - p)))


def test_week_band_report_per_scan():
    # Two week-11 scans (one right, one wrong), a week-12 scan at 55 %, three week-14 scans.
    probabilities = [0.9, 0.8, 0.55, 0.9, 0.1, 0.7]
    labels = np.array([1, 0, 1, 1, 0, 1])
    report = metrics.week_band_report(
        labels=labels,
        calibrated_logits=np.array([_logit(p) for p in probabilities]),
        weeks=[11, 11, 12, 14, 14, None],
        margin=0.1,
        min_gestational_week=12,
    )
    assert list(report) == ["<12", "12", "13-15", "unknown"]
    early = report["<12"]
    assert (early["count"], early["accuracy"], early["usable_share"]) == (2, 0.5, 0.0)
    assert early["mean_confidence"] == pytest.approx(0.85)
    assert early["ece"] == pytest.approx((abs(0.9 - 1) + abs(0.8 - 0)) / 2)
    # 55 % is within the margin of 0.5: that scan alone would not be answered.
    assert report["12"]["coverage"] == 0.0 and report["12"]["accuracy_answered"] is None
    assert report["12"]["usable_share"] == 1.0
    middle = report["13-15"]
    assert middle.pop("accuracy_ci95") == pytest.approx(metrics.wilson_interval(2, 2))
    assert middle == pytest.approx(
        {
            "count": 2,
            "accuracy": 1.0,
            "ece": 0.1,
            "mean_confidence": 0.9,
            "coverage": 1.0,
            "accuracy_answered": 1.0,
            "usable_share": 1.0,
        }
    )
    assert report["unknown"]["count"] == 1 and report["unknown"]["usable_share"] == 1.0


def _abstention(labels, logits, keys, weeks=None, **overrides):
    arguments = {
        "labels": np.array(labels),
        "calibrated_logits": np.array(logits, dtype=float),
        "baby_keys": keys,
        "weeks": weeks,
        "min_gestational_week": 12,
        "margin": 0.1,
        "stricter_margin": 0.2,
        "disagreement_threshold": 0.3,
        **overrides,
    }
    return metrics.abstention_report(**arguments)


def test_abstention_report_counts_coverage_and_accuracy_on_answered_babies():
    # a: 90 % male, right. b: 66 % male, wrong (a girl). c: 56 % male, uncertain at 0.1.
    # d: scans at 95 % and 10 %: they disagree. e: only a week-11 scan: too early.
    keys = ["a", "b", "c", "d", "d", "e"]
    labels = [1, 0, 1, 1, 1, 0]
    logits = [_logit(0.9), _logit(0.66), _logit(0.56), _logit(0.95), _logit(0.1), _logit(0.99)]
    weeks = [14, 16, 13, 12, 20, 11]
    report = _abstention(labels, logits, keys, weeks)
    assert (report["babies"], report["babies_without_usable_scans"], report["babies_considered"]) == (5, 1, 4)
    assert report["unit"] == "baby"
    at_margin = report["at_margin"]
    assert at_margin["answered"] == 2 and at_margin["coverage"] == 0.5 and at_margin["abstention_rate"] == 0.5
    assert at_margin["accuracy_answered"] == 0.5  # a right, b wrong
    assert (at_margin["cannot_tell_uncertain"], at_margin["cannot_tell_scans_disagree"]) == (1, 1)
    # c leans male (right), d's mean of logits leans male (right): abstaining cost two right answers.
    assert at_margin["accuracy_if_forced_on_cannot_tell"] == 1.0
    stricter = report["at_stricter_margin"]  # 66 % is now within 0.2 of a half as well
    assert (stricter["margin"], stricter["answered"], stricter["accuracy_answered"]) == (0.2, 1, 1.0)
    assert [row["margin"] for row in report["by_margin"]] == [0.0, 0.05, 0.1, 0.15, 0.2, 0.25]
    assert [row["answered"] for row in report["by_margin"]] == [3, 3, 2, 2, 1, 1]
    assert report["accuracy_if_always_answered"] == 0.75


def test_abstention_report_without_weeks_or_disagreement_check_uses_every_scan():
    keys = ["d", "d"]
    report = _abstention([1, 1], [_logit(0.97), _logit(0.1)], keys, None, disagreement_threshold=None)
    assert report["babies_without_usable_scans"] == 0
    # The mean logit of 97 % and 10 % is about 65 % male: answered once the disagreement check is off.
    assert report["at_margin"]["answered"] == 1 and report["at_margin"]["cannot_tell_scans_disagree"] == 0


def test_abstention_report_with_every_baby_too_early():
    report = _abstention([1], [2.0], ["a"], [10])
    assert report["babies_considered"] == 0 and report["at_margin"]["coverage"] is None
    assert report["accuracy_if_always_answered"] is None
