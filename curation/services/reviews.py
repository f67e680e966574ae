"""Staff verdicts on scans: review state and quality flags, one scan or many, and checked labels.

Bulk actions call the per-scan function in a loop with one shared ``batch`` id, so a bulk
action leaves one audit entry per scan, not a single "changed 40 objects" line.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.models import new_batch
from audit.services import audit_log
from babies.models import Scan
from curation.models import QUALITY_FLAGS, LabelQualityScore, ReviewState, ScanReview


def _review_snapshot(review: ScanReview) -> dict:
    return {"state": review.state, "flags": review.flags, "note": review.note}


def scan_review_update(
    *,
    scan: Scan,
    reviewer,
    state: str | None = None,
    flags: Mapping[str, bool] | None = None,
    note: str | None = None,
    batch: uuid.UUID | None = None,
) -> ScanReview:
    """Set a scan's review state, quality flags and note; ``None`` leaves a value as it is.

    The review row is created on first use. Accepting a scan that carries a quality flag is a
    ``ValidationError``: a flag is a reason to keep a scan out of training. A call that changes
    nothing writes nothing (and no audit entry).
    """
    if state is not None and state not in ReviewState.values:
        raise ValueError(f"Unknown review state {state!r}")
    unknown = set(flags or {}) - set(QUALITY_FLAGS)
    if unknown:
        raise ValueError(f"Unknown quality flags: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        review, _ = ScanReview.objects.select_for_update().get_or_create(scan=scan)
        before = _review_snapshot(review)
        if state is not None:
            review.state = state
        for name, value in (flags or {}).items():
            setattr(review, name, bool(value))
        if note is not None:
            review.note = note.strip()
        after = _review_snapshot(review)
        if after == before and review.reviewed_at is not None:
            return review
        review.reviewed_by = reviewer
        review.reviewed_at = timezone.now()
        review.full_clean(exclude=["scan"])
        review.save()
        audit_log(
            actor=reviewer,
            action="scan.reviewed",
            obj=scan,
            data={"before": before, "after": after},
            batch=batch,
        )
    return review


@dataclass
class BulkResult:
    """What a bulk action did: how many objects changed and, for the rest, why not."""

    changed: int = 0
    unchanged: int = 0
    refused: dict[int, str] | None = None
    batch: uuid.UUID | None = None

    def refuse(self, pk: int, reason: str) -> None:
        if self.refused is None:
            self.refused = {}
        self.refused[pk] = reason


def scans_review_bulk(
    *,
    scans: Iterable[Scan],
    reviewer,
    state: str,
    flags: Mapping[str, bool] | None = None,
) -> BulkResult:
    """Review many scans at once: each one gets its own audit entry, all in one batch.

    A scan that cannot take the new state (accepting a flagged scan) is reported, not fatal.
    """
    result = BulkResult(batch=new_batch())
    for scan in scans:
        previous = ScanReview.objects.filter(scan=scan).values_list("reviewed_at", flat=True).first()
        try:
            review = scan_review_update(
                scan=scan, reviewer=reviewer, state=state, flags=flags, batch=result.batch
            )
        except ValidationError as error:
            result.refuse(scan.pk, " ".join(error.messages))
            continue
        if review.reviewed_at != previous:
            result.changed += 1
        else:
            result.unchanged += 1
    return result


def baby_label_mark_checked(*, baby, actor, batch: uuid.UUID | None = None) -> int:
    """Staff looked at a likely label error and the baby's label is right: it leaves the queue's top.

    A label is the baby's, so every scan of the baby whose score is still open (scored against
    the label it has now, not yet checked) is marked, one audit entry per scan in one batch.
    Returns how many scans were marked (0, and nothing logged, when none had an open score).
    """
    marked = 0
    batch = batch or new_batch()
    with transaction.atomic():
        scores = (
            LabelQualityScore.objects.select_for_update()
            .filter(scan__baby=baby, sex=baby.confirmed_sex, label_checked_at__isnull=True)
            .select_related("scan")
            .order_by("scan_id")
        )
        now = timezone.now()
        for score in scores:
            score.label_checked_by, score.label_checked_at = actor, now
            score.save(update_fields=["label_checked_by", "label_checked_at"])
            audit_log(
                actor=actor,
                action="scan.label_checked",
                obj=score.scan,
                data={
                    "label": score.sex,
                    "disagreement": round(score.disagreement, 4),
                    "baby_disagreement": None
                    if score.baby_disagreement is None
                    else round(score.baby_disagreement, 4),
                    "model_version": score.model_version_id,
                },
                batch=batch,
            )
            marked += 1
    return marked


def scan_label_mark_checked(*, scan: Scan, actor, batch: uuid.UUID | None = None) -> bool:
    """The label of ``scan``'s baby is right (:func:`baby_label_mark_checked`): a reviewer
    decides on the baby, whichever of its scans they opened.

    Returns False (and logs nothing) when no scan of the baby had an open score.
    """
    return bool(baby_label_mark_checked(baby=scan.baby, actor=actor, batch=batch))
