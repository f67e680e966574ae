"""A prediction for a baby: gate by week, run the active model, answer or say "cannot tell"."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from babies.models import Baby, Scan
from ml.abstention import decide_for_baby
from ml.gestation import is_scan_usable
from predictions import inference
from predictions.models import Prediction

logger = logging.getLogger(__name__)


class PredictionError(Exception):
    """No prediction could be made; ``message`` is a sentence for the parent."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.message = message
        self.code = code


def _too_early_entry(*, scan: Scan, minimum_week: int) -> dict:
    return {
        "scan_id": scan.pk,
        "reason": "too_early",
        "week": scan.gestational_week,
        "minimum_week": minimum_week,
        "error": f"taken at week {scan.gestational_week}; predictions need week {minimum_week} or later",
    }


def prediction_create(*, baby: Baby) -> Prediction:
    """Predict ``baby``'s sex from its usable scans, in one LiteRT batch, and record the answer.

    Three steps, each leaving a scan out with a reason the parent is shown (``scan_errors``):

    1. **Gating by gestational week**: a scan recorded below
       ``settings.PREDICTION_MIN_GESTATIONAL_WEEK`` is not sent to the model ("too early");
       a scan without a week counts (``ml.gestation.is_scan_usable``). When every
       scan is too early no model runs and no row is written: :class:`PredictionError` with
       code ``"too_early"`` says which week to wait for. A row would need a model version and a
       probability that were never computed, and "cannot tell yet" would wrongly suggest the
       model looked and hesitated.
    2. **Inference** of the remaining scans through the one preprocessing function and the
       active model version; an unreadable scan is left out ("unreadable"), the others count.
    3. **The answer** (``ml.abstention.decide_for_baby``, the rule the training
       pipeline measures coverage and accuracy with): the sigmoid of the mean of the scans'
       calibrated logits (logit / temperature) times the version's per-baby scale for that
       many scans (fitted on validation babies), or "cannot tell yet" when that probability lies
       within ``PREDICTION_ABSTAIN_MARGIN`` of 50 % or when two scans confidently disagree
       (``PREDICTION_DISAGREEMENT_THRESHOLD``). ``predicted_sex`` keeps the side it leans to.

    Why the mean of calibrated logits: it is the rule the held-out per-baby accuracy was
    measured with (``ml.metrics.aggregate_by_baby``); averaging in logit space lets a
    clear scan count for more than a doubtful one; and unlike a sum it does not grow more
    certain with every extra picture of the same baby (scans of one baby are far from
    independent). The temperature calibrates one scan; the per-baby scale then corrects the mean,
    which is under-confident for a baby whose scans share one anatomy.
    """
    scans = list(
        Scan.objects.filter(baby=baby)
        .order_by("uploaded_at", "id")
        .only("pk", "image", "model_input", "gestational_week")
    )
    if not scans:
        raise PredictionError(
            f"Upload at least one scan of {baby.display_name} first, then ask for a prediction.",
            code="no_scans",
        )
    minimum_week = settings.PREDICTION_MIN_GESTATIONAL_WEEK
    candidates = [scan for scan in scans if is_scan_usable(scan.gestational_week, minimum_week)]
    too_early = [
        _too_early_entry(scan=scan, minimum_week=minimum_week) for scan in scans if scan not in candidates
    ]
    if not candidates:
        if len(scans) == 1:
            taken = f"The scan of {baby.display_name} was taken at week {scans[0].gestational_week}"
        else:
            weeks = ", ".join(str(scan.gestational_week) for scan in scans)
            taken = (
                f"All {len(scans)} scans of {baby.display_name} were taken before week {minimum_week} "
                f"(weeks {weeks})"
            )
        raise PredictionError(
            f"{taken}; predictions need week {minimum_week} or later, because before then girls and "
            "boys cannot be told apart reliably. Please upload a scan from week "
            f"{minimum_week} on when you have one.",
            code="too_early",
        )
    try:
        # The scans themselves: inference reads each one's small model-ready derivative.
        result = inference.predict_scans(candidates)
    except inference.NoActiveModelError as exc:
        logger.warning("prediction refused baby=%s: no active model version", baby.pk)
        if inference.demo_model_is_training():
            raise PredictionError(
                "Predictions are warming up: the demo model is still being trained, which takes a few "
                "minutes after the server starts. Your scans are kept; please try again shortly.",
                code="warming_up",
            ) from exc
        raise PredictionError(
            "Predictions are not available at the moment because no model is switched on. "
            "Please try again later.",
            code="no_model",
        ) from exc
    except inference.ModelOutputError as exc:
        logger.exception("prediction failed baby=%s: the active model answered NaN or infinity", baby.pk)
        raise PredictionError(
            "Predictions are not available at the moment because the model is not working properly. "
            "We have been told about it; please try again later.",
            code="model_broken",
        ) from exc
    except inference.ModelLoadError as exc:
        logger.exception("prediction failed baby=%s: the active model cannot be loaded", baby.pk)
        raise PredictionError(
            "Predictions are not available at the moment because the model could not be loaded. "
            "We have been told about it; please try again later.",
            code="model_broken",
        ) from exc

    version = result.model_version
    used = result.succeeded
    unreadable = [
        {"scan_id": candidates[index].pk, "reason": "unreadable", "error": error}
        for index, error in enumerate(result.errors_per_scan)
        if error is not None
    ]
    if unreadable:
        logger.warning("prediction baby=%s: %d scan(s) unreadable: %s", baby.pk, len(unreadable), unreadable)
    if not used:
        raise PredictionError(
            f"None of the scans of {baby.display_name} that are late enough could be read, so there is "
            "no prediction. Please delete them and upload them again."
            if too_early
            else f"None of the scans of {baby.display_name} could be read, so there is no prediction. "
            "Please delete them and upload them again.",
            code="no_readable_scans",
        )

    margin = settings.PREDICTION_ABSTAIN_MARGIN
    disagreement_threshold = settings.PREDICTION_DISAGREEMENT_THRESHOLD
    decision = decide_for_baby(
        [result.logits[index] / version.temperature for index in used],
        margin=margin,
        disagreement_threshold=disagreement_threshold,
        scale=version.get_baby_calibration().scale(len(used)),
    )
    order = {scan.pk: position for position, scan in enumerate(scans)}
    prediction = Prediction(
        baby=baby,
        model_version=version,
        answer=decision.decision,
        abstain_reason=decision.reason or "",
        abstain_margin=margin,
        disagreement_threshold=disagreement_threshold,
        predicted_sex=decision.leaning,
        probability_male=decision.probability_male,
        combined_logit=decision.combined_logit,
        temperature=version.temperature,
        aggregation="scaled_mean_calibrated_logit" if version.baby_calibration else "mean_calibrated_logit",
        scan_ids=[scan.pk for scan in scans],
        scan_ids_used=[candidates[index].pk for index in used],
        scan_probabilities=[
            {
                "scan_id": candidates[index].pk,
                "logit": result.logits[index],
                "probability_male": result.probabilities[index],
            }
            for index in used
        ],
        # In the order of the baby's scans, so the parent reads "scan 1, scan 3".
        scan_errors=sorted(too_early + unreadable, key=lambda entry: order[entry["scan_id"]]),
    )
    # The baby and the version were loaded a moment ago and the database enforces both foreign
    # keys and the probability's check constraint: skipping those three validation queries keeps
    # a prediction request close to the cost of the network itself (see bench/predict.py).
    prediction.full_clean(exclude=["baby", "model_version"], validate_constraints=False)
    with transaction.atomic():
        prediction.save()
    logger.info(
        "prediction created id=%s baby=%s version=%s answer=%s reason=%s p_male=%.4f "
        "scans=%d/%d too_early=%d",
        prediction.pk,
        baby.pk,
        version.pk,
        prediction.answer,
        prediction.abstain_reason or "-",
        prediction.probability_male,
        len(used),
        len(scans),
        len(too_early),
    )
    return prediction
