"""Reads for curation: the review queue, training eligibility, near-duplicates and the audit trail."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from django.contrib.contenttypes.models import ContentType
from django.db.models import Case, F, FloatField, IntegerField, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce

from audit.models import AuditEntry
from babies.models import LabelSource, Scan
from curation.models import LabelQualityScore, ReviewQueueScan, ReviewState
from curation.near_duplicates import distances_to, is_hex_hash, near_duplicate_pairs

# dHash bits (of 64) that may differ for two scans to be shown as near-duplicates. Measured on
# synthetic scans (bench/duplicates.py): a re-encoded, resized or PNG copy differs by 0-5 bits, a
# copy re-cropped by 2 % by up to 10, but two *different* scans, all fans on black, can differ by
# 0-2. So this is a list to look at, not a verdict (at 4: ~80 % of copies, ~6 % of unrelated
# pairs); staff can widen or narrow it on the page.
DEFAULT_DUPLICATE_DISTANCE = 4
# Stricter: babies whose scans are this close are kept in one train/val/test split, so the same
# picture cannot be trained on and then graded on. A false match only costs split freedom.
SPLIT_DUPLICATE_DISTANCE = 2


# --- Review queue --------------------------------------------------------------------------
def label_score() -> Coalesce:
    """The disagreement the queue ranks a scan's label by: its baby's combined score, or the
    scan's own for a score written before babies were scored whole (until scored again); in
    Python, ``LabelQualityScore.label_score``."""
    return Coalesce(F("label_quality__baby_disagreement"), F("label_quality__disagreement"))


def open_label_score_condition() -> Q:
    """A stored score that still applies (scored against the label the baby has now) and asks
    for a look: no reviewer has checked the baby's label, and the label is not staff's own (a
    label staff set is one they decided on, looking at the scans)."""
    return Q(
        label_quality__sex=F("baby__confirmed_sex"),
        label_quality__label_checked_at__isnull=True,
        baby__deleted_at__isnull=True,
    ) & ~Q(baby__confirmed_sex_source=LabelSource.STAFF)


def likely_label_error_condition() -> Q:
    """An open score (:func:`open_label_score_condition`) whose baby, all its scans combined,
    is more likely the other sex than its label, by the model's calibrated answer."""
    threshold = LabelQualityScore.LIKELY_ERROR_THRESHOLD
    return open_label_score_condition() & (
        Q(label_quality__baby_disagreement__gte=threshold)
        | Q(label_quality__baby_disagreement__isnull=True, label_quality__disagreement__gte=threshold)
    )


def review_queue() -> QuerySet[ReviewQueueScan]:
    """Every scan: likely label errors first, then labelled unreviewed ones, then the rest.

    ``queue_rank`` is 0 for a likely label error (see :func:`likely_label_error_condition`),
    1 for a pending scan of a baby with a confirmed sex (what the next training set waits on),
    2 for a pending scan without one, 3 for a scan already accepted or rejected. A scan with no
    review is pending. Within ranks 0 and 1, ``error_order`` (the label's score,
    :func:`label_score`, highest first) puts the most doubtful labels first and ``error_baby``
    keeps a baby's scans together: a reviewer decides on the baby's label once, looking at all
    of them. The scores are read from ``LabelQualityScore`` rows written by
    ``manage.py score_label_quality``.
    """
    pending = Q(review__isnull=True) | Q(review__state=ReviewState.PENDING)
    likely_error = likely_label_error_condition()
    pending_labelled = pending & ~Q(baby__confirmed_sex="")
    ranked = likely_error | (pending_labelled & open_label_score_condition())
    return (
        ReviewQueueScan.objects.select_related(
            "baby", "baby__owner", "review", "review__reviewed_by", "label_quality"
        )
        .annotate(
            queue_rank=Case(
                When(likely_error, then=Value(0)),
                When(pending_labelled, then=Value(1)),
                When(pending, then=Value(2)),
                default=Value(3),
                output_field=IntegerField(),
            ),
            error_order=Case(When(ranked, then=label_score()), default=Value(0.0), output_field=FloatField()),
            error_baby=Case(When(ranked, then=F("baby_id")), default=Value(0), output_field=IntegerField()),
        )
        .order_by(*REVIEW_QUEUE_ORDERING)
    )


REVIEW_QUEUE_ORDERING = ["queue_rank", "-error_order", "error_baby", "uploaded_at", "id"]


def review_queue_next(*, after: Scan) -> ReviewQueueScan | None:
    """The next labelled scan still waiting for a review (for "save and review next"), likely
    label errors among them first."""
    pending = Q(review__isnull=True) | Q(review__state=ReviewState.PENDING)
    return (
        review_queue()
        .filter(pending)
        .exclude(baby__confirmed_sex="")
        .exclude(pk=after.pk)
        .order_by(*REVIEW_QUEUE_ORDERING)
        .first()
    )


def parents_labels(baby_ids: Iterable[int]) -> dict[int, str]:
    """The sex each baby's parent gave, for babies that have one, even where staff changed it.

    A label from a parent is the baby's label unless staff relabelled it; then the parent's
    answer is in the audit log, as the label before the first staff relabel (``baby.relabelled``).
    A baby whose only label is staff's own has none here.
    """
    from babies.models import Baby

    ids = list(baby_ids)
    parents = {LabelSource.DASHBOARD, LabelSource.EMAIL}
    labels = {}
    for pk, sex, source in Baby.all_objects.filter(pk__in=ids).values_list(
        "pk", "confirmed_sex", "confirmed_sex_source"
    ):
        if sex and source in parents:
            labels[pk] = sex
    relabelled = (
        AuditEntry.objects.filter(
            action="baby.relabelled",
            content_type=ContentType.objects.get_for_model(Baby),
            object_id__in=[str(pk) for pk in ids if pk not in labels],
        )
        .order_by("created_at", "id")
        .values_list("object_id", "data")
    )
    for object_id, data in relabelled:
        before = (data or {}).get("before") or {}
        pk = int(object_id)
        if pk not in labels and before.get("confirmed_sex") and before.get("confirmed_sex_source") in parents:
            labels[pk] = before["confirmed_sex"]
    return labels


# --- Training eligibility ------------------------------------------------------------------
def scans_eligible_for_training(*, label_sources: Iterable[str] | None = None) -> QuerySet[Scan]:
    """Scans a training set may contain: every rule is here, so the set and its preview agree.

    Accepted by a reviewer, of a baby that is not deleted and has a confirmed sex from one of
    ``label_sources`` (all sources by default), owned by an active parent who opted in.
    """
    sources = list(label_sources) if label_sources is not None else list(LabelSource.values)
    return (
        Scan.objects.filter(
            review__state=ReviewState.ACCEPTED,
            baby__deleted_at__isnull=True,
            baby__owner__is_active=True,
            baby__owner__allows_training_use=True,
            baby__confirmed_sex_source__in=sources,
        )
        .exclude(baby__confirmed_sex="")
        .select_related("baby", "baby__owner")
        .order_by("baby_id", "uploaded_at", "id")
    )


@dataclass(frozen=True)
class EligibilitySummary:
    """What a training set built now would hold, and why accepted scans would be left out."""

    eligible: int
    class_counts: dict[str, int]
    baby_count: int
    pending: int
    rejected: int
    accepted_without_label: int
    accepted_of_deleted_babies: int
    accepted_without_consent: int
    accepted_with_other_label_source: int


def training_eligibility_summary(*, label_sources: Iterable[str] | None = None) -> EligibilitySummary:
    sources = list(label_sources) if label_sources is not None else list(LabelSource.values)
    eligible = scans_eligible_for_training(label_sources=sources)
    class_counts = Counter(eligible.values_list("baby__confirmed_sex", flat=True))
    accepted = Scan.objects.filter(review__state=ReviewState.ACCEPTED)
    reviewed = Scan.objects.filter(review__state__in=[ReviewState.ACCEPTED, ReviewState.REJECTED])
    return EligibilitySummary(
        eligible=sum(class_counts.values()),
        class_counts={sex: class_counts.get(sex, 0) for sex in ("female", "male")},
        baby_count=eligible.values("baby_id").distinct().count(),
        pending=Scan.objects.count() - reviewed.count(),
        rejected=Scan.objects.filter(review__state=ReviewState.REJECTED).count(),
        accepted_without_label=accepted.filter(baby__confirmed_sex="").count(),
        accepted_of_deleted_babies=accepted.filter(baby__deleted_at__isnull=False).count(),
        accepted_without_consent=accepted.filter(
            Q(baby__owner__allows_training_use=False) | Q(baby__owner__is_active=False)
        ).count(),
        accepted_with_other_label_source=accepted.exclude(baby__confirmed_sex="")
        .exclude(baby__confirmed_sex_source__in=sources)
        .count(),
    )


# --- Near-duplicates -----------------------------------------------------------------------
@dataclass
class DuplicateGroup:
    """A scan and its near-duplicates; ``distances`` maps each scan id to its distance in bits
    from the first scan (0 for the first itself)."""

    scans: list[Scan]
    distances: dict[int, int] = field(default_factory=dict)

    @property
    def members(self) -> list[tuple[Scan, int]]:
        return [(scan, self.distances.get(scan.pk, 0)) for scan in self.scans]

    @property
    def baby_count(self) -> int:
        return len({scan.baby_id for scan in self.scans})

    @property
    def owner_count(self) -> int:
        return len({scan.baby.owner_id for scan in self.scans})

    @property
    def spans_owners(self) -> bool:
        return self.owner_count > 1


def near_duplicates_of(
    *, scan: Scan, max_distance: int = DEFAULT_DUPLICATE_DISTANCE, limit: int = 20
) -> list[tuple[Scan, int]]:
    """Other scans within ``max_distance`` bits of ``scan``'s dHash, closest first."""
    if not is_hex_hash(scan.perceptual_hash):
        return []
    rows = list(
        Scan.objects.exclude(pk=scan.pk).exclude(perceptual_hash="").values_list("id", "perceptual_hash")
    )
    rows = [row for row in rows if len(row[1]) == len(scan.perceptual_hash) and is_hex_hash(row[1])]
    if not rows:
        return []
    distances = distances_to(scan.perceptual_hash, [row[1] for row in rows])
    close = sorted(
        ((int(distances[i]), rows[i][0]) for i in np.nonzero(distances <= max_distance)[0].tolist()),
    )[:limit]
    by_id = Scan.objects.select_related("baby").in_bulk([pk for _, pk in close])
    return [(by_id[pk], distance) for distance, pk in close if pk in by_id]


def near_duplicate_groups(
    *,
    max_distance: int = DEFAULT_DUPLICATE_DISTANCE,
    scans: QuerySet[Scan] | None = None,
    across_babies_only: bool = False,
) -> list[DuplicateGroup]:
    """Groups of near-duplicate scans across every baby and owner, deleted babies included.

    A group is an *anchor* scan (the oldest one not yet shown with all its neighbours) and the
    scans within ``max_distance`` bits of it. Not connected components: ultrasound scans look
    alike (a fan on black), so chains of close pairs would join unrelated scans into one huge
    group; anchored groups stay small and every distance shown is to the group's first scan.
    A scan can be the anchor of one group and a member of an earlier one.

    With ``across_babies_only`` a group whose scans all belong to one baby is left out (the
    same scan cropped twice is less worrying than one scan under two babies). Groups spanning
    several owners come first, then larger groups.
    """
    queryset = (scans if scans is not None else Scan.objects.all()).exclude(perceptual_hash="")
    rows = [
        row for row in queryset.order_by("id").values_list("id", "perceptual_hash") if is_hex_hash(row[1])
    ]
    if not rows:
        return []
    ids = [row[0] for row in rows]
    neighbours: dict[int, dict[int, int]] = {}
    for i, j, distance in near_duplicate_pairs([row[1] for row in rows], max_distance=max_distance):
        neighbours.setdefault(ids[i], {})[ids[j]] = distance
        neighbours.setdefault(ids[j], {})[ids[i]] = distance

    shown: set[int] = set()
    anchored: list[dict[int, int]] = []
    for anchor in sorted(neighbours):
        members = {other: d for other, d in neighbours[anchor].items() if other not in shown}
        if not members:
            continue
        anchored.append({anchor: 0, **dict(sorted(members.items()))})
        shown.add(anchor)
        shown.update(members)

    by_id = Scan.objects.select_related("baby", "baby__owner", "review").in_bulk(shown)
    groups = []
    for distances in anchored:
        group = DuplicateGroup(
            scans=[by_id[pk] for pk in distances if pk in by_id],
            distances={pk: d for pk, d in distances.items() if pk in by_id},
        )
        if len(group.scans) < 2 or (across_babies_only and group.baby_count < 2):
            continue
        groups.append(group)
    groups.sort(key=lambda g: (-g.owner_count, -len(g.scans), g.scans[0].pk))
    return groups


# --- Audit trail ---------------------------------------------------------------------------
def audit_entries_for(obj) -> QuerySet[AuditEntry]:
    """Entries about ``obj`` (a proxy's entries are filed under its concrete model), newest first."""
    content_type = ContentType.objects.get_for_model(obj)
    return AuditEntry.objects.filter(content_type=content_type, object_id=str(obj.pk)).select_related("actor")
