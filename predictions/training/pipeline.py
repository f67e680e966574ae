"""Train, calibrate, evaluate on held-out babies, export and verify: one training run.

Database-free on purpose: it turns records into files and numbers (:class:`TrainingOutcome`);
the management command stores them as a ModelVersion. Tests run it on a few dozen images.

``ModelVersion.metrics`` (and ``metrics.json``) hold, all on the held-out **test** babies unless
named otherwise, with probabilities calibrated by the temperature fitted on validation:

* ``evaluated_on``, ``temperature``, ``splits`` (babies and scans per split);
* ``calibrated`` / ``uncalibrated``: ``per_scan`` and ``per_baby`` reports (count, accuracy and
  its 95 % interval, ROC AUC, Brier, ECE, confusion matrix; a baby's answer is the mean of its
  scans' logits, every scan counted, no abstention), plus ``per_scan_accuracy_by_week``;
  ``ece_before_calibration`` / ``ece_after_calibration`` (per scan); ``validation`` (the same
  on the validation babies the temperature was fitted on);
* ``abstention`` (**per baby**, what parents get): early scans gated out, then "cannot tell" by
  ``ml.abstention``; coverage and accuracy on the answered babies at the configured
  margin (``at_margin``), at a stricter one (``at_stricter_margin``) and for a table of margins
  (``by_margin``); see ``ml.metrics.abstention_report`` for every key;
* ``week_bands`` (**per scan**): ``{"unit": "scan", "margin", "min_gestational_week",
  "bands": {"<12" | "12" | "13-15" | "16+" | "unknown": {count, accuracy, accuracy_ci95, ece,
  mean_confidence, coverage, accuracy_answered, usable_share}}}`` (``week_band_report``);
* ``bayes`` (synthetic data only): the ceilings of the generator's distributions (per scan, per
  baby, per baby with equal weights as the pipeline combines, per scan by week band) and what
  the Bayes rule scores on these very test babies (``oracle_on_test``);
* ``parity``: the largest Keras-vs-LiteRT probability difference on the test scans.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ml import evaluation, metrics
from ml.preprocessing import InputSpec, PreprocessingError, preprocess_image
from ml.records import TrainingRecord
from ml.splits import split_by_baby
from predictions.evaluation_set import EvaluationSet
from predictions.training.export import (
    PARITY_TOLERANCE,
    export_keras,
    export_tflite,
    keras_logits,
    verify_exported,
)
from predictions.training.factory import build_model, default_input_spec
from predictions.training.plots import save_plots
from predictions.training.reports import bayes_report, evaluate_exported, library_versions

logger = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """The data or the options cannot produce a model (the message says why)."""


@dataclass(frozen=True)
class TrainingOptions:
    architecture: str = "small_cnn"
    image_size: int | None = None
    epochs: int = 12
    batch_size: int = 64
    # The peak learning rate, reached after ``warmup_epochs`` of linear warm-up, then a cosine
    # decay to zero at the last epoch.
    learning_rate: float = 2e-3
    warmup_epochs: int = 1
    # Epochs without a better validation loss before stopping, counted only once the model
    # beats chance on validation (see _EarlyStoppingOnceLearning).
    patience: int = 4
    seed: int = 0
    max_minutes: float | None = None
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    weights_path: str | None = None
    augment: bool = True
    parity_tolerance: float = PARITY_TOLERANCE
    # How answers are given (the settings PREDICTION_*), so the metrics measure the same rule.
    min_gestational_week: int = 12
    abstain_margin: float = 0.1
    # None: the margin + 0.1 (at most 0.45), to show what a stricter setting would cost.
    stricter_abstain_margin: float | None = None
    disagreement_threshold: float | None = 0.3

    @property
    def stricter_margin(self) -> float:
        if self.stricter_abstain_margin is not None:
            return self.stricter_abstain_margin
        return round(min(0.45, self.abstain_margin + 0.1), 4)


@dataclass
class TrainingOutcome:
    output_dir: Path
    keras_path: Path
    tflite_path: Path
    plot_paths: dict[str, Path]
    input_spec: InputSpec
    temperature: float
    metrics: dict
    parameters: dict
    baby_calibration: evaluation.BabyCalibration
    parity_max_difference: float
    split_sizes: dict = field(default_factory=dict)


class _TimeBudget(keras.callbacks.Callback):
    """Stops training once ``seconds`` have passed; the best weights so far are kept."""

    def __init__(self, seconds: float | None):
        super().__init__()
        self.seconds = seconds
        self.started = time.monotonic()
        self.exhausted = False

    def on_train_batch_end(self, batch, logs=None):
        if self.seconds is not None and time.monotonic() - self.started > self.seconds:
            self.exhausted = True
            self.model.stop_training = True


class _EarlyStoppingOnceLearning(keras.callbacks.Callback):
    """Early stopping on validation loss that starts counting only once the model has learnt.

    A network starting from random weights can sit on the loss's initial plateau (every scan
    called one sex) for a few epochs; Keras's EarlyStopping would count those and stop before it
    leaves. Here an epoch counts once validation accuracy has beaten ``chance`` (the majority
    share) by ``margin``. The best weights of the counted epochs are restored when training ends
    for any reason (patience, the time budget or the last epoch).
    """

    def __init__(self, *, patience: int, chance: float, margin: float = 0.05):
        super().__init__()
        self.patience, self.threshold = patience, chance + margin
        self.learnt_at: int | None = None
        self.best_loss, self.best_epoch, self.best_weights, self.wait = float("inf"), None, None, 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        accuracy, loss = logs.get("val_accuracy", 0.0), logs.get("val_loss", float("inf"))
        if self.learnt_at is None and accuracy >= self.threshold:
            self.learnt_at = epoch + 1
        if self.learnt_at is None:
            return
        if loss < self.best_loss:
            self.best_loss, self.best_epoch, self.wait = loss, epoch + 1, 0
            self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def _learning_rate_schedule(options: TrainingOptions, steps_per_epoch: int):
    """Linear warm-up to the peak rate, then a cosine decay over the remaining epochs."""
    warmup = max(0, min(options.warmup_epochs, options.epochs - 1)) * steps_per_epoch
    total = options.epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else options.learning_rate,
        decay_steps=max(1, total - warmup),
        warmup_target=options.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


class _EpochLines(keras.callbacks.Callback):
    """One line per epoch through ``log`` (the command's stdout), instead of Keras's bar."""

    def __init__(self, log: Callable[[str], None], epochs: int):
        super().__init__()
        self.log, self.epochs = log, epochs
        self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        nan = float("nan")
        self.log(
            f"epoch {epoch + 1}/{self.epochs}: loss {logs.get('loss', nan):.4f} "
            f"acc {logs.get('accuracy', nan):.3f} | val loss {logs.get('val_loss', nan):.4f} "
            f"val acc {logs.get('val_accuracy', nan):.3f} | {time.monotonic() - self.started:.0f} s"
        )


def load_split(records: list[TrainingRecord], spec: InputSpec, log: Callable[[str], None]):
    """Preprocess every record with the one preprocessing function; skip undecodable scans."""
    kept, arrays = [], []
    for record in records:
        try:
            arrays.append(preprocess_image(record.source(), spec))
        except (PreprocessingError, OSError) as exc:
            log(f"skipped an undecodable scan of baby {record.baby_key}: {exc}")
            continue
        kept.append(record)
    batch = np.stack(arrays) if arrays else np.zeros((0, *spec.shape), dtype=np.float32)
    labels = np.array([record.label for record in kept], dtype=np.float32)
    return kept, batch, labels


def _augment(dataset, spec: InputSpec, seed: int):
    """Mirror, shift by up to 6 % and scale brightness by ±15 %: what real scans vary in.

    No rotation: the spine's direction is the reference the angle is measured against.
    Stateless ops fed from a seeded random stream keep the run reproducible.
    """
    size, pad = spec.image_size, max(1, round(spec.image_size * 0.06))
    seeds = tf.data.Dataset.random(seed=seed).batch(6).map(lambda values: tf.reshape(values, (3, 2)))

    def augment(example, three_seeds):
        image, label = example
        image = tf.image.stateless_random_flip_left_right(image, seed=three_seeds[0])
        image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
        image = tf.image.stateless_random_crop(image, (size, size, spec.channels), seed=three_seeds[1])
        if spec.normalization == "unit":
            image = image * tf.random.stateless_uniform((), seed=three_seeds[2], minval=0.85, maxval=1.15)
        return image, label

    return tf.data.Dataset.zip((dataset, seeds)).map(augment, num_parallel_calls=tf.data.AUTOTUNE)


def train_and_export(
    records: list[TrainingRecord],
    *,
    options: TrainingOptions,
    output_dir: Path,
    synthetic_info: dict | None = None,
    evaluation_set: EvaluationSet | None = None,
    log: Callable[[str], None] = logger.info,
) -> TrainingOutcome:
    """Split by baby, train, calibrate on validation, evaluate on test, export, verify, evaluate.

    ``evaluation_set`` (the fixed synthetic set, for synthetic data) is what the exported
    ``.tflite`` is finally measured on, as ``metrics["evaluation"]``; without one, the held-out
    test babies are (real data has no fixed set yet).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        splits = split_by_baby(
            records, seed=options.seed, val_fraction=options.val_fraction, test_fraction=options.test_fraction
        )
        spec = default_input_spec(options.architecture, options.image_size)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc

    loaded = {}
    for name in ("train", "val", "test"):
        kept, batch, labels = load_split(splits[name], spec, log)
        if len(kept) == 0:
            raise TrainingError(f"The {name} split is empty: add babies or change the fractions.")
        loaded[name] = (kept, batch, labels)
    train_labels = loaded["train"][2]
    if len(set(train_labels.tolist())) < 2:
        raise TrainingError("The training split needs scans of both sexes.")
    sizes = {
        name: {"scans": len(kept), "babies": len({r.baby_key for r in kept})}
        for name, (kept, _, _) in loaded.items()
    }
    log(
        "data: "
        + ", ".join(f"{name} {size['babies']} babies / {size['scans']} scans" for name, size in sizes.items())
        + f"; input {spec.image_size}px {spec.color_mode} ({time.monotonic() - started:.0f} s)"
    )

    # Seeds for Python, NumPy and TensorFlow, and deterministic kernels: a seed gives one result.
    keras.utils.set_random_seed(options.seed)
    tf.config.experimental.enable_op_determinism()
    try:
        model = build_model(
            options.architecture, spec, weights_path=options.weights_path, sample_images=loaded["train"][1]
        )
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc
    steps_per_epoch = max(1, int(np.ceil(len(train_labels) / options.batch_size)))
    model.compile(
        optimizer=keras.optimizers.Adam(_learning_rate_schedule(options, steps_per_epoch)),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")],
    )
    # Balanced class weights: each sex contributes half of the loss, whatever the mix.
    counts = np.bincount(train_labels.astype(int), minlength=2)
    class_weight = {label: float(len(train_labels) / (2 * counts[label])) for label in (0, 1)}

    train_dataset = tf.data.Dataset.from_tensor_slices((loaded["train"][1], train_labels)).shuffle(
        len(train_labels), seed=options.seed, reshuffle_each_iteration=True
    )
    if options.augment:
        train_dataset = _augment(train_dataset, spec, options.seed)
    train_dataset = train_dataset.batch(options.batch_size).prefetch(tf.data.AUTOTUNE)
    budget = _TimeBudget(options.max_minutes * 60 if options.max_minutes else None)
    val_labels_all = loaded["val"][2]
    chance = float(max(val_labels_all.mean(), 1 - val_labels_all.mean())) if len(val_labels_all) else 0.5
    early_stopping = _EarlyStoppingOnceLearning(patience=options.patience, chance=chance)
    history = model.fit(
        train_dataset,
        validation_data=(loaded["val"][1], loaded["val"][2]),
        epochs=options.epochs,
        class_weight=class_weight,
        callbacks=[early_stopping, budget, _EpochLines(log, options.epochs)],
        shuffle=False,  # the dataset shuffles itself, seeded
        verbose=0,
    )
    epochs_run = len(history.history.get("loss", []))
    if early_stopping.learnt_at is None:
        log(f"validation accuracy never beat chance ({chance:.1%}) by 5 points: this model has not learnt.")
    training_seconds = time.monotonic() - started

    val_records, val_batch, val_labels = loaded["val"]
    test_records, test_batch, test_labels = loaded["test"]
    val_logits = keras_logits(model, val_batch)
    test_logits = keras_logits(model, test_batch)
    temperature = metrics.fit_temperature(val_labels, val_logits)
    baby_calibration = evaluation.fit_baby_calibration(
        labels=val_labels,
        calibrated_logits=val_logits.astype(np.float64) / temperature,
        baby_keys=[record.baby_key for record in val_records],
        weeks=[record.gestational_week for record in val_records],
        min_gestational_week=options.min_gestational_week,
    )
    baby_keys = [record.baby_key for record in test_records]
    weeks = [record.gestational_week for record in test_records]
    uncalibrated = metrics.evaluate(labels=test_labels, logits=test_logits, baby_keys=baby_keys)
    calibrated = metrics.evaluate(
        labels=test_labels,
        logits=test_logits,
        baby_keys=baby_keys,
        temperature=temperature,
        gestational_weeks=weeks,
    )
    report = {
        "evaluated_on": "held-out test babies",
        "temperature": temperature,
        "calibrated": calibrated,
        "uncalibrated": uncalibrated,
        "ece_before_calibration": uncalibrated["per_scan"]["ece"],
        "ece_after_calibration": calibrated["per_scan"]["ece"],
        "validation": metrics.evaluate(
            labels=val_labels,
            logits=val_logits,
            baby_keys=[record.baby_key for record in val_records],
            temperature=temperature,
        ),
        "splits": sizes,
    }
    calibrated_test_logits = test_logits.astype(np.float64) / temperature
    try:
        report["abstention"] = metrics.abstention_report(
            labels=test_labels,
            calibrated_logits=calibrated_test_logits,
            baby_keys=baby_keys,
            weeks=weeks,
            min_gestational_week=options.min_gestational_week,
            margin=options.abstain_margin,
            stricter_margin=options.stricter_margin,
            disagreement_threshold=options.disagreement_threshold,
            scale_for_scans=baby_calibration.scale,
        )
    except ValueError as exc:  # a margin or threshold out of range
        raise TrainingError(str(exc)) from exc
    report["week_bands"] = {
        "unit": "scan",
        "margin": options.abstain_margin,
        "min_gestational_week": options.min_gestational_week,
        "bands": metrics.week_band_report(
            labels=test_labels,
            calibrated_logits=calibrated_test_logits,
            weeks=weeks,
            margin=options.abstain_margin,
            min_gestational_week=options.min_gestational_week,
        ),
    }
    if synthetic_info is not None:
        report["bayes"] = bayes_report(synthetic_info, test_records, test_labels, baby_keys)

    keras_path = export_keras(model, output_dir / "model.keras")
    tflite_path = export_tflite(model, output_dir / "model.tflite")
    parity = verify_exported(
        keras_path, tflite_path, test_batch, temperature=temperature, tolerance=options.parity_tolerance
    )
    report["parity"] = {
        "max_probability_difference": parity,
        "tolerance": options.parity_tolerance,
        "scans": len(test_batch),
    }
    report["baby_calibration"] = baby_calibration.to_dict()
    report["evaluation"] = evaluate_exported(
        tflite_path,
        spec,
        test_records,
        test_logits,
        temperature,
        baby_calibration,
        options,
        evaluation_set,
        log,
    )
    report["reproducibility"] = {
        "seed": options.seed,
        "op_determinism": True,
        "libraries": library_versions(),
    }
    plot_paths = save_plots(
        output_dir,
        labels=test_labels,
        logits=test_logits,
        temperature=temperature,
        baby_keys=baby_keys,
        synthetic=synthetic_info is not None,
    )
    parameters = {
        **asdict(options),
        "input_spec": spec.to_dict(),
        "class_weight": {str(k): v for k, v in class_weight.items()},
        "epochs_run": epochs_run,
        "best_epoch": early_stopping.best_epoch,
        "learnt_at_epoch": early_stopping.learnt_at,
        "stopped_by_time_budget": budget.exhausted,
        "training_seconds": round(training_seconds, 1),
        "history": {key: [round(float(v), 5) for v in values] for key, values in history.history.items()},
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "op_determinism": True,
    }
    (output_dir / "metrics.json").write_text(
        json.dumps({"metrics": report, "parameters": parameters}, indent=2)
    )
    return TrainingOutcome(
        output_dir=output_dir,
        keras_path=keras_path,
        tflite_path=tflite_path,
        plot_paths=plot_paths,
        input_spec=spec,
        temperature=temperature,
        metrics=report,
        parameters=parameters,
        baby_calibration=baby_calibration,
        parity_max_difference=parity,
        split_sizes=sizes,
    )
