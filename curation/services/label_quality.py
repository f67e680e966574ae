"""Likely label errors: how strongly the active model disagrees with each confirmed sex."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from babies.models import Scan, Sex
from curation.models import LabelQualityScore


@dataclass
class LabelScoringResult:
    """What one scoring run did; ``likely_errors`` counts scores at or above the threshold."""

    scored: int = 0
    failed: int = 0
    removed: int = 0
    likely_errors: int = 0
    model_versions: set | None = None


def label_disagreement(*, sex: str, probability_male: float) -> float:
    """The calibrated probability of the other sex than the label: 1 - p(label).

    This is one minus cleanlab's ``self_confidence`` label-quality score, the ranking confident
    learning starts from. With two classes cleanlab's ``normalized_margin`` (p(label) - p(other)
    = 2 p(label) - 1) ranks scans in the same order, so nothing is lost by not importing
    cleanlab in production (it is a development dependency; a test checks the two agree).
    """
    return probability_male if sex == Sex.FEMALE else 1.0 - probability_male


def label_quality_score(
    *, scans: Iterable[Scan] | None = None, batch_size: int = 64, dry_run: bool = False
) -> LabelScoringResult:
    """Score how strongly the active model disagrees with each labelled scan's confirmed sex.

    Every labelled scan of a baby that is not deleted, or only those of ``scans``. The model
    runs once per ``batch_size`` scans (``predictions.inference.predict_scans``, the same
    preprocessing and temperature as a parent's prediction). A scan whose file cannot be read
    is counted in ``failed`` and keeps its old score. A score whose label changed loses its
    "label checked" mark. A full run also drops scores of scans that are no longer labelled.
    Raises ``predictions.inference.NoActiveModelError`` without an active model.
    """
    from predictions.inference import NoActiveModelError, predict_scans  # LiteRT: loaded only when scoring
    from predictions.selectors import model_version_get_active

    if model_version_get_active() is None:
        raise NoActiveModelError("No model version is active.")

    queryset = (
        Scan.objects.filter(baby__deleted_at__isnull=True)
        .exclude(baby__confirmed_sex="")
        .select_related("baby")
        .order_by("id")
    )
    if scans is not None:
        queryset = queryset.filter(pk__in=[scan.pk for scan in scans])
    result = LabelScoringResult(model_versions=set())
    labelled = list(queryset)
    for start in range(0, len(labelled), batch_size):
        batch = labelled[start : start + batch_size]
        inference = predict_scans([scan.image for scan in batch])
        result.model_versions.add(inference.model_version.pk)
        now = timezone.now()
        existing = LabelQualityScore.objects.in_bulk([scan.pk for scan in batch], field_name="scan_id")
        created, updated = [], []
        for scan, probability in zip(batch, inference.probabilities, strict=True):
            if probability is None:
                result.failed += 1
                continue
            sex = scan.baby.confirmed_sex
            disagreement = min(1.0, max(0.0, label_disagreement(sex=sex, probability_male=probability)))
            result.scored += 1
            result.likely_errors += disagreement >= LabelQualityScore.LIKELY_ERROR_THRESHOLD
            score = existing.get(scan.pk)
            if score is None:
                score = LabelQualityScore(scan=scan)
                created.append(score)
            else:
                updated.append(score)
                if score.sex != sex:
                    score.label_checked_by, score.label_checked_at = None, None
            score.sex, score.probability_male, score.disagreement = sex, probability, disagreement
            score.model_version, score.scored_at = inference.model_version, now
        if not dry_run:
            with transaction.atomic():
                LabelQualityScore.objects.bulk_create(created)
                LabelQualityScore.objects.bulk_update(
                    updated,
                    [
                        "sex",
                        "probability_male",
                        "disagreement",
                        "model_version",
                        "scored_at",
                        "label_checked_by",
                        "label_checked_at",
                    ],
                )
    if scans is None:
        stale = LabelQualityScore.objects.filter(
            Q(scan__baby__confirmed_sex="") | Q(scan__baby__deleted_at__isnull=False)
        )
        result.removed = stale.count() if dry_run else stale.delete()[0]
    return result
