"""Writes of model versions: creating one from a training run's files, activating one."""

from __future__ import annotations

import logging
import math
import uuid
from pathlib import Path

from django.core.files import File
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import slugify

from babies.models import Baby, LabelSource, Scan, Sex
from babies.services import baby_confirm_sex
from predictions import inference
from predictions.ml.metrics import sigmoid
from predictions.ml.preprocessing import InputSpec
from predictions.models import ModelVersion, OutcomeAnswer, OutcomeRequest, Prediction

logger = logging.getLogger(__name__)

PLOT_FIELDS = {
    "roc": "roc_plot",
    "reliability": "reliability_plot",
    "confusion_matrix": "confusion_matrix_plot",
}


def model_version_create(
    *,
    name: str,
    architecture: str,
    input_spec: InputSpec,
    temperature: float,
    keras_path: Path,
    tflite_path: Path,
    metrics: dict,
    training_parameters: dict | None = None,
    plot_paths: dict[str, Path] | None = None,
    training_data_digest: str = "",
    training_data_description: str = "",
    is_synthetic: bool,
) -> ModelVersion:
    """Store a trained model's files in the ``models`` storage and record it, inactive.

    Activation is a separate, deliberate step (:func:`model_version_activate`).
    """
    version = ModelVersion(
        name=name,
        slug=slugify(name)[:60] or "model",
        architecture=architecture,
        input_spec=input_spec.to_dict(),
        temperature=temperature,
        metrics=metrics,
        training_parameters=training_parameters or {},
        training_data_digest=training_data_digest,
        training_data_description=training_data_description,
        is_synthetic=is_synthetic,
    )
    stored: list = []
    try:
        for field_name, path in [("keras_file", keras_path), ("tflite_file", tflite_path)] + [
            (PLOT_FIELDS[kind], path) for kind, path in (plot_paths or {}).items()
        ]:
            with Path(path).open("rb") as handle:
                getattr(version, field_name).save(Path(path).name, File(handle), save=False)
            stored.append(getattr(version, field_name))
        version.full_clean()
        with transaction.atomic():
            version.save()
    except Exception:
        # Files without a row would be orphans nobody can find: remove them.
        for field_file in stored:
            field_file.delete(save=False)
        raise
    logger.info("model version created id=%s name=%s synthetic=%s", version.pk, name, is_synthetic)
    return version


def model_version_activate(*, model_version: ModelVersion, user=None, reason: str = "") -> ModelVersion:
    """Make ``model_version`` the one predictions use, deactivating whichever was active.

    The partial unique constraint guarantees at most one active version even if two staff
    members activate at the same moment; the loser of that race retries once the winner's
    transaction is visible.
    """
    for attempt in range(3):
        try:
            with transaction.atomic():
                ModelVersion.objects.filter(is_active=True).exclude(pk=model_version.pk).update(
                    is_active=False
                )
                now = timezone.now()
                ModelVersion.objects.filter(pk=model_version.pk).update(
                    is_active=True,
                    activated_at=now,
                    activated_by=user,
                    activation_reason=reason[:255],
                )
            break
        except IntegrityError:
            if attempt == 2:
                raise
    model_version.refresh_from_db()
    logger.info(
        "model version activated id=%s by=%s reason=%r",
        model_version.pk,
        getattr(user, "pk", None),
        reason,
    )
    return model_version


def synthetic_babies_create(
    *,
    owner,
    babies: int,
    scans_per_baby: int = 3,
    seed: int = 0,
    config=None,
) -> tuple[int, int]:
    """Give ``owner`` synthetic babies with generated scans, through the babies services.

    For demos and manual testing: the scans go through the same upload path as a parent's.
    Babies are named "Synthetic baby demo00000", …; one that already exists is left alone, so
    running this twice adds nothing. Returns (babies created, scans created). Sexes are not
    confirmed: the demo is to ask the model.
    """
    import datetime

    from django.core.files.uploadedfile import SimpleUploadedFile

    from babies.models import Baby
    from babies.services import baby_create, scan_create
    from predictions.ml.synthetic import SyntheticConfig, generate_baby

    config = config or SyntheticConfig()
    existing = set(Baby.all_objects.filter(owner=owner).values_list("name", flat=True))
    today = timezone.localdate()
    babies_created = scans_created = 0
    for index in range(babies):
        scans = generate_baby(
            seed=seed, split="demo", index=index, scans_per_baby=scans_per_baby, config=config
        )
        name = f"Synthetic baby {scans[0].baby_key}"
        if name in existing:
            continue
        with transaction.atomic():
            baby = baby_create(
                owner=owner,
                name=name,
                due_date=today + datetime.timedelta(weeks=40 - scans[0].gestational_week),
            )
            for scan in scans:
                upload = SimpleUploadedFile(f"{scan.baby_key}_{scan.scan_index}.jpg", scan.jpeg, "image/jpeg")
                _, created = scan_create(
                    baby=baby, uploaded_file=upload, gestational_week=scan.gestational_week
                )
                scans_created += int(created)
        babies_created += 1
    return babies_created, scans_created


# --- Predictions and outcomes ------------------------------------------------------------------
class PredictionError(Exception):
    """No prediction could be made; ``message`` is a sentence for the parent."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.message = message
        self.code = code


def prediction_create(*, baby: Baby) -> Prediction:
    """Predict ``baby``'s sex from all its current scans, in one LiteRT batch, and record it.

    Every scan goes through the one preprocessing function and the active model version. A scan
    that cannot be read is recorded in ``scan_errors`` and the others still count; a prediction
    needs at least one readable scan and an active model (:class:`PredictionError` otherwise).

    The baby's answer is the sigmoid of the **mean of the scans' calibrated logits**
    (logit / temperature, per scan). Why this rule:

    * it is the rule the model's held-out per-baby accuracy was measured with
      (``predictions.ml.metrics.aggregate_by_baby``), so the accuracy we show the parent
      describes exactly this answer, and the temperature fitted on validation applies to it;
    * averaging in logit space lets a clear scan count for more than a doubtful one (a mean of
      probabilities squashes a confident scan towards 0.5 first);
    * unlike a sum of logits (scans as independent evidence) it does not grow more certain with
      every extra picture of the same baby: scans of one baby share its anatomy, the machine and
      the model's mistakes, so they are far from independent.

    The temperature divides every logit before the mean, which, the mean being linear, is the
    same as dividing the mean: the calibration holds for the combined answer too.
    """
    scans = list(Scan.objects.filter(baby=baby).order_by("uploaded_at", "id"))
    if not scans:
        raise PredictionError(
            f"Upload at least one scan of {baby.display_name} first, then ask for a prediction.",
            code="no_scans",
        )
    try:
        result = inference.predict_scans([scan.image for scan in scans])
    except inference.NoActiveModelError as exc:
        logger.warning("prediction refused baby=%s: no active model version", baby.pk)
        raise PredictionError(
            "Predictions are not available at the moment because no model is switched on. "
            "Please try again later.",
            code="no_model",
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
    errors = [
        {"scan_id": scans[index].pk, "error": error}
        for index, error in enumerate(result.errors_per_scan)
        if error is not None
    ]
    if errors:
        logger.warning("prediction baby=%s: %d scan(s) unreadable: %s", baby.pk, len(errors), errors)
    if not used:
        raise PredictionError(
            f"None of the scans of {baby.display_name} could be read, so there is no prediction. "
            "Please delete them and upload them again.",
            code="no_readable_scans",
        )

    calibrated_logits = [result.logits[index] / version.temperature for index in used]
    combined_logit = math.fsum(calibrated_logits) / len(calibrated_logits)
    probability_male = float(sigmoid(combined_logit))
    prediction = Prediction(
        baby=baby,
        model_version=version,
        # The same threshold as the evaluation's (probability of male >= 0.5 counts as male).
        predicted_sex=Sex.MALE if probability_male >= 0.5 else Sex.FEMALE,
        probability_male=probability_male,
        combined_logit=combined_logit,
        temperature=version.temperature,
        scan_ids=[scan.pk for scan in scans],
        scan_ids_used=[scans[index].pk for index in used],
        scan_probabilities=[
            {
                "scan_id": scans[index].pk,
                "logit": result.logits[index],
                "probability_male": result.probabilities[index],
            }
            for index in used
        ],
        scan_errors=errors,
    )
    prediction.full_clean()
    with transaction.atomic():
        prediction.save()
    logger.info(
        "prediction created id=%s baby=%s version=%s p_male=%.4f scans=%d/%d",
        prediction.pk,
        baby.pk,
        version.pk,
        probability_male,
        len(used),
        len(scans),
    )
    return prediction


def outcome_request_claim(*, baby: Baby, prediction: Prediction, email: str) -> OutcomeRequest | None:
    """Claim the right to send ``baby``'s outcome e-mail; ``None`` if another run has it or it went.

    The claim is one conditional UPDATE (healthchecks' ``sendreports`` pattern): it matches only
    a row that was never sent and whose claim is empty or expired, so of two runs racing for the
    same row exactly one sees ``1`` as the row count (PostgreSQL re-checks the condition after
    the first run's update commits). The row itself is inserted first if missing; its unique
    baby makes two concurrent inserts one row.
    """
    now = timezone.now()
    OutcomeRequest.objects.bulk_create([OutcomeRequest(baby=baby)], ignore_conflicts=True)
    claim_id = uuid.uuid4()
    claimed = (
        OutcomeRequest.objects.filter(
            baby=baby, sent_at__isnull=True, attempts__lt=OutcomeRequest.MAX_ATTEMPTS
        )
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - OutcomeRequest.CLAIM_EXPIRY))
        .update(
            claimed_at=now,
            claim_id=claim_id,
            prediction=prediction,
            email=email,
            attempts=F("attempts") + 1,
        )
    )
    if claimed != 1:
        return None
    return OutcomeRequest.objects.get(baby=baby, claim_id=claim_id)


def outcome_request_mark_sent(*, outcome_request: OutcomeRequest) -> None:
    """Record the sending; from now on no run selects this baby again."""
    updated = OutcomeRequest.objects.filter(
        pk=outcome_request.pk, claim_id=outcome_request.claim_id, sent_at__isnull=True
    ).update(sent_at=timezone.now(), last_error="")
    if updated != 1:
        # Only possible if this send took longer than OutcomeRequest.CLAIM_EXPIRY and another run
        # took the claim over: that run may have sent it too.
        logger.error("outcome e-mail for baby %s: claim lost before it was recorded", outcome_request.baby_id)


def outcome_request_release(*, outcome_request: OutcomeRequest, error: str) -> None:
    """Give the claim back after a failed send, so that the next run tries again."""
    OutcomeRequest.objects.filter(
        pk=outcome_request.pk, claim_id=outcome_request.claim_id, sent_at__isnull=True
    ).update(claimed_at=None, claim_id=None, last_error=error[:500])


def outcome_answer_record(*, baby: Baby, prediction: Prediction, prediction_was_right: bool) -> OutcomeAnswer:
    """Keep the parent's answer and label the baby with the sex it implies (source: e-mail).

    Right means the predicted sex; wrong means the other one. Every answer is a new row, so a
    changed answer keeps the earlier one; the baby's label follows the latest.
    """
    if prediction.baby_id != baby.pk:
        raise ValueError("The prediction is not this baby's.")
    other = Sex.FEMALE if prediction.predicted_sex == Sex.MALE else Sex.MALE
    sex = prediction.predicted_sex if prediction_was_right else other
    answer = OutcomeAnswer(
        baby=baby, prediction=prediction, prediction_was_right=prediction_was_right, sex=sex
    )
    answer.full_clean()
    with transaction.atomic():
        answer.save()
        baby_confirm_sex(baby=baby, sex=sex, source=LabelSource.EMAIL)
    logger.info(
        "outcome answered baby=%s prediction=%s right=%s sex=%s",
        baby.pk,
        prediction.pk,
        prediction_was_right,
        sex,
    )
    return answer
