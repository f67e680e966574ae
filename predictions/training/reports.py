"""What a training run reports besides its own fit: the evaluation of the exported ``.tflite``,
the synthetic data's Bayes ceilings, and the library versions that shaped the model.

Imported by ``predictions.training.pipeline`` only (TensorFlow is imported for its version).
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from ml import evaluation, metrics
from ml.synthetic import (
    SyntheticConfig,
    bayes_ceiling,
    bayes_ceiling_for_weeks,
    equal_weight_ceiling,
)
from predictions.evaluation_set import tflite_logits


def library_versions() -> dict[str, str]:
    """The versions that shaped a trained model, recorded with its metrics."""
    import ai_edge_litert
    import PIL

    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "ai_edge_litert": getattr(ai_edge_litert, "__version__", "unknown"),
    }


def evaluate_exported(
    tflite_path, spec, test_records, test_logits, temperature, calibration, options, evaluation_set, log
) -> dict:
    """The exported ``.tflite``'s evaluation: on the fixed set if given, else on the test babies."""
    rule = {
        "temperature": temperature,
        "calibration": calibration,
        "min_gestational_week": options.min_gestational_week,
        "margin": options.abstain_margin,
        "disagreement_threshold": options.disagreement_threshold,
        "seed": options.seed,
    }
    if evaluation_set is None:
        report = evaluation.evaluate_babies(
            labels=[record.label for record in test_records],
            raw_logits=test_logits,
            baby_keys=[record.baby_key for record in test_records],
            weeks=[record.gestational_week for record in test_records],
            **rule,
        )
        identity = {"kind": "held_out_test", "name": "held-out test set"}
        return {"set": {**identity, "digest": report["babies_digest"]}, **report}
    started = time.monotonic()
    records = evaluation_set.records
    logits = tflite_logits(tflite_path.read_bytes(), spec, records)
    report = evaluation.evaluate_babies(
        labels=[record.label for record in records],
        raw_logits=logits,
        baby_keys=[record.baby_key for record in records],
        weeks=[record.gestational_week for record in records],
        **rule,
    )
    log(
        f"evaluated on the {evaluation_set.identity['name']} ({report['babies']} babies, "
        f"{len(records)} scans) in {time.monotonic() - started:.0f} s"
    )
    return {"set": evaluation_set.identity, **report}


def bayes_report(synthetic_info: dict, test_records, test_labels, baby_keys) -> dict:
    """The theoretical ceilings and what the Bayes rule scores on these very test babies."""
    config = SyntheticConfig.from_dict(synthetic_info["config"])
    scans_per_baby = int(synthetic_info["scans_per_baby"])
    report = {
        "ceiling_per_scan": bayes_ceiling(config, 1),
        "ceiling_per_baby": bayes_ceiling(config, scans_per_baby),
        "ceiling_per_baby_equal_weights": equal_weight_ceiling(config, scans_per_baby),
        "ceiling_per_scan_by_week_band": _band_ceilings(config),
        "scans_per_baby": scans_per_baby,
        "decision_angle": config.decision_angle,
    }
    angles = [record.measured_angle for record in test_records]
    if all(angle is not None for angle in angles):
        weeks = [record.gestational_week for record in test_records]
        # The optimal per-baby rule weighs each angle by its precision at the scan's week.
        weights = (
            np.array([1 / config.scan_sd(week) ** 2 for week in weeks])
            if all(week is not None for week in weeks)
            else None
        )
        report["oracle_on_test"] = metrics.bayes_oracle(
            labels=test_labels,
            measured_angles=np.array(angles),
            baby_keys=baby_keys,
            decision_angle=config.decision_angle,
            scan_weights=weights,
        )
    return report


def _band_ceilings(config: SyntheticConfig) -> dict[str, float]:
    """The per-scan ceiling of each week band the generator draws weeks in."""
    ceilings = {}
    for name, first, last in metrics.WEEK_BANDS:
        weeks = range(first or config.min_gestational_week, (last or config.max_gestational_week) + 1)
        ceiling = bayes_ceiling_for_weeks(config, weeks)
        if ceiling is not None:
            ceilings[name] = ceiling
    return ceilings
