"""Model versions: created from a training run's files, gated, activated (with their history)."""

from __future__ import annotations

import logging
from pathlib import Path

from django.core.files import File
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from audit.services import audit_log
from ml import gate
from ml.preprocessing import InputSpec
from predictions.models import ModelActivation, ModelVersion

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

    Stored when it was measured on the same babies (and holds the per-baby probabilities the
    calibration rule needs); otherwise, when the candidate was measured on the configured fixed
    evaluation set, the live version's ``.tflite`` is run on it now. A stored evaluation on the
    same babies but without per-baby probabilities (older than the rule) is used as it is when
    the set cannot be re-measured.
    """
    stored = active.measured.evaluation
    candidate = candidate or {}
    digest = (stored or {}).get("babies_digest")
    same_babies = bool(digest) and digest == candidate.get("babies_digest")
    if same_babies and "baby_probabilities" in stored:
        return stored
    from predictions import evaluation_set

    wanted = (candidate.get("set") or {}).get("digest")
    if wanted is None or wanted != evaluation_set.evaluation_set_identity()["digest"]:
        return stored if same_babies else {}
    try:
        return evaluation_set.evaluate_model_version(active)
    except (OSError, ValueError, RuntimeError):
        logger.exception("could not evaluate the live model version id=%s for the gate", active.pk)
        return stored if same_babies else {}


def model_version_gate(model_version: ModelVersion) -> gate.GateVerdict:
    """Would ``model_version`` pass the quality gate now (against the live version, if any)?"""
    candidate = model_version.measured.evaluation
    active = ModelVersion.objects.active().exclude(pk=model_version.pk).first()
    live = None if active is None else _live_evaluation_for(active, candidate)
    training_set = model_version.training_set
    training_labels = (training_set.data_card or {}).get("label_errors") if training_set else None
    verdict = gate.check(candidate, live, training_labels=training_labels)
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
    chance on its evaluation babies, not worse than the live version on the same babies, its
    probabilities not clearly less calibrated than the live version's, and not trained on a
    flood of wrong answers) is switched on; otherwise
    :class:`ModelGateError`. ``override_gate=True`` switches it on anyway,
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
