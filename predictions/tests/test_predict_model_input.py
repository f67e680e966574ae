"""A prediction reads each scan's model-ready derivative, and falls back to the JPEG honestly."""

from pathlib import Path

import pytest
from django.core.files.storage import storages

from babies.models import Scan
from ml.preprocessing import InputSpec
from predictions.models import ModelVersion
from predictions.services import prediction_create
from predictions.tests.predict_support import expected_logit, grey_png, grey_scan, tiny_model_version

pytestmark = pytest.mark.django_db


def overwrite(name: str, data: bytes) -> None:
    Path(storages["scans"].path(name)).write_bytes(data)


def test_the_prediction_reads_the_derivative_not_the_jpeg(baby):
    tiny_model_version()
    scan = grey_scan(baby, 230)
    # Were the JPEG read, this scan would count as black (a girl) instead of bright.
    overwrite(scan.image.name, grey_png(0))

    prediction = prediction_create(baby=baby)

    assert prediction.scan_ids_used == [scan.pk]
    assert prediction.scan_probabilities[0]["logit"] == pytest.approx(expected_logit(230), abs=0.05)


def test_scans_without_a_derivative_and_missing_derivatives_read_the_jpeg(baby):
    tiny_model_version()
    older = grey_scan(baby, 230)
    lost = grey_scan(baby, 20)
    Scan.objects.filter(pk=older.pk).update(model_input="")  # stored before derivatives existed
    storages["scans"].delete(lost.model_input.name)

    prediction = prediction_create(baby=baby)

    assert prediction.scan_ids_used == [older.pk, lost.pk]
    logits = [entry["logit"] for entry in prediction.scan_probabilities]
    assert logits == [
        pytest.approx(expected_logit(230), abs=0.05),
        pytest.approx(expected_logit(20), abs=0.05),
    ]


def test_a_version_one_model_reads_the_jpeg_it_was_trained_on(baby):
    version = tiny_model_version()
    spec = InputSpec(image_size=version.get_input_spec().image_size, preprocessing_version=1)
    ModelVersion.objects.filter(pk=version.pk).update(input_spec=spec.to_dict())
    scan = grey_scan(baby, 230)
    overwrite(scan.model_input.name, grey_png(0))

    prediction = prediction_create(baby=baby)

    assert prediction.scan_probabilities[0]["logit"] == pytest.approx(expected_logit(230), abs=0.05)


def test_predictions_say_they_are_warming_up_while_the_demo_model_trains(baby, settings, tmp_path):
    import fcntl

    from predictions import inference
    from predictions.services import PredictionError

    settings.VAR_DIR = tmp_path
    grey_scan(baby, 230)
    with pytest.raises(PredictionError) as refused:
        prediction_create(baby=baby)
    assert refused.value.code == "no_model"

    lock_path = inference.demo_model_lock_path()
    lock_path.parent.mkdir(parents=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # what ensure_demo_model holds while it trains
        with pytest.raises(PredictionError) as warming:
            prediction_create(baby=baby)
    assert warming.value.code == "warming_up"
    assert "warming up" in warming.value.message and "scans are kept" in warming.value.message

    with pytest.raises(PredictionError) as after:  # the training ended without a model
        prediction_create(baby=baby)
    assert after.value.code == "no_model"
