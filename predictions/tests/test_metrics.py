"""Metrics and temperature scaling against values worked out by hand."""

import numpy as np
import pytest

from predictions.ml import metrics


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
