"""Reads about a parent's own data: what the settings page counts and what the export contains."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Prefetch, QuerySet

from babies.models import Baby, Scan
from curation.models import TrainingSetItem
from predictions.models import Prediction


@dataclass(frozen=True)
class DataSummary:
    baby_count: int
    scan_count: int


def user_data_summary(*, user) -> DataSummary:
    """What the parent can see on their dashboard (deleted babies are in the export, not here)."""
    return DataSummary(
        baby_count=Baby.objects.for_owner(user).count(),
        scan_count=Scan.objects.for_owner(user).count(),
    )


def user_babies_for_export(*, user) -> QuerySet[Baby]:
    """Every baby we hold for the parent, the ones they deleted included: the export is all of it."""
    return (
        Baby.all_objects.for_owner(user)
        .prefetch_related(Prefetch("scans", queryset=Scan.objects.order_by("uploaded_at", "id")))
        .order_by("created_at", "id")
    )


def user_training_set_items(*, user) -> QuerySet[TrainingSetItem]:
    """The parent's scans frozen in training sets (copies we still hold), for the export."""
    return (
        TrainingSetItem.objects.filter(owner=user, erased_at__isnull=True)
        .select_related("training_set")
        .order_by("training_set_id", "id")
    )


def user_predictions_for_export(*, babies: list[Baby]) -> dict[int, list[dict]]:
    """Every prediction made for these babies, with the parent's outcome answers, by baby id."""
    rows: dict[int, list[dict]] = {}
    predictions = (
        Prediction.objects.filter(baby__in=babies)
        .select_related("model_version")
        .prefetch_related("outcome_answers")
        .order_by("created_at", "id")
    )
    for prediction in predictions:
        rows.setdefault(prediction.baby_id, []).append(
            {
                "id": prediction.pk,
                "baby_id": prediction.baby_id,
                "created_at": prediction.created_at,
                # "cannot_tell" when the model declined to answer; predicted_sex is only its leaning.
                "answer": prediction.answer,
                "abstain_reason": prediction.abstain_reason,
                "predicted_sex": prediction.predicted_sex,
                "probability_male": prediction.probability_male,
                "model_version": prediction.model_version.name,
                "model_trained_on_synthetic_data": prediction.model_version.is_synthetic,
                "scan_ids_used": prediction.scan_ids_used,
                "scan_probabilities": prediction.scan_probabilities,
                "outcome_answers": [
                    {
                        "answered_at": answer.answered_at,
                        "prediction_was_right": answer.prediction_was_right,
                        "sex": answer.sex,
                    }
                    for answer in prediction.outcome_answers.all()
                ],
            }
        )
    return rows
