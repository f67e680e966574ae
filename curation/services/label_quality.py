"""Likely label errors: how strongly the active model disagrees with each baby's confirmed sex.

A label belongs to a baby, not to a scan: parents say "it was a girl" once, for all her scans.
So the score that ranks the review queue is the **baby's**: the model's scans combined exactly
as a parent's prediction combines them (``ml.abstention.decide_for_baby``: scans before the
minimum gestational week left out, the mean of the calibrated logits times the version's
per-baby scale), and the probability of the other sex than the label read from that. Each
scan keeps its own score too (shown beside it), but the queue orders by the baby's, keeps a
baby's scans together, and a reviewer's "the label is right" applies to the whole baby.

Why not the scan with the strongest disagreement: one scan of a baby is a noisy view of one
anatomy, and the baby's scans together say far more (the per-baby accuracy is several points
above the per-scan one). Ranking scans one by one also spends a reviewer's time on the same
baby three times. Measured on the learning-loop simulation (README).

The active model scores labels it may have trained on (confident learning prefers
out-of-sample probabilities, since a network can memorise a wrong label). Measured on the
simulation, the labels in the active version's training split are ranked as well as the
unseen ones (the network is small, trained for a few epochs with augmentation), so scores are
not held back for that; a larger network would need scores from a model that never saw the
label.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from babies.models import Scan, Sex
from curation.models import LabelQualityScore


@dataclass
class LabelScoringResult:
    """What one scoring run did; ``likely_errors`` counts *babies* whose combined score is at or
    above the threshold (a label is a baby's)."""

    scored: int = 0
    failed: int = 0
    removed: int = 0
    likely_errors: int = 0
    babies: int = 0
    model_versions: set | None = None


def label_disagreement(*, sex: str, probability_male: float) -> float:
    """The calibrated probability of the other sex than the label: 1 - p(label).

    This is one minus cleanlab's ``self_confidence`` label-quality score, the ranking confident
    learning starts from. With two classes cleanlab's ``normalized_margin`` (p(label) - p(other)
    = 2 p(label) - 1) ranks labels in the same order, so nothing is lost by not importing
    cleanlab in production (it is a development dependency; a test checks the two agree).
    """
    return probability_male if sex == Sex.FEMALE else 1.0 - probability_male


def _clipped_disagreement(*, sex: str, probability_male: float) -> float:
    return min(1.0, max(0.0, label_disagreement(sex=sex, probability_male=probability_male)))


def baby_decision(*, version, logits: list[float], weeks: list[int | None]):
    """The baby's combined answer from its scans' raw logits, as its prediction would give it
    (an ``ml.abstention.BabyDecision``: ``probability_male``, ``scans`` used).

    The prediction's rule (``predictions.services.prediction_create``): scans before
    ``PREDICTION_MIN_GESTATIONAL_WEEK`` left out, each logit divided by the version's
    temperature, the mean scaled by the version's per-baby scale for that many scans. A baby
    with only early scans has no prediction; its label is still scored, from all its scans.
    """
    from ml.abstention import decide_for_baby
    from ml.gestation import is_scan_usable

    usable = [
        logit
        for logit, week in zip(logits, weeks, strict=True)
        if is_scan_usable(week, settings.PREDICTION_MIN_GESTATIONAL_WEEK)
    ] or list(logits)
    return decide_for_baby(
        [logit / version.temperature for logit in usable],
        margin=settings.PREDICTION_ABSTAIN_MARGIN,
        disagreement_threshold=settings.PREDICTION_DISAGREEMENT_THRESHOLD,
        scale=version.get_baby_calibration().scale(len(usable)),
    )


def _batches_of_whole_babies(scans: list[Scan], batch_size: int) -> Iterable[list[Scan]]:
    """``scans`` (ordered by baby) cut into model calls of about ``batch_size`` scans, never
    splitting a baby: its scans are combined, so one model version must see them all."""
    batch: list[Scan] = []
    for scan in scans:
        if batch and len(batch) >= batch_size and scan.baby_id != batch[-1].baby_id:
            yield batch
            batch = []
        batch.append(scan)
    if batch:
        yield batch


def label_quality_score(
    *, scans: Iterable[Scan] | None = None, batch_size: int = 64, dry_run: bool = False
) -> LabelScoringResult:
    """Score how strongly the active model disagrees with each labelled baby's confirmed sex.

    Every labelled scan of a baby that is not deleted, or, with ``scans``, every labelled scan
    of those scans' babies (the baby's score needs all of them). The model runs once per
    ``batch_size`` scans or so (``predictions.inference.predict_scans``, the same preprocessing
    and temperature as a parent's prediction), a baby's scans always in one call. Each scan's
    score stores its own disagreement and its baby's (:func:`baby_decision`). A scan
    whose file cannot be read is counted in ``failed``, keeps its old score and is left out of
    its baby's. A score whose label changed loses its "label checked" mark. A full run also
    drops scores of scans that are no longer labelled. Raises
    ``predictions.inference.NoActiveModelError`` without an active model.
    """
    from predictions.inference import NoActiveModelError, predict_scans  # LiteRT: loaded only when scoring
    from predictions.selectors import model_version_get_active

    if model_version_get_active() is None:
        raise NoActiveModelError("No model version is active.")

    queryset = (
        Scan.objects.filter(baby__deleted_at__isnull=True)
        .exclude(baby__confirmed_sex="")
        .select_related("baby")
        .order_by("baby_id", "id")
    )
    if scans is not None:
        queryset = queryset.filter(baby_id__in={scan.baby_id for scan in scans})
    result = LabelScoringResult(model_versions=set())
    for batch in _batches_of_whole_babies(list(queryset), batch_size):
        inference = predict_scans(batch)
        version = inference.model_version
        result.model_versions.add(version.pk)
        now = timezone.now()
        existing = LabelQualityScore.objects.in_bulk([scan.pk for scan in batch], field_name="scan_id")
        by_baby: dict[int, list[tuple[Scan, float, float]]] = {}
        for scan, logit, probability in zip(batch, inference.logits, inference.probabilities, strict=True):
            if probability is None:
                result.failed += 1
                continue
            by_baby.setdefault(scan.baby_id, []).append((scan, logit, probability))
        created, updated = [], []
        for scored in by_baby.values():
            sex = scored[0][0].baby.confirmed_sex
            baby = baby_decision(
                version=version,
                logits=[logit for _, logit, _ in scored],
                weeks=[scan.gestational_week for scan, _, _ in scored],
            )
            baby_disagreement = _clipped_disagreement(sex=sex, probability_male=baby.probability_male)
            result.babies += 1
            result.likely_errors += baby_disagreement >= LabelQualityScore.LIKELY_ERROR_THRESHOLD
            for scan, _, probability in scored:
                result.scored += 1
                score = existing.get(scan.pk)
                if score is None:
                    score = LabelQualityScore(scan=scan)
                    created.append(score)
                else:
                    updated.append(score)
                    if score.sex != sex:
                        score.label_checked_by, score.label_checked_at = None, None
                score.sex, score.probability_male = sex, probability
                score.disagreement = _clipped_disagreement(sex=sex, probability_male=probability)
                score.baby_disagreement, score.baby_scans = baby_disagreement, baby.scans
                score.model_version, score.scored_at = version, now
        if not dry_run:
            with transaction.atomic():
                LabelQualityScore.objects.bulk_create(created)
                LabelQualityScore.objects.bulk_update(
                    updated,
                    [
                        "sex",
                        "probability_male",
                        "disagreement",
                        "baby_disagreement",
                        "baby_scans",
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
