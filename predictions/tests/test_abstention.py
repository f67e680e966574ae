"""The one "female / male / cannot tell" rule: thresholds, disagreement, and what it refuses."""

import math
import os

import pytest

from ml.abstention import (
    CANNOT_TELL,
    FEMALE,
    MALE,
    SCANS_DISAGREE,
    UNCERTAIN,
    decide_for_baby,
    decide_for_baby_from_probabilities,
)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_a_clear_baby_is_answered_with_the_combined_probability():
    decision = decide_for_baby([logit(0.9), logit(0.8)], margin=0.1, disagreement_threshold=0.3)
    assert (decision.decision, decision.reason, decision.answered) == (MALE, None, True)
    # The combination rule is the mean of the calibrated logits, then the sigmoid.
    combined = (logit(0.9) + logit(0.8)) / 2
    assert decision.combined_logit == pytest.approx(combined)
    assert decision.probability_male == pytest.approx(1 / (1 + math.exp(-combined)))
    assert decision.scans == 2
    girl = decide_for_baby([logit(0.2)], margin=0.1, disagreement_threshold=0.3)
    assert (girl.decision, girl.leaning) == (FEMALE, FEMALE)


@pytest.mark.parametrize(
    ("probability", "margin", "expected"),
    [
        (0.55, 0.1, CANNOT_TELL),
        (0.45, 0.1, CANNOT_TELL),
        (0.65, 0.1, MALE),
        (0.35, 0.1, FEMALE),
        (0.65, 0.2, CANNOT_TELL),
        (0.75, 0.2, MALE),
        (0.5001, 0.0, MALE),  # margin 0: always answered
        (0.4999, 0.0, FEMALE),
    ],
)
def test_the_margin_around_a_half(probability, margin, expected):
    decision = decide_for_baby([logit(probability)], margin=margin, disagreement_threshold=0.3)
    assert decision.decision == expected
    assert decision.reason == (UNCERTAIN if expected == CANNOT_TELL else None)
    # Abstaining keeps the side it leant to, for the records and the metrics.
    assert decision.leaning == (MALE if probability >= 0.5 else FEMALE)


def probability_of(value: float) -> float:
    return decide_for_baby([value], margin=0.0, disagreement_threshold=None).probability_male


def logit_exactly_at(probability: float) -> float:
    """A logit whose probability, as the rule computes it, is exactly ``probability``.

    The analytic logit can miss it by a float step, so walk a few steps either way.
    """
    for direction in (math.inf, -math.inf):
        value = logit(probability)
        for _ in range(100):
            if probability_of(value) == probability:
                return value
            value = math.nextafter(value, direction)
    raise AssertionError(f"no logit gives exactly {probability}")


def logit_just_inside(edge: float) -> float:
    """The nearest logit towards 0 whose probability is strictly nearer a half than ``edge``'s."""
    value, at_edge = edge, probability_of(edge)
    while probability_of(value) == at_edge:
        value = math.nextafter(value, 0.0)
    return value


@pytest.mark.parametrize(("edge_probability", "side"), [(0.75, MALE), (0.25, FEMALE)])
def test_the_margin_is_strict_and_a_probability_on_its_edge_is_answered(edge_probability, side):
    margin = 0.25  # 0.25, 0.5 and 0.75 are exact in binary, so "on the edge" means exactly on it
    edge = logit_exactly_at(edge_probability)
    inside = logit_just_inside(edge)
    assert abs(probability_of(edge) - 0.5) == margin
    assert abs(probability_of(inside) - 0.5) < margin

    on_the_edge = decide_for_baby([edge], margin=margin, disagreement_threshold=None)
    just_inside = decide_for_baby([inside], margin=margin, disagreement_threshold=None)

    assert (on_the_edge.decision, on_the_edge.reason) == (side, None)
    assert (just_inside.decision, just_inside.reason, just_inside.leaning) == (CANNOT_TELL, UNCERTAIN, side)


def test_a_logit_of_zero_with_no_margin_is_answered_as_male():
    # A logit of exactly 0 is p = 0.5 exactly: with no margin it is answered, as male (p >= 0.5).
    assert decide_for_baby([0.0], margin=0.0).decision == MALE


def test_confident_scans_pointing_opposite_ways_disagree_even_when_the_mean_looks_sure():
    # 97 % male and 10 % male average (in logits) to about 65 % male: outside the margin.
    logits = [logit(0.97), logit(0.1)]
    assert decide_for_baby(logits, margin=0.1, disagreement_threshold=None).decision == MALE
    decision = decide_for_baby(logits, margin=0.1, disagreement_threshold=0.3)
    assert (decision.decision, decision.reason) == (CANNOT_TELL, SCANS_DISAGREE)
    assert decision.leaning == MALE


@pytest.mark.parametrize(
    ("probabilities", "threshold", "disagree"),
    [
        ([0.8, 0.2], 0.3, True),  # both exactly at 0.5 ± 0.3 (inclusive)
        ([0.79, 0.2], 0.3, False),
        ([0.9, 0.85, 0.15], 0.3, True),  # one dissenting scan is enough
        ([0.9, 0.85, 0.3], 0.3, False),  # a doubtful scan is not a disagreement
        ([0.7, 0.3], 0.15, True),
        ([0.9, 0.8], 0.3, False),  # both male
        ([0.99], 0.01, False),  # one scan cannot disagree with itself
    ],
)
def test_disagreement_threshold(probabilities, threshold, disagree):
    decision = decide_for_baby_from_probabilities(probabilities, margin=0.0, disagreement_threshold=threshold)
    assert (decision.reason == SCANS_DISAGREE) is disagree


def test_disagreement_is_reported_before_uncertainty():
    # 95 % and 5 %: the mean is a half, and the scans disagree; the latter is the useful reason.
    decision = decide_for_baby_from_probabilities([0.95, 0.05], margin=0.1, disagreement_threshold=0.3)
    assert decision.reason == SCANS_DISAGREE


def test_probabilities_and_logits_give_the_same_decision():
    probabilities = [0.7, 0.62, 0.81]
    from_probabilities = decide_for_baby_from_probabilities(probabilities, margin=0.1)
    from_logits = decide_for_baby([logit(p) for p in probabilities], margin=0.1)
    assert from_probabilities.decision == from_logits.decision == MALE
    assert from_probabilities.probability_male == pytest.approx(from_logits.probability_male)
    # 0 and 1 are clipped rather than turned into infinite logits.
    assert decide_for_baby_from_probabilities([1.0, 0.9]).decision == MALE


@pytest.mark.parametrize(
    ("logits", "options"),
    [
        ([], {}),
        ([float("nan")], {}),
        ([float("inf"), 1.0], {}),
        ([1.0], {"margin": -0.1}),
        ([1.0], {"margin": 0.5}),
        ([1.0], {"disagreement_threshold": 0.0}),
        ([1.0], {"disagreement_threshold": 0.6}),
    ],
)
def test_refuses_no_scans_non_numbers_and_settings_out_of_range(logits, options):
    with pytest.raises(ValueError):
        decide_for_baby(logits, **options)


def test_the_defaults_are_the_settings_defaults():
    """The module's defaults document the settings' defaults; keep them in step."""
    from django.conf import settings

    from ml import abstention

    assert (abstention.DEFAULT_MARGIN, abstention.DEFAULT_DISAGREEMENT_THRESHOLD) == (0.2, 0.3)
    if "PREDICTION_ABSTAIN_MARGIN" not in os.environ:
        assert settings.PREDICTION_ABSTAIN_MARGIN == abstention.DEFAULT_MARGIN
    if "PREDICTION_DISAGREEMENT_THRESHOLD" not in os.environ:
        assert settings.PREDICTION_DISAGREEMENT_THRESHOLD == abstention.DEFAULT_DISAGREEMENT_THRESHOLD
