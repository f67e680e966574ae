"""Predictions on the web side: the active ModelVersion's ``.tflite`` run by LiteRT.

No TensorFlow here (``test_inference`` checks ``sys.modules`` in a fresh process). The
interpreter is loaded once per process and kept until another version becomes active; each call
costs one narrow query to notice that. Scans are preprocessed by the same function training
used, with the input spec the version recorded, and a scan that cannot be read is reported on
its own while the others are still predicted.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings

from ml.litert import LiteRTModel
from ml.metrics import sigmoid
from ml.preprocessing import InputSpec, PreprocessingError, preprocess_image, reads_model_input
from predictions.models import ModelVersion
from predictions.selectors import model_version_active_fingerprint

logger = logging.getLogger(__name__)

UNREADABLE_SCAN = "This scan could not be read as an image."
MISSING_SCAN = "This scan's file is missing."


class NoActiveModelError(RuntimeError):
    """No model version is active: nothing can be predicted (run ``manage.py ensure_demo_model``)."""


class ModelLoadError(RuntimeError):
    """The active version's ``.tflite`` cannot be loaded or does not match its input spec."""


class ModelOutputError(ModelLoadError):
    """The active version answered NaN or infinity: it is broken, so nothing it said is used.

    A kind of :class:`ModelLoadError`, so every caller that already treats "the model cannot be
    used" (the parent's prediction, the review queue, ``score_label_quality``) treats this too.
    """


@dataclass(frozen=True)
class InferenceResult:
    """One entry per scan, in the order given; a failed scan has ``None`` and an error."""

    model_version: ModelVersion
    logits: list[float | None]  # the network's raw logit of male, before the temperature
    probabilities: list[float | None]  # calibrated: sigmoid(logit / temperature)
    errors_per_scan: list[str | None]

    @property
    def succeeded(self) -> list[int]:
        return [index for index, error in enumerate(self.errors_per_scan) if error is None]


@dataclass(frozen=True)
class _LoadedModel:
    fingerprint: tuple[int, str]
    model_version: ModelVersion
    runner: LiteRTModel
    spec: InputSpec
    temperature: float


_loaded: _LoadedModel | None = None
_load_lock = threading.Lock()


def clear_loaded_model() -> None:
    """Forget the loaded interpreter (tests; a deploy hook could call it too)."""
    global _loaded
    with _load_lock:
        _loaded = None


def loaded_model() -> _LoadedModel:
    """The interpreter for the active version, loading it if the active version changed."""
    global _loaded
    fingerprint = model_version_active_fingerprint()
    if fingerprint is None:
        raise NoActiveModelError("No model version is active.")
    current = _loaded
    if current is not None and current.fingerprint == fingerprint:
        return current
    with _load_lock:
        # Another thread may have loaded it while this one waited.
        if _loaded is not None and _loaded.fingerprint == fingerprint:
            return _loaded
        version = ModelVersion.objects.get(pk=fingerprint[0])
        _loaded = _load(version, fingerprint)
        logger.info("inference loaded model version id=%s name=%s", version.pk, version.name)
        return _loaded


def demo_model_lock_path() -> Path:
    """The file ``ensure_demo_model`` holds locked while it works (``make run`` runs it meanwhile)."""
    return Path(settings.VAR_DIR) / "demo-data" / ".lock"


def demo_model_is_training() -> bool:
    """True while ``ensure_demo_model`` holds its lock on this machine: predictions are warming up.

    Asked only when no model is active. No state of its own: if the training process dies, the
    kernel releases its lock and this says False again (then "no model is switched on").
    """
    path = demo_model_lock_path()
    try:
        with path.open("rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
    except OSError:  # no lock file (no demo model was ever trained here), or unreadable
        return False
    return False  # closing the file released the lock this check took


def _load(version: ModelVersion, fingerprint: tuple[int, str]) -> _LoadedModel:
    try:
        spec = version.get_input_spec()
        with version.tflite_file.open("rb") as handle:
            content = handle.read()
        runner = LiteRTModel(content, num_threads=settings.INFERENCE_NUM_THREADS)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"Model version {version.pk} cannot be loaded: {exc}") from exc
    if runner.input_shape != spec.shape:
        raise ModelLoadError(
            f"Model version {version.pk} takes {runner.input_shape} but records {spec.shape} as its input."
        )
    if not (version.temperature > 0 and math.isfinite(version.temperature)):
        raise ModelLoadError(f"Model version {version.pk} has an invalid temperature.")
    return _LoadedModel(
        fingerprint=fingerprint,
        model_version=version,
        runner=runner,
        spec=spec,
        temperature=version.temperature,
    )


def _source_for_preprocessing(source):
    """Bytes, a path, an open binary file, or a Django FieldFile (read through its storage)."""
    if isinstance(source, bytes | bytearray | memoryview | str | os.PathLike):
        return source
    if hasattr(source, "storage") and hasattr(source, "name"):  # FieldFile: the scan's JPEG
        if not source.name:
            raise FileNotFoundError("empty file field")
        with source.storage.open(source.name, "rb") as handle:
            return handle.read()
    return source


def _read_scan(scan, spec: InputSpec):
    """A scan's stored derivative when the model is fed from it, otherwise (or if it is missing)
    the full JPEG: the same tensor either way (``ml.preprocessing.preprocess_image``), the
    derivative just decodes in well under a millisecond instead of tens for a 12 MP JPEG.

    Scans stored before derivatives existed (until ``manage.py backfill_model_inputs`` ran) and
    models larger than the derivative (``MODEL_INPUT_SIDE``) or trained with preprocessing
    version 1 read the JPEG: slower, never different.
    """
    if reads_model_input(spec) and scan.model_input:
        try:
            return _source_for_preprocessing(scan.model_input)
        except FileNotFoundError:
            logger.warning(
                "scan %s: model input %s missing, reading the JPEG", scan.pk, scan.model_input.name
            )
    return _source_for_preprocessing(scan.image)


def predict_scans(jpeg_sources: list) -> InferenceResult:
    """Predict each scan's probability of male with the active model version.

    A source is the JPEG (bytes, a path, a file or a ``FieldFile``) or a ``Scan``, whose
    model-ready derivative is read when the model takes it (:func:`_read_scan`).
    Raises :class:`NoActiveModelError` when there is no active version, :class:`ModelLoadError`
    when it cannot be loaded and :class:`ModelOutputError` when it answers NaN or infinity; a scan
    that cannot be read or decoded gets a per-scan error sentence instead, and the others are
    still predicted.
    """
    model = loaded_model()
    count = len(jpeg_sources)
    errors: list[str | None] = [None] * count
    arrays, positions = [], []
    for position, source in enumerate(jpeg_sources):
        try:
            if hasattr(source, "model_input") and hasattr(source, "image"):
                data = _read_scan(source, model.spec)
            else:
                data = _source_for_preprocessing(source)
            arrays.append(preprocess_image(data, model.spec))
            positions.append(position)
        except FileNotFoundError:
            errors[position] = MISSING_SCAN
        except (PreprocessingError, OSError):
            errors[position] = UNREADABLE_SCAN
    logits: list[float | None] = [None] * count
    probabilities: list[float | None] = [None] * count
    if arrays:
        raw = model.runner.logits(np.stack(arrays)).astype(np.float64)
        if not np.isfinite(raw).all():
            raise ModelOutputError(
                f"Model version {model.model_version.pk} produced {np.count_nonzero(~np.isfinite(raw))} "
                f"non-finite logit(s) out of {raw.size} (e.g. {raw[~np.isfinite(raw)][0]})."
            )
        calibrated = sigmoid(raw / model.temperature)
        for position, logit, probability in zip(positions, raw, calibrated, strict=True):
            logits[position] = float(logit)
            probabilities[position] = float(probability)
    return InferenceResult(
        model_version=model.model_version, logits=logits, probabilities=probabilities, errors_per_scan=errors
    )
