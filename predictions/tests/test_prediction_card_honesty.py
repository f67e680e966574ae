"""The prediction card says only what the active model has earned (issue points 6 and 8).

A version whose per-baby accuracy on babies it had not seen is clearly above chance (the quality
gate's Wilson rule) shows its percentage and the risk–coverage figures for the cannot-tell rule in
force *now*; a near-chance or never-measured version shows its leaning in words, no percentage,
and a sentence a parent understands. The tiny exact model (``predict_support``) gives a grey scan
of value ``v`` the logit ``10 * v / 255 - 5``.
"""

import html
import re

import pytest
from django.urls import reverse

from babies.tests.factories import BabyFactory
from ml.evaluation import RISK_COVERAGE_MARGINS, babies_digest
from predictions.models import ModelVersion
from predictions.selectors import predictions_with_versions
from predictions.services import prediction_create
from predictions.templatetags.prediction_tags import ModelTrust, model_version_trust
from predictions.tests.predict_support import grey_scan, tiny_model_version

pytestmark = pytest.mark.django_db

GIRLISH = 97  # logit -1.20: 77 % girl, answered at the default margin 0.2
CLEAR_BOY = 230  # 98 % boy
DOUBTFUL = 130  # 55 % boy: "cannot tell yet", too close to 50/50
LOW_WARNING = (
    "This model has not been shown to do better than a coin toss on babies it had not seen, "
    "so treat this as a guess."
)
UNMEASURED_WARNING = (
    "This model's accuracy has never been measured on babies it had not seen, so treat this as a guess."
)


def curve_row(margin: float) -> dict:
    """A made-up risk–coverage row: the wider the margin, the fewer answers and the more right."""
    return {
        "margin": margin,
        "answered": round(300 * (1 - margin)),
        "coverage": round(1 - margin, 4),
        "accuracy_answered": round(0.85 + margin / 5, 4),
        "accuracy_if_forced_on_cannot_tell": 0.55,
    }


def evaluation(
    *,
    right: int,
    total: int = 300,
    disagreement_threshold: float | None = 0.3,
    margins=RISK_COVERAGE_MARGINS,
) -> dict:
    """A ``metrics["evaluation"]`` of the shape ``ml.evaluation`` writes."""
    keys = [f"card-test-{index:04d}" for index in range(total)]
    return {
        "set": {"kind": "held_out_test", "name": "this version's held-out test babies"},
        "unit": "baby",
        "babies": total,
        "babies_without_usable_scans": 0,
        "rule": {"min_gestational_week": 12, "margin": 0.2, "disagreement_threshold": disagreement_threshold},
        "per_baby": {"count": total, "accuracy": right / total, "accuracy_ci95": None},
        "abstention": {
            "min_gestational_week": 12,
            "margin": 0.2,
            "disagreement_threshold": disagreement_threshold,
            "babies": total,
            "babies_considered": total,
            "by_margin": [curve_row(margin) for margin in margins],
        },
        "correct": "1" * right + "0" * (total - right),
        "babies_digest": babies_digest(keys, [0] * total),
    }


def active_version(metrics: dict, *, is_synthetic: bool = False) -> ModelVersion:
    """Switched on without the quality gate: a near-chance version must be shown honestly anyway."""
    version = tiny_model_version(metrics=metrics, is_synthetic=is_synthetic, activate=False)
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    version.refresh_from_db()
    return version


def card_text(client, baby) -> str:
    """The baby's prediction card on the dashboard, as text with the whitespace collapsed."""
    page = client.get(reverse("babies:dashboard")).content.decode()
    match = re.search(rf'<section class="prediction[^"]*" id="prediction-{baby.pk}".*?</section>', page, re.S)
    assert match, "no prediction card for this baby on the dashboard"
    return " ".join(html.unescape(match.group(0)).replace("\xa0", " ").split())


# --- A measured version: its percentage, and the figures for the rule in force now ------------
def test_a_measured_version_quotes_the_coverage_for_the_margin_in_force_now(parent_client, baby, settings):
    active_version({"evaluation": evaluation(right=270)})
    grey_scan(baby, GIRLISH)
    prediction = prediction_create(baby=baby)
    assert prediction.answer == "female"

    card = card_text(parent_client, baby)
    assert f"Girl — {prediction.confidence_percent} % likely" in card
    assert (
        "On 300 babies it had never seen, it gave an answer for 80 % and was right for 89 % of those; "
        "for the others it said it could not tell." in card
    )
    assert 'data-testid="prediction-trust"' not in card

    # The operator widens the margin: the card follows at once, with no retraining.
    settings.PREDICTION_ABSTAIN_MARGIN = 0.3
    card = card_text(parent_client, baby)
    assert "it gave an answer for 70 % and was right for 91 % of those" in card
    assert "gave an answer for 80 %" not in card


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        # The curve was measured with another disagreement threshold: its figures describe another rule.
        ("PREDICTION_DISAGREEMENT_THRESHOLD", 0.4),
        # No row of the curve is within 0.005 of this margin.
        ("PREDICTION_ABSTAIN_MARGIN", 0.475),
        # Scans from other weeks count now than when it was measured.
        ("PREDICTION_MIN_GESTATIONAL_WEEK", 16),
    ],
)
def test_coverage_is_not_quoted_for_a_rule_that_was_not_measured(
    parent_client, baby, settings, setting, value
):
    active_version({"evaluation": evaluation(right=270)})
    grey_scan(baby, CLEAR_BOY)
    prediction = prediction_create(baby=baby)
    setattr(settings, setting, value)

    card = card_text(parent_client, baby)
    assert "gave an answer for" not in card
    assert "right for 90 % of 300 babies it had not seen in training." in card
    assert f"Boy — {prediction.confidence_percent} % likely" in card


# --- A near-chance version: words, no percentage -------------------------------------------
def test_a_near_chance_version_shows_a_leaning_and_no_percentage(parent_client, baby):
    active_version({"evaluation": evaluation(right=153)})  # 51 % of 300: the lower bound is 45 %
    grey_scan(baby, GIRLISH)
    assert prediction_create(baby=baby).answer == "female"

    card = card_text(parent_client, baby)
    assert "Leaning girl — a guess, not a prediction" in card
    assert LOW_WARNING in card
    assert "% likely" not in card
    assert "%" not in card  # neither its 77 % nor its 51 %, nor coverage figures
    assert "gave an answer for" not in card


def test_an_old_version_is_judged_by_the_same_rule_from_its_calibrated_accuracy(parent_client, baby):
    active_version({"calibrated": {"per_baby": {"accuracy": 0.55, "count": 300}}})
    grey_scan(baby, CLEAR_BOY)
    prediction_create(baby=baby)
    card = card_text(parent_client, baby)
    assert "Leaning boy — a guess, not a prediction" in card
    assert LOW_WARNING in card


def test_the_synthetic_banner_and_the_stale_notice_stay_with_a_near_chance_version(parent_client, baby):
    active_version({"evaluation": evaluation(right=153)}, is_synthetic=True)
    grey_scan(baby, CLEAR_BOY)
    prediction_create(baby=baby)
    grey_scan(baby, GIRLISH)

    card = card_text(parent_client, baby)
    assert "Demo model trained on synthetic images.</strong> Its answer says nothing about your baby." in card
    assert "Leaning boy — a guess, not a prediction" in card
    assert LOW_WARNING in card
    stale = re.search(r'<p [^>]*data-testid="prediction-stale"[^>]*>', card).group(0)
    assert " hidden" not in stale
    assert "Predict again to use all 2 scans." in card


# --- A version never measured -----------------------------------------------------------------
@pytest.mark.parametrize(
    "metrics",
    [
        {},
        # An accuracy with no count of babies bounds nothing.
        {"calibrated": {"per_baby": {"accuracy": 0.9}}},
    ],
)
def test_an_unmeasured_version_shows_a_leaning_and_says_it_was_never_measured(parent_client, baby, metrics):
    active_version(metrics)
    grey_scan(baby, CLEAR_BOY)
    prediction_create(baby=baby)

    card = card_text(parent_client, baby)
    assert "Leaning boy — a guess, not a prediction" in card
    assert UNMEASURED_WARNING in card
    assert "%" not in card


# --- "Cannot tell yet" -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "reason"),
    [((DOUBTFUL,), "too close to 50/50 to be worth giving."), ((250, 245, 40), "point different ways")],
)
def test_cannot_tell_with_a_near_chance_version_gives_no_advice_that_cannot_help(
    parent_client, baby, values, reason
):
    active_version({"evaluation": evaluation(right=153)})
    for value in values:
        grey_scan(baby, value)
    assert prediction_create(baby=baby).is_cannot_tell

    card = card_text(parent_client, baby)
    assert "Cannot tell yet" in card
    assert reason in card
    assert "This model is not good enough to tell, so another scan would only give a guess." in card
    assert "profile" not in card and "later week" not in card
    # No answer to treat as a guess: the warning is the reason alone.
    assert "This model has not been shown to do better than a coin toss on babies it had not seen." in card
    assert "treat this as a guess" not in card


def test_cannot_tell_with_an_unmeasured_version_says_nobody_knows(parent_client, baby):
    active_version({})
    grey_scan(baby, DOUBTFUL)
    assert prediction_create(baby=baby).is_cannot_tell

    card = card_text(parent_client, baby)
    assert (
        "Nobody knows whether this model is good enough to tell, so another scan would only give a guess."
        in card
    )
    assert "This model's accuracy has never been measured on babies it had not seen." in card
    assert "profile" not in card


def test_cannot_tell_with_a_measured_version_still_suggests_a_clearer_scan(parent_client, baby):
    active_version({"evaluation": evaluation(right=270)})
    grey_scan(baby, DOUBTFUL)
    assert prediction_create(baby=baby).is_cannot_tell

    card = card_text(parent_client, baby)
    assert "A clear side (profile) view of the baby, or a scan from a later week, may give an answer." in card
    assert "coin toss" not in card and "never been measured" not in card


# --- The helper's rule, at the gate's boundary ------------------------------------------------
@pytest.mark.parametrize(
    ("metrics", "level"),
    [
        ({"evaluation": evaluation(right=70, total=100)}, ModelTrust.MEASURED),  # lower bound 60.4 %
        ({"evaluation": evaluation(right=69, total=100)}, ModelTrust.LOW),  # lower bound 59.4 %
        ({"calibrated": {"per_baby": {"accuracy": 0.862, "count": 300}}}, ModelTrust.MEASURED),
        ({"calibrated": {"per_baby": {"accuracy": 0.862}}}, ModelTrust.UNMEASURED),
        ({"evaluation": {"set": {"kind": "synthetic"}}}, ModelTrust.UNMEASURED),
        ({}, ModelTrust.UNMEASURED),
    ],
)
def test_the_trust_level_follows_the_quality_gate_rule(metrics, level):
    assert model_version_trust(ModelVersion(metrics=metrics)).level == level


def test_each_baby_card_follows_its_own_predictions_version(parent_client, user):
    """Two babies predicted by different versions: each card speaks for the version that answered."""
    measured = active_version({"evaluation": evaluation(right=270)})
    first = BabyFactory(owner=user)
    grey_scan(first, CLEAR_BOY)
    prediction_create(baby=first)
    ModelVersion.objects.filter(pk=measured.pk).update(is_active=False)
    active_version({"evaluation": evaluation(right=153)})
    second = BabyFactory(owner=user)
    grey_scan(second, CLEAR_BOY)
    prediction_create(baby=second)

    assert "% likely" in card_text(parent_client, first)
    assert "% likely" not in card_text(parent_client, second)


def test_cards_read_a_versions_metrics_without_the_gates_per_baby_lists(baby):
    """The database leaves out what only the gate reads; the card's trust is the same."""
    correct = "1" * 270 + "0" * 30
    evaluation = {
        "per_baby": {"accuracy": 0.9, "count": 300},
        "correct": correct,
        "baby_labels": "10" * 150,
        "baby_probabilities": [0.25] * 300,
    }
    version = tiny_model_version(metrics={"evaluation": evaluation, "temperature": 1.5})
    grey_scan(baby, 200)
    prediction = prediction_create(baby=baby)

    loaded = predictions_with_versions([prediction.pk])[prediction.pk].model_version

    assert loaded.card_metrics == {
        "evaluation": {"per_baby": {"accuracy": 0.9, "count": 300}, "correct": correct},
        "temperature": 1.5,
    }
    assert "metrics" in loaded.get_deferred_fields()
    assert model_version_trust(loaded) == model_version_trust(ModelVersion.objects.get(pk=version.pk))
    assert model_version_trust(loaded).level == ModelTrust.MEASURED
