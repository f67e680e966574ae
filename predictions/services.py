"""Writes of model versions (creating one from a training run's files, activating one), and of
predictions and outcome e-mails (the section at the end)."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import slugify

from audit.services import audit_log
from babies.models import Baby, LabelSource, Scan, Sex
from babies.services import baby_confirm_sex
from ml import gate
from ml.abstention import decide_for_baby
from ml.gestation import is_scan_usable
from ml.preprocessing import InputSpec
from predictions import inference
from predictions.models import ModelActivation, ModelVersion, OutcomeAnswer, OutcomeRequest, Prediction

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
    baby_calibration: dict | None = None,
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
        baby_calibration=baby_calibration or {},
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


class ModelGateError(Exception):
    """The version did not pass the quality gate (``ml.gate``); ``verdict`` says why."""

    def __init__(self, verdict: gate.GateVerdict):
        self.verdict = verdict
        super().__init__(f"Not switched on: {verdict.message}")


def _live_evaluation_for(active: ModelVersion, candidate: dict | None) -> dict:
    """The live version's evaluation on the candidate's babies ({} when it cannot be had).

    Stored when it was measured on the same babies; otherwise, when the candidate was measured on
    the configured fixed evaluation set, the live version's ``.tflite`` is run on it now.
    """
    stored = active.measured.evaluation
    candidate = candidate or {}
    digest = (stored or {}).get("babies_digest")
    if digest and digest == candidate.get("babies_digest"):
        return stored
    from predictions import evaluation_set

    wanted = (candidate.get("set") or {}).get("digest")
    if wanted is None or wanted != evaluation_set.evaluation_set_identity()["digest"]:
        return {}
    try:
        with active.tflite_file.open("rb") as handle:
            tflite = handle.read()
        return evaluation_set.evaluate_tflite(
            tflite,
            spec=active.get_input_spec(),
            temperature=active.temperature,
            calibration=active.get_baby_calibration(),
            evaluation_set=evaluation_set.fixed_evaluation_set(),
        )
    except (OSError, ValueError, RuntimeError):
        logger.exception("could not evaluate the live model version id=%s for the gate", active.pk)
        return {}


def model_version_gate(model_version: ModelVersion) -> gate.GateVerdict:
    """Would ``model_version`` pass the quality gate now (against the live version, if any)?"""
    candidate = model_version.measured.evaluation
    active = ModelVersion.objects.active().exclude(pk=model_version.pk).first()
    live = None if active is None else _live_evaluation_for(active, candidate)
    verdict = gate.check(candidate, live)
    if active is not None:
        verdict.details["live_version"] = active.pk
    return verdict


def model_version_activate(
    *,
    model_version: ModelVersion,
    user=None,
    reason: str = "",
    override_gate: bool = False,
) -> ModelVersion:
    """Make ``model_version`` the one predictions use, deactivating whichever was active.

    Only a version that passes the quality gate (``ml.gate``: clearly better than
    chance on its evaluation babies, and not worse than the live version on the same babies) is
    switched on; otherwise :class:`ModelGateError`. ``override_gate=True`` switches it on anyway,
    which needs a ``reason`` and is written to the audit log with the gate's verdict.

    The partial unique constraint guarantees at most one active version even if two staff
    members activate at the same moment; the loser of that race retries once the winner's
    transaction is visible.
    """
    verdict = None
    if not ModelVersion.objects.filter(pk=model_version.pk, is_active=True).exists():
        verdict = model_version_gate(model_version)
        if not verdict.passed and not override_gate:
            logger.warning("model version refused by the gate id=%s: %s", model_version.pk, verdict.message)
            raise ModelGateError(verdict)
        if not verdict.passed and not reason.strip():
            raise ValueError("Overriding the quality gate needs a reason.")
    for attempt in range(3):
        try:
            with transaction.atomic():
                # Deactivate exactly the versions read (and locked) here, so the history records
                # what was switched off; one activated meanwhile makes the update below break
                # the one-active constraint, and the retry reads again.
                previous = list(
                    ModelVersion.objects.select_for_update()
                    .filter(is_active=True)
                    .values_list("pk", flat=True)
                )
                ModelVersion.objects.filter(pk__in=previous).exclude(pk=model_version.pk).update(
                    is_active=False
                )
                now = timezone.now()
                ModelVersion.objects.filter(pk=model_version.pk).update(
                    is_active=True,
                    activated_at=now,
                    activated_by=user,
                    activation_reason=reason[:255],
                )
                _model_history_record(
                    model_version=model_version, previous=previous, user=user, reason=reason, now=now
                )
                if verdict is not None and not verdict.passed:
                    _gate_override_record(
                        model_version=model_version, user=user, reason=reason, verdict=verdict
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


def _gate_override_record(*, model_version: ModelVersion, user, reason: str, verdict) -> None:
    """The audit entry of a version switched on against the gate's verdict."""
    audit_log(
        actor=user,
        action="model_version.gate_overridden",
        obj=model_version,
        data={"reason": reason, "refused_because": verdict.reasons, "gate": verdict.details},
    )


def _model_history_record(
    *, model_version: ModelVersion, previous: list[int], user, reason: str, now
) -> None:
    """Append the switch to :class:`ModelActivation`: the deactivation of the version it replaces
    (first, so at one instant the activation is the later row) and the activation itself.

    Re-activating the active version is not a switch and records nothing.
    """
    if model_version.pk in previous:
        return
    replaced = previous[0] if previous else None
    common = {
        "happened_at": now,
        "changed_by": user if getattr(user, "pk", None) else None,
        "changed_by_repr": getattr(user, "email", "") or "system",
        "reason": reason[:255],
    }
    rows = [
        ModelActivation(
            model_version_id=pk,
            event=ModelActivation.Event.DEACTIVATED,
            other_version_id=model_version.pk,
            **common,
        )
        for pk in previous
    ]
    rows.append(
        ModelActivation(
            model_version_id=model_version.pk,
            event=ModelActivation.Event.ACTIVATED,
            other_version_id=replaced,
            **common,
        )
    )
    for row in rows:
        row.save()
    # The audit log records the action (who switched what, why) next to every other staff
    # change; ModelActivation stays the timeline that ``model_version_live_at`` queries.
    change = {"before": {"active_version": replaced}, "after": {"active_version": model_version.pk}}
    audit_log(
        actor=user,
        action="model_version.activated",
        obj=model_version,
        data={**change, "reason": reason, "is_synthetic": model_version.is_synthetic},
    )
    for replaced_version in ModelVersion.objects.filter(pk__in=previous):
        audit_log(actor=user, action="model_version.deactivated", obj=replaced_version, data=change)


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
    from ml.synthetic import SyntheticConfig, generate_baby

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
                is_synthetic=True,
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
        Scan.objects.filter(baby=baby).order_by("uploaded_at", "id").only("pk", "image", "gestational_week")
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
        result = inference.predict_scans([scan.image for scan in candidates])
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
