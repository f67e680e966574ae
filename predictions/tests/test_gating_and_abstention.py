"""The parent-facing prediction flow: gating by gestational week, and "cannot tell yet".

The tiny exact model (``predict_support``) gives a grey scan of value ``v`` the logit
``10 * v / 255 - 5``, so every probability below is known before the model runs and the
thresholds can be tested on both sides.
"""

import datetime
import math

import pytest
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from babies.tests.factories import BabyFactory
from ml.litert import LiteRTModel
from predictions import selectors
from predictions.models import Prediction
from predictions.services import PredictionError, prediction_create
from predictions.tests.predict_support import expected_logit, grey_scan, tiny_model_version

pytestmark = pytest.mark.django_db

BRIGHT, DARK = 230, 20  # about 98 % boy / 98 % girl at temperature 1


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@pytest.fixture
def model_version(db):
    return tiny_model_version(temperature=1.0)


@pytest.fixture
def batches(monkeypatch):
    """The batch shapes the model was asked to run."""
    seen = []
    original = LiteRTModel.logits

    def spy(self, batch):
        seen.append(batch.shape[0])
        return original(self, batch)

    monkeypatch.setattr(LiteRTModel, "logits", spy)
    return seen


def dashboard(client) -> str:
    return client.get(reverse("babies:dashboard")).content.decode()


# --- Gating by gestational week ------------------------------------------------------------
def test_a_scan_below_the_minimum_week_is_left_out_with_its_week(baby, model_version, batches):
    early = grey_scan(baby, DARK, gestational_week=10)  # would say girl
    usable = grey_scan(baby, BRIGHT, gestational_week=20)

    prediction = prediction_create(baby=baby)

    assert batches == [1]  # the early scan never reached the model
    assert prediction.scan_ids == [early.pk, usable.pk]
    assert prediction.scan_ids_used == [usable.pk]
    assert prediction.scan_errors == [
        {
            "scan_id": early.pk,
            "reason": "too_early",
            "week": 10,
            "minimum_week": 12,
            "error": "taken at week 10; predictions need week 12 or later",
        }
    ]
    assert prediction.answer == "male"
    assert prediction.probability_male == pytest.approx(sigmoid(expected_logit(BRIGHT)), abs=0.01)


@pytest.mark.parametrize(
    ("minimum", "week", "used"),
    [(12, 12, True), (12, 11, False), (14, 13, False), (14, 14, True), (10, 10, True)],
)
def test_the_minimum_week_comes_from_the_settings_and_is_inclusive(
    baby, model_version, settings, minimum, week, used
):
    settings.PREDICTION_MIN_GESTATIONAL_WEEK = minimum
    gated = grey_scan(baby, DARK, gestational_week=week)
    grey_scan(baby, BRIGHT, gestational_week=30)

    prediction = prediction_create(baby=baby)

    assert (gated.pk in prediction.scan_ids_used) is used
    assert [entry["scan_id"] for entry in prediction.scan_errors] == ([] if used else [gated.pk])


def test_a_scan_without_a_week_counts(born_baby, model_version):
    # A born baby gets no default week (the upload date says nothing about the scan's date).
    scan = grey_scan(born_baby, BRIGHT)
    assert scan.gestational_week is None
    prediction = prediction_create(baby=born_baby)
    assert prediction.scan_ids_used == [scan.pk]


def test_all_scans_too_early_runs_no_model_and_writes_no_row(baby, db, batches):
    # No active model at all: the gate answers first, with the reason that helps the parent.
    grey_scan(baby, BRIGHT, gestational_week=9)
    grey_scan(baby, DARK, gestational_week=11)

    with pytest.raises(PredictionError) as error:
        prediction_create(baby=baby)

    assert error.value.code == "too_early"
    assert "All 2 scans" in error.value.message
    assert "were taken before week 12 (weeks 9, 11)" in error.value.message
    assert "need week 12 or later" in error.value.message
    assert batches == []
    assert not Prediction.objects.exists()


def test_all_too_early_through_the_view_is_a_message_not_a_500(parent_client, baby, model_version):
    grey_scan(baby, BRIGHT, gestational_week=10)

    response = parent_client.post(reverse("predictions:predict", args=[baby.pk]), follow=True)

    assert response.status_code == 200
    texts = [str(message) for message in response.context["messages"]]
    assert len(texts) == 1
    assert texts[0].startswith(
        f"The scan of {baby.display_name} was taken at week 10; predictions need week 12"
    )
    assert not Prediction.objects.exists()
    # Even before anyone presses Predict, the card says why a prediction would not work.
    page = dashboard(parent_client)
    assert 'data-testid="prediction-too-early"' in page
    assert "Your scan was taken before week 12" in page
    assert "Scan 1: This scan was taken at week 10" not in page  # said once, by the hint


def test_the_dashboard_names_the_too_early_scan_that_was_left_out(parent_client, baby, model_version):
    grey_scan(baby, BRIGHT, gestational_week=20)
    grey_scan(baby, DARK, gestational_week=10)
    prediction_create(baby=baby)

    page = dashboard(parent_client)

    assert 'data-testid="prediction-left-out"' in page
    assert "Scan 2 was taken at week 10; predictions need week 12 or later." in page
    assert 'data-testid="prediction-too-early"' not in page  # one scan was usable


# --- "Cannot tell yet": the margin around 50 % -------------------------------------------------
@pytest.mark.parametrize("value", [150, 100])
def test_the_margin_decides_on_both_sides_of_its_edge(baby, model_version, settings, value):
    grey_scan(baby, value)
    distance = abs(sigmoid(expected_logit(value)) - 0.5)  # 0.34 for 150, 0.12 for 100 (girl side)

    settings.PREDICTION_ABSTAIN_MARGIN = distance + 0.005
    abstained = prediction_create(baby=baby)
    settings.PREDICTION_ABSTAIN_MARGIN = distance - 0.005
    answered = prediction_create(baby=baby)

    assert (abstained.answer, abstained.abstain_reason) == ("cannot_tell", "uncertain")
    expected_side = "male" if value > 127.5 else "female"
    assert abstained.predicted_sex == expected_side  # the leaning is kept for the record
    assert abstained.probability_male == pytest.approx(answered.probability_male)
    assert (answered.answer, answered.abstain_reason) == (expected_side, "")
    # Each row keeps the setting it was decided with.
    assert abstained.abstain_margin == pytest.approx(distance + 0.005)
    assert answered.abstain_margin == pytest.approx(distance - 0.005)
    assert answered.disagreement_threshold == 0.3


def test_with_the_default_margin_a_near_even_scan_cannot_tell(baby, model_version, settings):
    assert settings.PREDICTION_ABSTAIN_MARGIN == 0.2
    grey_scan(baby, 130)  # logit 0.098 -> 52 % boy
    prediction = prediction_create(baby=baby)
    assert prediction.answer == Prediction.Answer.CANNOT_TELL
    assert prediction.abstain_reason == Prediction.AbstainReason.UNCERTAIN
    assert prediction.is_cannot_tell


# --- "Cannot tell yet": scans that disagree --------------------------------------------------
def test_confident_scans_of_opposite_sexes_cannot_tell_even_when_the_mean_looks_sure(baby, model_version):
    # Two clear boys and one clear girl: the mean says 88 % boy, one clear scan contradicts it.
    for value in (250, 245, 40):
        grey_scan(baby, value)

    prediction = prediction_create(baby=baby)

    assert prediction.probability_male > 0.85
    assert (prediction.answer, prediction.abstain_reason) == ("cannot_tell", "scans_disagree")
    assert prediction.predicted_sex == "male"


def test_the_disagreement_threshold_comes_from_the_settings(baby, model_version, settings):
    for value in (250, 245, 40):  # 99.2 % boy, 98.9 % boy, 3.1 % boy
        grey_scan(baby, value)
    # Now "disagree" needs a scan at 1 % boy or less: 3.1 % is not confident enough.
    settings.PREDICTION_DISAGREEMENT_THRESHOLD = 0.49
    prediction = prediction_create(baby=baby)
    assert (prediction.answer, prediction.abstain_reason) == ("male", "")


def test_a_too_early_scan_cannot_make_the_scans_disagree(baby, model_version):
    grey_scan(baby, BRIGHT, gestational_week=20)
    grey_scan(baby, DARK, gestational_week=10)
    prediction = prediction_create(baby=baby)
    assert prediction.answer == "male"


def test_two_doubtful_scans_are_uncertain_not_disagreeing(baby, model_version):
    grey_scan(baby, 140)  # 62 % boy
    grey_scan(baby, 115)  # 39 % boy
    prediction = prediction_create(baby=baby)
    assert (prediction.answer, prediction.abstain_reason) == ("cannot_tell", "uncertain")


# --- What the parent sees -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "sentence"),
    [((130,), "too close to 50/50"), ((250, 245, 40), "point different ways")],
)
def test_cannot_tell_is_shown_with_a_suggestion_and_no_percentage(
    parent_client, baby, model_version, values, sentence
):
    for value in values:
        grey_scan(baby, value)

    response = parent_client.post(reverse("predictions:predict", args=[baby.pk]), follow=True)

    texts = [str(message) for message in response.context["messages"]]
    assert texts == [f"Prediction for {baby.display_name}: cannot tell yet."]
    page = response.content.decode()
    assert 'data-answer="cannot_tell"' in page
    assert "Cannot tell yet" in page
    assert sentence in page
    assert "profile" in page and "later week" in page
    assert "% likely" not in page


def test_an_answer_is_shown_as_before(parent_client, baby, model_version):
    grey_scan(baby, BRIGHT)
    response = parent_client.post(reverse("predictions:predict", args=[baby.pk]), follow=True)
    page = response.content.decode()
    assert 'data-answer="male"' in page
    assert "Cannot tell yet" not in page
    assert "Boy — 98&nbsp;% likely" in page


# --- The outcome e-mail ----------------------------------------------------------------------
def test_no_was_it_right_email_after_cannot_tell(model_version, settings):
    settings.OUTCOME_EMAIL_DELAY_DAYS = 7
    due = timezone.localdate() - datetime.timedelta(days=10)
    answered = BabyFactory(due_date=due)
    grey_scan(answered, BRIGHT)
    prediction_create(baby=answered)
    abstained = BabyFactory(due_date=due)
    grey_scan(abstained, 130)
    prediction_create(baby=abstained)
    # Answered first, "cannot tell" later: the latest prediction is the one the e-mail would ask about.
    answered_then_abstained = BabyFactory(due_date=due)
    grey_scan(answered_then_abstained, BRIGHT)
    prediction_create(baby=answered_then_abstained)
    grey_scan(answered_then_abstained, 20)
    assert prediction_create(baby=answered_then_abstained).is_cannot_tell

    assert list(selectors.babies_due_outcome_email()) == [answered]
    call_command("send_outcome_emails", stdout=None)
    assert [message.to for message in mail.outbox] == [[answered.owner.email]]


# --- The honest numbers: per week band and "cannot tell" ------------------------------------
HONEST_METRICS = {
    "calibrated": {"per_baby": {"accuracy": 0.862, "count": 300}},
    "week_bands": {
        "unit": "scan",
        "margin": 0.1,
        "min_gestational_week": 12,
        "bands": {
            "<12": {"count": 40, "accuracy": 0.61, "coverage": 0.35, "accuracy_answered": 0.7, "ece": 0.081},
            "16+": {"count": 120, "accuracy": 0.93, "coverage": 0.9, "accuracy_answered": 0.96, "ece": 0.021},
        },
    },
    "abstention": {
        "min_gestational_week": 12,
        "margin": 0.1,
        "disagreement_threshold": 0.3,
        "babies": 100,
        "babies_without_usable_scans": 4,
        "accuracy_if_always_answered": 0.88,
        "at_margin": {"margin": 0.1, "coverage": 0.81, "accuracy_answered": 0.94},
        "by_margin": [
            {"margin": 0.0, "answered": 93, "coverage": 0.97, "accuracy_answered": 0.89},
            {"margin": 0.1, "answered": 78, "coverage": 0.81, "accuracy_answered": 0.94},
        ],
    },
}


def test_the_model_version_admin_shows_bands_and_the_abstention_table(staff_client):
    version = tiny_model_version(metrics=HONEST_METRICS)
    page = staff_client.get(
        reverse("admin:predictions_modelversion_change", args=[version.pk])
    ).content.decode()
    assert 'data-testid="model-version-honesty"' in page
    assert '<tr data-band="&lt;12">' in page and "0.081" in page and "35 %" in page
    assert '<tr data-configured="true">' in page and "0.1 (configured)" in page and "94 %" in page
    # An older version without these metrics still renders.
    older = tiny_model_version(name="Older", metrics={"calibrated": {}}, activate=False)
    page = staff_client.get(
        reverse("admin:predictions_modelversion_change", args=[older.pk])
    ).content.decode()
    assert "Not measured for this version" in page


def test_parents_see_coverage_and_accuracy_when_answered(parent_client, baby, db, settings):
    settings.PREDICTION_ABSTAIN_MARGIN = 0.1
    tiny_model_version(metrics=HONEST_METRICS)
    grey_scan(baby, BRIGHT)
    prediction_create(baby=baby)
    page = dashboard(parent_client)
    assert "On 96 babies it had never seen, it gave an answer for 81&nbsp;% and was right for 94&nbsp;%" in (
        page
    )
    # The margin in force now was never measured: no coverage figures, the plain accuracy instead.
    settings.PREDICTION_ABSTAIN_MARGIN = 0.2
    page = dashboard(parent_client)
    assert "gave an answer for" not in page
    assert "right for 86&nbsp;% of 300 babies it had not seen in training" in page
