"""Reads of model versions shared by inference, commands and (later) views."""

import datetime
from dataclasses import dataclass

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone

from babies.models import Baby
from predictions.models import ModelVersion, OutcomeAnswer, OutcomeRequest, Prediction


def model_version_get_active() -> ModelVersion | None:
    return ModelVersion.objects.active().first()


def model_version_active_fingerprint() -> tuple[int, str] | None:
    """The active version's id and file name: one narrow query per inference call.

    Inference compares it with what it has loaded and reloads only when it changed.
    """
    row = ModelVersion.objects.active().values_list("pk", "tflite_file").first()
    return (row[0], row[1]) if row else None


def model_version_list():
    return ModelVersion.objects.select_related("activated_by")


# --- Predictions and outcomes ------------------------------------------------------------------
LATEST_PREDICTIONS_ATTR = "latest_predictions"


def prediction_latest_prefetch() -> Prefetch:
    """Each baby's newest prediction with its model version, in one query for a list of babies.

    A sliced Prefetch (Django runs it as a window function), so the dashboard's query count
    stays the same however many babies and predictions there are.
    """
    latest = Prediction.objects.select_related("model_version").order_by("-created_at", "-id")[:1]
    return Prefetch("predictions", queryset=latest, to_attr=LATEST_PREDICTIONS_ATTR)


def prediction_latest_for_baby(*, baby: Baby) -> Prediction | None:
    """The newest prediction; from :func:`prediction_latest_prefetch` when it ran, else one query."""
    prefetched = getattr(baby, LATEST_PREDICTIONS_ATTR, None)
    if prefetched is not None:
        return prefetched[0] if prefetched else None
    return (
        Prediction.objects.filter(baby=baby)
        .select_related("model_version")
        .order_by("-created_at", "-id")
        .first()
    )


@dataclass(frozen=True)
class BabyPredictionStatus:
    """What the dashboard shows about a baby's prediction."""

    prediction: Prediction | None
    scan_count: int
    # Scans were added (or removed) since the prediction: the answer is out of date.
    is_stale: bool
    # The prediction's scans that were left out: {"scan": Scan or None if since deleted,
    # "number": its place among the baby's scans (1 = oldest) or None, "error": why}.
    left_out: list[dict]

    @property
    def can_predict(self) -> bool:
        return self.scan_count > 0


def baby_prediction_status(*, baby: Baby) -> BabyPredictionStatus:
    """Uses ``baby.scans.all()``, so a prefetch of the scans (the dashboard's) costs no query."""
    scans = {scan.pk: scan for scan in baby.scans.all()}
    numbers = {scan_id: number for number, scan_id in enumerate(scans, start=1)}
    prediction = prediction_latest_for_baby(baby=baby)
    left_out = [
        {
            "scan": scans.get(entry.get("scan_id")),
            "number": numbers.get(entry.get("scan_id")),
            "error": entry.get("error", ""),
        }
        for entry in (prediction.scan_errors if prediction else [])
    ]
    return BabyPredictionStatus(
        prediction=prediction,
        scan_count=len(scans),
        is_stale=prediction is not None and prediction.is_stale_for(scans),
        left_out=left_out,
    )


def babies_due_outcome_email(*, today: datetime.date | None = None) -> QuerySet[Baby]:
    """Babies whose parent should now be asked whether the prediction was right.

    Not deleted, no confirmed sex, at least one prediction, due at least
    ``OUTCOME_EMAIL_DELAY_DAYS`` ago, an active owner whose address is verified (allauth), and
    no outcome e-mail sent yet nor given up on. Babies claimed by a running send are still
    listed: the claim, not this query, decides who sends.
    """
    today = today or timezone.localdate()
    due_on_or_before = today - datetime.timedelta(days=settings.OUTCOME_EMAIL_DELAY_DAYS)
    verified_address = EmailAddress.objects.filter(
        user_id=OuterRef("owner_id"), email__iexact=OuterRef("owner__email"), verified=True
    )
    finished = OutcomeRequest.objects.filter(baby_id=OuterRef("pk")).filter(
        Q(sent_at__isnull=False) | Q(attempts__gte=OutcomeRequest.MAX_ATTEMPTS)
    )
    return (
        Baby.objects.filter(
            confirmed_sex="",
            due_date__isnull=False,
            due_date__lte=due_on_or_before,
            owner__is_active=True,
        )
        .filter(Exists(Prediction.objects.filter(baby_id=OuterRef("pk"))))
        .filter(Exists(verified_address))
        .exclude(Exists(finished))
        .select_related("owner")
        .prefetch_related(prediction_latest_prefetch())
        .order_by("due_date", "pk")
    )


def outcome_answer_latest(*, baby: Baby, prediction: Prediction) -> OutcomeAnswer | None:
    return (
        OutcomeAnswer.objects.filter(baby=baby, prediction=prediction).order_by("-answered_at", "-id").first()
    )
