"""Fault injection: the active model's ``.tflite`` is missing, corrupt, or answers NaN/infinity.

Each fault is real: the file is deleted from or overwritten in the models storage, or the model
is a genuine LiteRT flatbuffer that computes NaN or infinity (built byte by byte, no
TensorFlow: ``predictions.tests.predict_support.mean_pixel_tflite``). The parent asks for a
prediction through the real view. What must hold every time:

- the parent reads a sentence on the page they came from (never a 500);
- no Prediction row is written, and the scans are all still there;
- the operators find an ERROR line naming the model version in the log;
- once a working version is switched on, the very next request predicts.
"""

from __future__ import annotations

import logging

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from babies.models import Scan
from predictions import inference
from predictions.models import Prediction
from predictions.tests.predict_support import grey_scan, mean_pixel_tflite, tiny_model_version

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_interpreter_from_another_test():
    inference.clear_loaded_model()
    yield
    inference.clear_loaded_model()


@pytest.fixture
def scans(baby):
    return [grey_scan(baby, 200, gestational_week=20), grey_scan(baby, 180, gestational_week=21)]


def ask_for_a_prediction(client, baby):
    back = reverse("babies:baby_detail", args=[baby.pk])
    response = client.post(reverse("predictions:predict", args=[baby.pk]), {"next": back}, follow=True)
    assert response.redirect_chain == [(f"{back}#prediction-{baby.pk}", 302)]
    assert response.status_code == 200
    return response


def error_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"] if message.level_tag == "error"]


def replace_model_file(version, content: bytes | None) -> None:
    """Delete the stored file (``None``) or overwrite it with ``content``, under the same name."""
    storage, name = version.tflite_file.storage, version.tflite_file.name
    storage.delete(name)
    if content is not None:
        saved = storage.save(name, ContentFile(content))
        assert saved == name


def operator_lines(caplog, version) -> list[str]:
    return [
        f"{record.getMessage()}\n{record.exc_text or ''}"
        for record in caplog.records
        if record.levelno >= logging.ERROR and f"Model version {version.pk}" in (record.exc_text or "")
    ]


FAULTS = {
    "missing file": (None, "the model could not be loaded", "No such file"),
    "corrupt bytes": (b"\x00\x13not a flatbuffer" * 40, "the model could not be loaded", "Flatbuffer"),
    "truncated model": (mean_pixel_tflite()[:200], "the model could not be loaded", "cannot be loaded"),
    "NaN output": (
        mean_pixel_tflite(weight=float("nan")),
        "the model is not working properly",
        "non-finite logit(s) out of 2 (e.g. nan)",
    ),
    "infinite output": (
        mean_pixel_tflite(weight=float("inf")),
        "the model is not working properly",
        "non-finite logit(s) out of 2 (e.g. inf)",
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_broken_model_gives_the_parent_a_sentence_stores_nothing_and_is_logged(
    parent_client, baby, scans, caplog, fault
):
    content, sentence, logged = FAULTS[fault]
    version = tiny_model_version()
    replace_model_file(version, content)

    with caplog.at_level(logging.ERROR):
        response = ask_for_a_prediction(parent_client, baby)

    assert error_messages(response) == [
        f"Predictions are not available at the moment because {sentence}. "
        "We have been told about it; please try again later."
    ]
    assert not Prediction.objects.exists()
    assert Scan.objects.filter(baby=baby).count() == 2
    lines = operator_lines(caplog, version)
    assert lines and logged in lines[0], caplog.text
    assert f"prediction failed baby={baby.pk}" in lines[0]

    # The operator switches a working version on: the next request predicts, from both scans.
    working = tiny_model_version(name="Working model")
    response = ask_for_a_prediction(parent_client, baby)
    assert error_messages(response) == []
    prediction = Prediction.objects.get()
    assert prediction.scan_ids_used == [scan.pk for scan in scans]
    assert prediction.model_version == working


def test_a_model_that_answers_nan_for_some_scans_only_is_refused_whole(parent_client, baby):
    """``weight * mean + bias`` with bias -inf and weight +inf: NaN for a black scan only."""
    grey_scan(baby, 0, gestational_week=20)
    grey_scan(baby, 200, gestational_week=20)
    tiny_model_version(tflite_content=mean_pixel_tflite(weight=float("inf"), bias=0.0))

    response = ask_for_a_prediction(parent_client, baby)

    assert "the model is not working properly" in error_messages(response)[0]
    assert not Prediction.objects.exists()


def test_the_review_queue_and_other_callers_treat_a_nan_model_as_broken(baby, scans):
    """``ModelOutputError`` is a ``ModelLoadError``: every caller already catches that."""
    tiny_model_version(tflite_content=mean_pixel_tflite(weight=float("nan")))
    with pytest.raises(inference.ModelLoadError, match="non-finite"):
        inference.predict_scans([scan.image for scan in scans])
