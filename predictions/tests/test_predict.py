"""Asking for a prediction: one LiteRT batch per baby, the combined calibrated answer, the errors."""

import html
import math

import pytest
from django.test import Client
from django.urls import reverse

from babies.models import LabelSource
from babies.services import baby_soft_delete
from babies.tests.factories import BabyFactory
from ml.litert import LiteRTModel
from predictions import inference
from predictions.models import Prediction
from predictions.services import PredictionError, prediction_create
from predictions.tests.predict_support import (
    corrupt_stored_file,
    expected_logit,
    grey_scan,
    tiny_model_version,
)

pytestmark = pytest.mark.django_db


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@pytest.fixture
def model_version(db):
    return tiny_model_version(temperature=2.0)


def predict_url(baby):
    return reverse("predictions:predict", args=[baby.pk])


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]] if response.context else []


# --- The service ---------------------------------------------------------------------------
def test_scans_are_combined_by_the_mean_of_calibrated_logits(baby, model_version, monkeypatch):
    values = [235, 245, 15]  # logits about 4.2, 4.6 and -4.4
    scans = [grey_scan(baby, value) for value in values]
    batches = []
    original = LiteRTModel.logits

    def spy(self, batch):
        batches.append(batch.shape)
        return original(self, batch)

    monkeypatch.setattr(LiteRTModel, "logits", spy)

    prediction = prediction_create(baby=baby)

    assert batches == [(3, 32, 32, 1)]  # one batch with every scan
    logits = [entry["logit"] for entry in prediction.scan_probabilities]
    for logit, value in zip(logits, values, strict=True):
        assert logit == pytest.approx(expected_logit(value), abs=0.05)
    expected = sigmoid(sum(logits) / len(logits) / 2.0)  # temperature 2
    assert prediction.probability_male == pytest.approx(expected, abs=1e-6)
    assert prediction.combined_logit == pytest.approx(sum(logits) / 3 / 2.0, abs=1e-6)
    # Not the mean of the per-scan probabilities, which would say something else.
    mean_of_probabilities = sum(sigmoid(logit / 2.0) for logit in logits) / 3
    assert abs(prediction.probability_male - mean_of_probabilities) > 0.01
    for entry, logit in zip(prediction.scan_probabilities, logits, strict=True):
        assert entry["probability_male"] == pytest.approx(sigmoid(logit / 2.0), abs=1e-6)
    assert prediction.predicted_sex == "male"
    assert prediction.scan_ids == prediction.scan_ids_used == [scan.pk for scan in scans]
    assert prediction.scan_errors == []
    assert prediction.model_version == model_version
    assert prediction.temperature == 2.0


def test_girl_and_the_confidence_shown_is_for_the_predicted_sex(baby, model_version):
    grey_scan(baby, 60)  # logit 10 * 60/255 - 5 = -2.65; / 2 -> p(male) = 0.21
    prediction = prediction_create(baby=baby)
    assert prediction.predicted_sex == "female"
    assert prediction.probability_male == pytest.approx(sigmoid(expected_logit(60) / 2), abs=0.01)
    assert prediction.confidence == pytest.approx(1 - prediction.probability_male)
    assert prediction.confidence_percent == round(100 * (1 - prediction.probability_male))


def test_a_corrupt_scan_is_reported_and_the_others_still_count(baby, model_version):
    good = grey_scan(baby, 230)
    broken = grey_scan(baby, 10)
    corrupt_stored_file(broken)

    prediction = prediction_create(baby=baby)

    assert prediction.scan_ids == [good.pk, broken.pk]
    assert prediction.scan_ids_used == [good.pk]
    assert prediction.scan_errors == [
        {"scan_id": broken.pk, "reason": "unreadable", "error": inference.UNREADABLE_SCAN}
    ]
    # The broken dark scan would have pulled the answer to "girl".
    assert prediction.probability_male == pytest.approx(sigmoid(expected_logit(230) / 2), abs=0.01)


def test_no_scans_no_model_and_no_readable_scan_are_errors_not_rows(baby, db):
    with pytest.raises(PredictionError) as error:
        prediction_create(baby=baby)
    assert error.value.code == "no_scans"

    scan = grey_scan(baby, 100)
    with pytest.raises(PredictionError) as error:
        prediction_create(baby=baby)
    assert error.value.code == "no_model"

    tiny_model_version()
    corrupt_stored_file(scan)
    with pytest.raises(PredictionError) as error:
        prediction_create(baby=baby)
    assert error.value.code == "no_readable_scans"
    assert not Prediction.objects.exists()


# --- The view ------------------------------------------------------------------------------
def test_predict_from_the_dashboard_shows_the_answer(parent_client, baby, model_version):
    for value in (200, 220, 240):
        grey_scan(baby, value)

    response = parent_client.post(predict_url(baby), {"next": reverse("babies:dashboard")}, follow=True)

    prediction = Prediction.objects.get()
    assert response.redirect_chain[0] == (f"{reverse('babies:dashboard')}#prediction-{baby.pk}", 302)
    content = response.content.decode()
    wording = f"Boy — {prediction.confidence_percent}&nbsp;% likely"
    assert wording in content
    assert "From 3 scans" in content
    assert f"Tiny test model (version {model_version.pk})" in content
    assert "right for 86&nbsp;% of 300 babies it had not seen in training" in content
    assert "Demo model trained on synthetic images" in content
    assert "not medical advice" in content
    assert "Your scans have changed since this prediction" not in _visible(content)


def _visible(content: str) -> str:
    """The page without elements rendered ``hidden`` (the stale notice is always in the HTML)."""
    import re

    return re.sub(r"<p[^>]*\bhidden\b[^>]*>.*?</p>", "", content, flags=re.S)


def test_a_real_model_shows_no_synthetic_banner_and_missing_metrics_are_said(parent_client, baby):
    tiny_model_version(is_synthetic=False, metrics={})
    grey_scan(baby, 200)
    content = parent_client.post(predict_url(baby), follow=True).content.decode()
    assert "Leaning boy — a guess, not a prediction" in content
    assert "% likely" not in content.split('data-testid="prediction-result"', 1)[1]
    assert "Demo model trained on synthetic images" not in content
    assert (
        "This model's accuracy has never been measured on babies it had not seen, "
        "so treat this as a guess." in html.unescape(content)
    )


def test_the_result_is_also_on_the_baby_page(parent_client, baby, model_version):
    grey_scan(baby, 30)
    detail = reverse("babies:baby_detail", args=[baby.pk])
    response = parent_client.post(predict_url(baby), {"next": detail})
    assert response["Location"] == f"{detail}#prediction-{baby.pk}"
    assert "Girl —" in parent_client.get(detail).content.decode()


def test_a_foreign_next_is_ignored(parent_client, baby, model_version):
    grey_scan(baby, 30)
    response = parent_client.post(predict_url(baby), {"next": "https://evil.example/"})
    assert response["Location"].startswith(reverse("babies:dashboard"))


def test_deleting_a_scan_the_prediction_left_out_does_not_ask_to_predict_again(
    parent_client, baby, model_version
):
    grey_scan(baby, 200)
    early = grey_scan(baby, 20, gestational_week=8)
    parent_client.post(predict_url(baby))
    prediction = Prediction.objects.get(baby=baby)
    assert early.pk not in prediction.scan_ids_used

    parent_client.post(reverse("babies:scan_delete", args=[early.pk]))

    content = parent_client.get(reverse("babies:dashboard")).content.decode()
    assert "Your scans have changed since this prediction" in content  # the hidden notice for later uploads
    assert 'data-testid="prediction-stale" data-stale-notice hidden' in content


def test_deleting_a_scan_the_prediction_used_asks_to_predict_again(parent_client, baby, model_version):
    kept = grey_scan(baby, 200)
    used = grey_scan(baby, 30)
    parent_client.post(predict_url(baby))
    prediction = Prediction.objects.get(baby=baby)

    assert prediction.is_stale_for([kept.pk, used.pk]) is False
    assert prediction.is_stale_for([kept.pk]) is True


def test_a_new_upload_makes_the_prediction_stale_and_the_history_stays(parent_client, baby, model_version):
    grey_scan(baby, 200)
    parent_client.post(predict_url(baby))
    grey_scan(baby, 20)

    content = parent_client.get(reverse("babies:dashboard")).content.decode()
    assert "Your scans have changed since this prediction. Predict again to use\n      all 2 scans" in content
    assert "From 1 scan," in content

    parent_client.post(predict_url(baby))
    content = parent_client.get(reverse("babies:dashboard")).content.decode()
    assert "From 2 scans" in content
    assert "Your scans have changed" not in _visible(content)
    assert Prediction.objects.filter(baby=baby).count() == 2


def test_a_corrupt_scan_is_named_on_the_dashboard(parent_client, baby, model_version):
    grey_scan(baby, 200)
    broken = grey_scan(baby, 100)
    corrupt_stored_file(broken)

    response = parent_client.post(predict_url(baby), follow=True)

    content = response.content.decode()
    assert response.status_code == 200
    assert "1 scan was left out" in content
    assert "This scan could not be read as an image." in content
    assert "From 1 scan," in content


def test_no_scans_is_a_clear_message(parent_client, baby, model_version):
    response = parent_client.post(predict_url(baby), follow=True)
    assert response.status_code == 200
    assert "Upload at least one scan of" in " ".join(messages_of(response))
    assert not Prediction.objects.exists()


def test_no_active_model_is_a_clear_message(parent_client, baby):
    grey_scan(baby, 100)
    response = parent_client.post(predict_url(baby), follow=True)
    assert response.status_code == 200
    assert "no model is switched on" in " ".join(messages_of(response))
    assert not Prediction.objects.exists()


def test_a_broken_model_file_is_a_clear_message_and_logged(parent_client, baby, caplog):
    tiny_model_version(tflite_content=b"not a flatbuffer")
    grey_scan(baby, 100)
    response = parent_client.post(predict_url(baby), follow=True)
    assert response.status_code == 200
    assert "the model could not be loaded" in " ".join(messages_of(response))
    assert "cannot be loaded" in caplog.text
    assert not Prediction.objects.exists()


def test_another_parents_baby_and_a_deleted_baby_are_404(parent_client, other_user, user, model_version):
    foreign = BabyFactory(owner=other_user)
    grey_scan(foreign, 100)
    assert parent_client.post(predict_url(foreign)).status_code == 404

    deleted = BabyFactory(owner=user)
    grey_scan(deleted, 100)
    baby_soft_delete(baby=deleted)
    assert parent_client.post(predict_url(deleted)).status_code == 404
    assert not Prediction.objects.exists()


def test_staff_cannot_predict_for_a_parent(staff_client, baby, model_version):
    grey_scan(baby, 100)
    assert staff_client.post(predict_url(baby)).status_code == 404


def test_login_required_and_post_only(parent_client, baby, model_version):
    grey_scan(baby, 100)
    response = Client().post(predict_url(baby))
    assert response.status_code == 302 and reverse("account_login") in response["Location"]
    assert parent_client.get(predict_url(baby)).status_code == 405
    assert not Prediction.objects.exists()


def test_confirming_the_sex_of_a_born_baby_checks_the_prediction(parent_client, born_baby, model_version):
    grey_scan(born_baby, 230)
    parent_client.post(predict_url(born_baby))

    response = parent_client.post(
        reverse("babies:baby_confirm_sex", args=[born_baby.pk]), {"sex": "female"}, follow=True
    )

    born_baby.refresh_from_db()
    assert born_baby.confirmed_sex == "female"
    assert born_baby.confirmed_sex_source == LabelSource.DASHBOARD
    assert born_baby.confirmed_sex_at is not None
    assert "the prediction was wrong" in response.content.decode()
    # The label does not touch the prediction, which stays as it was made.
    assert Prediction.objects.get().predicted_sex == "male"


def test_predict_button_is_disabled_without_scans(parent_client, baby):
    content = parent_client.get(reverse("babies:dashboard")).content.decode()
    assert reverse("predictions:predict", args=[baby.pk]) in content
    assert "Upload a scan first, then ask for a prediction." in _visible(content)
    assert "disabled" in content.split("data-predict-button", 1)[1].split(">", 1)[0]


def test_dashboard_query_count_does_not_grow_with_predictions(parent_client, user, model_version):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def add_predicted_baby():
        baby = BabyFactory(owner=user)
        grey_scan(baby, 200)
        prediction_create(baby=baby)
        prediction_create(baby=baby)  # history: only the latest is shown

    add_predicted_baby()
    with CaptureQueriesContext(connection) as one_baby:
        parent_client.get(reverse("babies:dashboard"))
    for _ in range(3):
        add_predicted_baby()
    with CaptureQueriesContext(connection) as four_babies:
        content = parent_client.get(reverse("babies:dashboard")).content.decode()
    assert len(four_babies) == len(one_baby)
    assert content.count('data-testid="prediction-result"') == 4


def test_the_parents_data_export_contains_the_prediction(user, baby, model_version):
    import io
    import json
    import zipfile

    from accounts.services import user_data_export

    grey_scan(baby, 200)
    prediction = prediction_create(baby=baby)
    buffer = io.BytesIO()
    user_data_export(user=user, destination=buffer)

    with zipfile.ZipFile(buffer) as archive:
        exported = json.loads(archive.read("babies.json"))
        assert "probability_male" in archive.read("predictions.csv").decode()
    (row,) = [baby_row for baby_row in exported if baby_row["id"] == baby.pk][0]["predictions"]
    assert row["probability_male"] == pytest.approx(prediction.probability_male)
    assert row["scan_ids_used"] == prediction.scan_ids_used
