"""The share of wrong labels in a batch, estimated from a calibrated model that never saw them."""

import numpy as np
import pytest

from ml.label_noise import estimate_label_error_rate


def batch(babies: int, wrong_share: float, seed: int = 1) -> tuple[np.ndarray, float]:
    """Label disagreements of a calibrated model on ``babies`` labels, ``wrong_share`` flipped at random.

    The model's probability of male is confident (80-99 % one way), and each baby's true sex is
    drawn from it: calibrated by construction. Returns the disagreements and the true share.
    """
    rng = np.random.default_rng(seed)
    leaning_male = rng.random(babies) < 0.5
    probability_male = np.where(leaning_male, rng.uniform(0.8, 0.99, babies), rng.uniform(0.01, 0.2, babies))
    is_male = rng.random(babies) < probability_male
    flipped = rng.random(babies) < wrong_share
    labelled_male = is_male ^ flipped
    return np.where(labelled_male, 1 - probability_male, probability_male), float(flipped.mean())


@pytest.mark.parametrize("wrong_share", [0.0, 0.1, 0.4])
def test_the_estimate_finds_the_share_of_flipped_labels(wrong_share):
    disagreements, actual = batch(2000, wrong_share)

    estimate = estimate_label_error_rate(disagreements)

    assert estimate.babies == 2000
    assert estimate.rate == pytest.approx(actual, abs=0.03)
    assert estimate.lower_bound <= estimate.rate <= estimate.upper_bound
    assert estimate.lower_bound <= actual + 0.01 and actual - 0.01 <= estimate.upper_bound


def test_a_flood_is_told_apart_from_the_usual_mistakes_on_a_round_of_answers():
    usual = estimate_label_error_rate(batch(200, 0.1)[0])
    flood = estimate_label_error_rate(batch(200, 0.4, seed=2)[0])
    assert usual.upper_bound < flood.lower_bound
    assert flood.lower_bound > 0.25 > usual.lower_bound


def test_few_babies_give_a_wide_interval_and_the_figures_repeat():
    few = estimate_label_error_rate(batch(40, 0.1)[0])
    assert few.upper_bound - few.lower_bound > 0.1
    assert estimate_label_error_rate(batch(40, 0.1)[0]) == few
    assert few.to_dict()["rate"] == round(few.rate, 4)
    with pytest.raises(ValueError, match="at least one"):
        estimate_label_error_rate([])
