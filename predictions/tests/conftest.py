"""Fixtures for the predictions tests: tiny synthetic data sets and model versions."""

from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from ml.preprocessing import InputSpec
from ml.synthetic import SyntheticConfig, write_dataset
from predictions import inference
from predictions.models import ModelVersion
from predictions.tests.factories import PASSING_EVALUATION


@pytest.fixture(autouse=True)
def _forget_loaded_model():
    """Ids repeat across rolled-back tests: never reuse another test's loaded interpreter."""
    inference.clear_loaded_model()
    yield
    inference.clear_loaded_model()


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A few dozen small synthetic scans with train/val/test splits (written once per session)."""
    root = tmp_path_factory.mktemp("synthetic")
    write_dataset(
        root,
        babies={"train": 24, "val": 8, "test": 10},
        scans_per_baby=2,
        seed=7,
        config=SyntheticConfig(image_size=64),
    )
    return root


@pytest.fixture
def make_model_version(db):
    """A ModelVersion row with placeholder files (for tests that never run the network)."""

    def make(**fields) -> ModelVersion:
        version = ModelVersion(
            name=fields.pop("name", "Test model"),
            slug="test-model",
            architecture="small_cnn",
            input_spec=InputSpec(image_size=48).to_dict(),
            metrics={"calibrated": {"per_baby": {"accuracy": 0.9}}, "evaluation": PASSING_EVALUATION},
            is_synthetic=True,
            **fields,
        )
        version.keras_file.save("model.keras", ContentFile(b"keras"), save=False)
        version.tflite_file.save("model.tflite", ContentFile(b"tflite"), save=False)
        version.save()
        return version

    return make
