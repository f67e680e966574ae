"""Training, export, parity and LiteRT inference on a tiny synthetic data set (TensorFlow: slow).

One session-scoped training run (a few seconds) feeds most tests; the commands train their own
tiny models. TensorFlow is imported inside the tests so that collecting this module is cheap.
"""

import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image

from ml.metrics import sigmoid
from ml.preprocessing import preprocess_image
from ml.records import read_manifest
from predictions import inference
from predictions.models import ModelVersion
from predictions.services import model_version_activate, model_version_create
from tests.fresh_process import run_python

pytestmark = [
    pytest.mark.slow,
    # Keras 3.15 calls np.array(x, copy=False) on TensorFlow tensors; harmless, and not ours.
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
]


@pytest.fixture(scope="session")
def trained(tiny_dataset, tmp_path_factory):
    from predictions.training.pipeline import TrainingOptions, train_and_export
    from predictions.training.runs import load_folder

    data = load_folder(tiny_dataset)
    outcome = train_and_export(
        data.records,
        options=TrainingOptions(image_size=48, epochs=2, batch_size=16, seed=1),
        output_dir=tmp_path_factory.mktemp("trained"),
        synthetic_info=data.synthetic_info,
        log=lambda line: None,
    )
    return outcome


def _store(outcome, *, name="tiny", temperature=None, activate=True) -> ModelVersion:
    version = model_version_create(
        name=name,
        architecture="small_cnn",
        input_spec=outcome.input_spec,
        temperature=temperature or outcome.temperature,
        keras_path=outcome.keras_path,
        tflite_path=outcome.tflite_path,
        plot_paths=outcome.plot_paths,
        metrics=outcome.metrics,
        is_synthetic=True,
    )
    if not activate:
        return version
    # Two epochs on a few dozen scans cannot pass the quality gate; these tests are about inference.
    return model_version_activate(
        model_version=version, override_gate=True, reason="test: a tiny model exercising inference"
    )


def _test_scans(dataset: Path, count: int = 4) -> list[Path]:
    return [Path(record.image) for record in read_manifest(dataset) if record.split == "test"][:count]


def test_training_exports_verified_files_and_honest_metrics(trained):
    for path in [trained.keras_path, trained.tflite_path, *trained.plot_paths.values()]:
        assert path.is_file() and path.stat().st_size > 0
    for path in trained.plot_paths.values():
        with Image.open(path) as image:
            assert image.format == "PNG"
    report = trained.metrics
    assert report["parity"]["max_probability_difference"] <= 1e-4 == report["parity"]["tolerance"]
    assert report["calibrated"]["per_baby"]["count"] == 10 and report["calibrated"]["per_scan"]["count"] == 20
    assert report["splits"]["test"] == {"scans": 20, "babies": 10}
    assert set(report["calibrated"]["per_scan"]) >= {"accuracy", "accuracy_ci95", "roc_auc", "brier", "ece"}
    # Two scans per baby, weeks 11-20 with more noise up to week 12 (ml.synthetic).
    assert report["bayes"]["ceiling_per_baby"] == pytest.approx(0.9116, abs=1e-3)
    assert report["bayes"]["ceiling_per_baby_equal_weights"] == pytest.approx(0.9073, abs=1e-3)
    assert report["bayes"]["ceiling_per_scan_by_week_band"]["<12"] == pytest.approx(0.8315, abs=1e-3)
    assert "oracle_on_test" in report["bayes"]
    # What parents get, per baby: the settings' rule, at two margins and in a table.
    abstention = report["abstention"]
    assert abstention["unit"] == "baby" and abstention["babies"] == 10
    assert (abstention["margin"], abstention["stricter_margin"], abstention["min_gestational_week"]) == (
        0.1,
        0.2,
        12,
    )
    assert abstention["at_margin"]["margin"] == 0.1 and abstention["at_stricter_margin"]["margin"] == 0.2
    assert abstention["at_stricter_margin"]["answered"] <= abstention["at_margin"]["answered"]
    assert [row["margin"] for row in abstention["by_margin"]] == [0.0, 0.05, 0.1, 0.15, 0.2, 0.25]
    # Per scan, per band of weeks; every test scan is in one band.
    bands = report["week_bands"]
    assert bands["unit"] == "scan" and sum(band["count"] for band in bands["bands"].values()) == 20
    assert set(bands["bands"]) <= {"<12", "12", "13-15", "16+"}
    assert all(0 <= band["coverage"] <= 1 and band["ece"] >= 0 for band in bands["bands"].values())
    assert trained.temperature > 0
    assert trained.input_spec.shape == (48, 48, 1)
    assert json.loads((trained.output_dir / "metrics.json").read_text())["parameters"]["epochs_run"] == 2
    # Without a fixed evaluation set (real data), the exported model is evaluated on its test babies.
    evaluation = report["evaluation"]
    assert evaluation["set"]["kind"] == "held_out_test" and evaluation["babies"] == 10
    assert (
        len(evaluation["correct"])
        == evaluation["per_baby"]["count"]
        == 10 - evaluation["babies_without_usable_scans"]
    )
    assert {"accuracy_ci95", "ece", "ece_ci95", "ece_plain_mean"} <= set(evaluation["per_baby"])
    assert [row["margin"] for row in evaluation["abstention"]["by_margin"]][:3] == [0.0, 0.01, 0.02]
    assert report["reproducibility"]["seed"] == 1 and report["reproducibility"]["op_determinism"] is True
    assert set(report["reproducibility"]["libraries"]) >= {"tensorflow", "keras", "numpy", "pillow"}
    assert trained.baby_calibration.scale(1) == 1.0


def test_parity_check_fails_when_the_two_files_disagree(trained, tiny_dataset, tmp_path):
    import keras

    from predictions.training.export import ParityError, check_parity, verify_exported

    model = keras.models.load_model(trained.keras_path, compile=False)
    kernel, bias = model.get_layer("male_logit").get_weights()
    model.get_layer("male_logit").set_weights([kernel, bias + 0.01])
    altered = tmp_path / "altered.keras"
    model.save(altered)
    batch = np.stack([preprocess_image(path, trained.input_spec) for path in _test_scans(tiny_dataset)])
    with pytest.raises(ParityError, match="disagree"):
        verify_exported(altered, trained.tflite_path, batch, temperature=1.0)
    # The untouched pair passes, and the bound is the one stated.
    assert verify_exported(trained.keras_path, trained.tflite_path, batch, temperature=1.0) <= 1e-4
    assert check_parity(np.array([0.5]), np.array([0.50009])) == pytest.approx(9e-5)
    with pytest.raises(ParityError):
        check_parity(np.array([0.5]), np.array([0.50011]))
    with pytest.raises(ParityError, match="finite"):
        check_parity(np.array([0.5]), np.array([np.nan]))


def test_training_and_inference_feed_the_network_identical_tensors(trained, tiny_dataset, db, monkeypatch):
    from predictions.training.pipeline import load_split

    records = [record for record in read_manifest(tiny_dataset) if record.split == "test"][:3]
    _, training_batch, _ = load_split(records, trained.input_spec, log=print)
    _store(trained)
    seen = []
    original = inference.LiteRTModel.logits

    def spy(self, batch):
        seen.append(batch.copy())
        return original(self, batch)

    monkeypatch.setattr(inference.LiteRTModel, "logits", spy)
    inference.predict_scans([Path(record.image).read_bytes() for record in records])
    assert np.array_equal(seen[0], training_batch)


def test_predict_scans_matches_keras_and_reports_a_corrupt_scan(trained, tiny_dataset, db):
    import keras

    version = _store(trained)
    paths = _test_scans(tiny_dataset, 3)
    sources = [paths[0].read_bytes(), b"\xff\xd8 not really a jpeg", str(paths[1]), paths[2].open("rb")]
    result = inference.predict_scans(sources)
    sources[3].close()
    assert result.model_version == version
    assert result.errors_per_scan == [None, inference.UNREADABLE_SCAN, None, None]
    assert result.logits[1] is None and result.probabilities[1] is None
    assert result.succeeded == [0, 2, 3]
    model = keras.models.load_model(trained.keras_path, compile=False)
    batch = np.stack([preprocess_image(path, trained.input_spec) for path in paths])
    expected = sigmoid(model.predict(batch, verbose=0).reshape(-1) / trained.temperature)
    got = [result.probabilities[i] for i in (0, 2, 3)]
    assert np.max(np.abs(np.array(got) - expected)) <= 1e-4


def test_inference_without_an_active_model_raises(db):
    with pytest.raises(inference.NoActiveModelError):
        inference.predict_scans([b"x"])


def test_inference_reloads_when_the_active_version_changes(trained, tiny_dataset, db):
    scan = _test_scans(tiny_dataset, 1)[0].read_bytes()
    first = _store(trained, name="first", temperature=1.0)
    before = inference.predict_scans([scan])
    assert inference.loaded_model() is inference.loaded_model()  # cached while nothing changes
    second = _store(trained, name="second", temperature=4.0)
    after = inference.predict_scans([scan])
    assert (before.model_version, after.model_version) == (first, second)
    assert after.logits[0] == pytest.approx(before.logits[0], abs=1e-6)
    assert after.probabilities[0] == pytest.approx(float(sigmoid(np.array(before.logits[0] / 4.0))), abs=1e-6)


def test_inference_is_safe_from_several_threads(trained, tiny_dataset, db, monkeypatch):
    _store(trained)
    scans = [path.read_bytes() for path in _test_scans(tiny_dataset, 4)]
    expected = inference.predict_scans(scans).probabilities
    # The test database lives in this thread's transaction; the interpreter is what is shared.
    fingerprint = inference.model_version_active_fingerprint()
    monkeypatch.setattr(inference, "model_version_active_fingerprint", lambda: fingerprint)
    results, errors = [], []

    def work(size):
        try:
            for _ in range(5):
                results.append((size, inference.predict_scans(scans[:size]).probabilities))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(size,)) for size in (1, 2, 3, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for size, probabilities in results:
        assert probabilities == pytest.approx(expected[:size], abs=1e-6)


def test_litert_inference_runs_without_tensorflow_in_a_fresh_process(trained, tiny_dataset):
    """The web's code path, run for real in a new interpreter, never imports TensorFlow."""
    scan = _test_scans(tiny_dataset, 1)[0]
    code = f"""
import sys, django
django.setup()
import instagender.urls, curation.admin, predictions.inference
from ml.litert import LiteRTModel
from ml.preprocessing import InputSpec, preprocess_batch
spec = InputSpec.from_dict({trained.input_spec.to_dict()!r})
runner = LiteRTModel(open({str(trained.tflite_path)!r}, "rb").read(), num_threads=1)
print(runner.logits(preprocess_batch([{str(scan)!r}], spec)).shape)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
print("TF_MODULES", loaded)
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert "(1,)" in result.stdout
    assert "TF_MODULES []" in result.stdout


def test_train_model_command_records_an_inactive_synthetic_version(tiny_dataset, db):
    out = io.StringIO()
    call_command("train_model", data=tiny_dataset, epochs=1, image_size=48, batch_size=16, stdout=out)
    version = ModelVersion.objects.get()
    assert version.is_synthetic and not version.is_active
    assert version.training_data_digest and "synthetic folder" in version.training_data_description
    assert version.tflite_file.storage.exists(version.tflite_file.name)
    assert version.roc_plot and version.reliability_plot and version.confusion_matrix_plot
    assert version.get_input_spec().image_size == 48
    text = out.getvalue()
    assert "Bayes ceiling" in text and "max |Δp|" in text and "SYNTHETIC" in text
    assert "epoch 1/1" in text
    assert "cannot-tell margin 0.20: coverage" in text and "cannot-tell margin 0.30: coverage" in text
    assert "by gestational-week band (per scan" in text and "answers " in text.splitlines()[-1]
    assert version.metrics["abstention"]["at_margin"]["coverage"] is not None


def test_train_model_measures_the_configured_abstention_rule(tiny_dataset, db, settings):
    settings.PREDICTION_ABSTAIN_MARGIN = 0.15
    settings.PREDICTION_DISAGREEMENT_THRESHOLD = 0.4
    settings.PREDICTION_MIN_GESTATIONAL_WEEK = 14
    call_command(
        "train_model", data=tiny_dataset, epochs=1, image_size=48, batch_size=16, stdout=io.StringIO()
    )
    abstention = ModelVersion.objects.get().metrics["abstention"]
    assert (abstention["margin"], abstention["stricter_margin"]) == (0.15, 0.25)
    assert (abstention["disagreement_threshold"], abstention["min_gestational_week"]) == (0.4, 14)
    assert ModelVersion.objects.get().training_parameters["abstain_margin"] == 0.15


def test_time_budget_stops_training_and_the_gate_refuses_to_activate_what_did_not_learn(tiny_dataset, db):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="was recorded but Not switched on: .*not clearly above chance"):
        call_command(
            "train_model",
            data=tiny_dataset,
            epochs=50,
            image_size=48,
            max_minutes=0.0001,
            activate=True,
            stdout=io.StringIO(),
        )
    version = ModelVersion.objects.get()
    assert not version.is_active
    assert version.training_parameters["stopped_by_time_budget"] is True
    assert version.training_parameters["epochs_run"] == 1


def test_train_model_refuses_a_folder_without_manifest(tmp_path, db):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="No manifest"):
        call_command("train_model", data=tmp_path, stdout=io.StringIO())


def test_ensure_demo_model_switches_nothing_on_when_no_seed_passes_the_gate(tmp_path, db):
    """Twelve babies and one epoch cannot learn: two seeds are tried, then `make run` stops."""
    from django.core.management import CommandError

    out = io.StringIO()
    with pytest.raises(CommandError, match="No demo model passed the quality gate in 2 attempt"):
        call_command(
            "ensure_demo_model",
            data_dir=tmp_path / "demo",
            babies=[12, 4, 4],
            epochs=1,
            attempts=2,
            stdout=out,
        )
    assert ModelVersion.objects.count() == 2 and not ModelVersion.objects.active().exists()
    assert "(seed 0)" in out.getvalue() and "(seed 1)" in out.getvalue()


# The demo recipe on a reduced set: a fifth of its babies, six epochs instead of ten, 300
# evaluation babies. It must learn: per-baby accuracy on the evaluation babies at least 80 %
# (the Bayes ceiling is 91.9 %; always answering one sex scores about 50 %; the recipe before
# BatchNorm and warm-up stayed at 50.7 %), pass the gate and be switched on.
LEARNS_THRESHOLD = 0.80


def test_the_demo_recipe_learns_on_a_reduced_set_and_is_switched_on(tmp_path, db, settings):
    settings.MODEL_EVALUATION_BABIES = 300
    data_dir = tmp_path / "demo"
    out = io.StringIO()
    call_command(
        "ensure_demo_model",
        data_dir=data_dir,
        babies=[320, 80, 80],
        epochs=6,
        attempts=1,
        with_demo_user=True,
        demo_babies=2,
        stdout=out,
    )
    version = ModelVersion.objects.get()
    evaluation = version.metrics["evaluation"]
    assert evaluation["set"]["kind"] == "synthetic" and evaluation["babies"] == 300
    assert evaluation["per_baby"]["accuracy"] >= LEARNS_THRESHOLD, out.getvalue()
    assert version.is_active and version.is_synthetic and version.name == "Synthetic demo model"
    assert version.training_parameters["learnt_at_epoch"] is not None
    assert version.get_baby_calibration().scales  # fitted on validation babies
    assert version.metrics["reproducibility"]["seed"] == 0
    assert "(active, SYNTHETIC data): per-baby accuracy" in out.getvalue()
    from django.contrib.auth import get_user_model

    demo = get_user_model().objects.get(email="demo@instagender.local")
    assert demo.babies.count() == 2 and sum(baby.scans.count() for baby in demo.babies.all()) == 6
    call_command("ensure_demo_model", data_dir=data_dir, with_demo_user=True, demo_babies=2, stdout=out)
    assert ModelVersion.objects.count() == 1 and "Nothing to do" in out.getvalue()
    assert demo.babies.count() == 2
    # A prediction works straight away.
    scan = demo.babies.first().scans.first()
    result = inference.predict_scans([scan.image])
    assert result.errors_per_scan == [None] and 0.0 <= result.probabilities[0] <= 1.0


def test_backbone_weights_come_only_from_a_local_file(tmp_path):
    import keras

    from predictions.training.factory import build_model, default_input_spec

    spec = default_input_spec("mobilenet_v3_small", 64)
    source = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=spec.shape, include_preprocessing=True
    )
    weights = tmp_path / "backbone.weights.h5"
    source.save_weights(weights)
    model = build_model("mobilenet_v3_small", spec, weights_path=weights)
    backbone = model.get_layer(index=1)
    assert not backbone.trainable
    assert all(
        np.array_equal(a, b) for a, b in zip(backbone.get_weights(), source.get_weights(), strict=True)
    )
    assert model.output_shape == (None, 1)
    with pytest.raises(ValueError, match="never downloaded"):
        build_model("mobilenet_v3_small", spec, weights_path=tmp_path / "missing.h5")
    with pytest.raises(ValueError, match="expects"):
        build_model("vgg16", spec)


def test_training_needs_both_sexes_in_the_training_split(tiny_dataset, tmp_path):
    from predictions.training.pipeline import TrainingError, TrainingOptions, train_and_export

    girls = [record for record in read_manifest(tiny_dataset) if record.label == 0]
    with pytest.raises(TrainingError, match="both sexes"):
        train_and_export(
            girls, options=TrainingOptions(image_size=48), output_dir=tmp_path, log=lambda line: None
        )


def test_training_runs_the_parity_check_on_the_exported_files_and_records_its_result(
    tiny_dataset, tmp_path, monkeypatch
):
    """Skipping the Keras-vs-LiteRT check (and recording 0.0) must not go unnoticed."""
    from predictions.training import pipeline
    from predictions.training.runs import load_folder

    calls = []
    real = pipeline.verify_exported

    def spy(keras_path, tflite_path, batch, **kwargs):
        difference = real(keras_path, tflite_path, batch, **kwargs)
        calls.append((Path(keras_path).name, Path(tflite_path).name, len(batch), difference))
        return difference

    monkeypatch.setattr(pipeline, "verify_exported", spy)
    data = load_folder(tiny_dataset)
    outcome = pipeline.train_and_export(
        data.records,
        options=pipeline.TrainingOptions(image_size=48, epochs=1, batch_size=16, seed=2),
        output_dir=tmp_path,
        log=lambda line: None,
    )
    assert [call[:3] for call in calls] == [("model.keras", "model.tflite", 20)]  # every test scan
    assert outcome.metrics["parity"]["max_probability_difference"] == calls[0][3]
    assert outcome.parity_max_difference == calls[0][3]
