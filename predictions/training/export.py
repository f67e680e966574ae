"""Export to ``.keras`` and ``.tflite`` (fp32) and prove the two give the same answers."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ml.litert import LiteRTModel
from ml.metrics import sigmoid

# The largest difference in probability of male allowed between Keras and LiteRT on the test
# split. fp32 kernels differ in summation order, which moves probabilities by ~1e-6.
PARITY_TOLERANCE = 1e-4


class ParityError(RuntimeError):
    """The exported ``.tflite`` does not reproduce the Keras model's probabilities."""


def export_keras(model: keras.Model, path: Path) -> Path:
    model.save(path)
    return path


def export_tflite(model: keras.Model, path: Path) -> Path:
    """Convert to an fp32 flatbuffer (no quantisation, so parity can be strict)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    # The converter prints the intermediate SavedModel's signature to stdout; keep it out of ours.
    with contextlib.redirect_stdout(io.StringIO()):
        flatbuffer = converter.convert()
    path.write_bytes(flatbuffer)
    return path


def keras_logits(model: keras.Model, batch: np.ndarray, batch_size: int = 256) -> np.ndarray:
    if len(batch) == 0:
        return np.zeros((0,), dtype=np.float32)
    return np.asarray(model.predict(batch, batch_size=batch_size, verbose=0), dtype=np.float32).reshape(-1)


def tflite_logits(path: Path, batch: np.ndarray, batch_size: int = 256) -> np.ndarray:
    runner = LiteRTModel(path.read_bytes(), num_threads=2)
    chunks = [runner.logits(batch[start : start + batch_size]) for start in range(0, len(batch), batch_size)]
    return np.concatenate(chunks) if chunks else np.zeros((0,), dtype=np.float32)


def check_parity(
    keras_probabilities: np.ndarray, tflite_probabilities: np.ndarray, *, tolerance: float = PARITY_TOLERANCE
) -> float:
    """Return the largest absolute difference; raise :class:`ParityError` above ``tolerance``."""
    keras_probabilities = np.asarray(keras_probabilities, dtype=np.float64)
    tflite_probabilities = np.asarray(tflite_probabilities, dtype=np.float64)
    if keras_probabilities.shape != tflite_probabilities.shape:
        raise ParityError("Keras and LiteRT returned different numbers of probabilities.")
    if not np.all(np.isfinite(tflite_probabilities)):
        raise ParityError("LiteRT returned a probability that is not a finite number.")
    worst = (
        float(np.max(np.abs(keras_probabilities - tflite_probabilities))) if len(keras_probabilities) else 0.0
    )
    if worst > tolerance:
        raise ParityError(
            f"Keras and LiteRT disagree by up to {worst:.2e} in probability (allowed {tolerance:.0e})."
        )
    return worst


def verify_exported(
    keras_path: Path,
    tflite_path: Path,
    batch: np.ndarray,
    *,
    temperature: float,
    tolerance: float = PARITY_TOLERANCE,
) -> float:
    """Reload both files from disk, run them on ``batch`` and compare calibrated probabilities."""
    reloaded = keras.models.load_model(keras_path, compile=False)
    return check_parity(
        sigmoid(keras_logits(reloaded, batch) / temperature),
        sigmoid(tflite_logits(tflite_path, batch) / temperature),
        tolerance=tolerance,
    )
