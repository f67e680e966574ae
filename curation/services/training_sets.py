"""Freezing training sets: the eligible scans, their splits, their copies and the set's data card.

A frozen set never changes, with one exception: a parent who deletes their account takes
their pictures with them (:func:`training_items_erase_for_owner`).
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter
from collections.abc import Iterable, Mapping

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from audit.services import audit_log
from babies.files import FileRemoval, delete_now_or_later, delete_on_commit, storage_alias
from babies.models import LabelSource, Scan, Sex
from curation import selectors
from curation.models import (
    QUALITY_FLAGS,
    ReviewState,
    TrainingSet,
    TrainingSetItem,
    training_storage,
)
from curation.near_duplicates import near_duplicate_components
from ml.records import SEX_LABELS, TrainingRecord
from ml.splits import split_by_baby

logger = logging.getLogger(__name__)

TRAINING_COPY_PREFIX = "training-sets"


def _store_training_copy(content: bytes, sha256: str, written: list[str]) -> str:
    """Save ``content`` under a name derived from its hash, once: identical scans share a file."""
    storage = training_storage()
    name = f"{TRAINING_COPY_PREFIX}/{sha256[:2]}/{sha256}.jpg"
    if storage.exists(name):
        return name
    saved = storage.save(name, ContentFile(content))
    written.append(saved)
    return saved


def _split_groups(scans: list[Scan], *, max_distance: int) -> dict[int, str]:
    """Map each baby to a split unit: babies sharing a near-duplicate scan share a unit.

    Otherwise the same picture, uploaded for two babies, could be trained on and then graded
    on as if it were new.
    """
    roots = near_duplicate_components(
        [(scan.baby_id, scan.perceptual_hash) for scan in scans], max_distance=max_distance
    )
    return {baby_id: f"unit-{root}" for baby_id, root in roots.items()}


def content_digest(entries: Iterable[tuple[str, str, str, str]]) -> str:
    """SHA-256 over ``(jpeg_sha256, sex, baby_key, split)``: the formula of
    ``ml.records.records_digest``, so a model's recorded digest matches its set."""
    digest = hashlib.sha256()
    lines = sorted(f"{sha}:{SEX_LABELS[sex]}:{baby_key}:{split}" for sha, sex, baby_key, split in entries)
    for line in lines:
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()


# Why a scan is not in a training set, in the order they are checked: each left-out scan is
# counted once, under the first reason that applies, so the reasons add up to the total.
EXCLUSION_REASONS = {
    "baby_deleted": "The baby was deleted by its parent",
    "no_consent": "The parent has not agreed to training use (or the account is inactive)",
    "no_label": "The baby has no confirmed sex",
    "label_source_not_chosen": "Labelled by a source not chosen for this set",
    "rejected": "Rejected in review",
    "not_reviewed": "Not accepted yet (waiting for review)",
    "duplicate": "A near-duplicate of a copy kept in this set (chosen when it was frozen)",
}


def _exclusion_reason(row: dict, *, sources: list[str], duplicates: set[int]) -> str:
    if row["baby__deleted_at"] is not None:
        return "baby_deleted"
    if not row["baby__owner__allows_training_use"] or not row["baby__owner__is_active"]:
        return "no_consent"
    if not row["baby__confirmed_sex"]:
        return "no_label"
    if row["baby__confirmed_sex_source"] not in sources:
        return "label_source_not_chosen"
    if row["review__state"] == ReviewState.REJECTED:
        return "rejected"
    if row["review__state"] != ReviewState.ACCEPTED:
        return "not_reviewed"
    if row["pk"] in duplicates:
        return "duplicate"
    return "other"


def _week_key(week) -> tuple[int, int]:
    return (1, 0) if week == "unknown" else (0, int(week))


def training_set_data_card(
    *, items: list[TrainingSetItem], sources: list[str], excluded_duplicates: Mapping[int, int]
) -> dict:
    """What a frozen set holds and what it left out, computed once when it is frozen.

    Counts of the items by sex, gestational week ("unknown" when the parent did not give one)
    and label source; the share of synthetic images; every other scan on record counted
    under the first reason it was left out (``EXCLUSION_REASONS``), rejected ones also by flag;
    and the estimated share of wrong answers among its parents' labels
    (:func:`training_set_label_errors`).
    """
    total = len(items)
    weeks = Counter("unknown" if i.gestational_week is None else str(i.gestational_week) for i in items)
    synthetic = sum(1 for item in items if item.is_synthetic)
    included = {item.scan_id for item in items}
    rows = (
        Scan.objects.exclude(pk__in=included)
        .values(
            "pk",
            "baby__deleted_at",
            "baby__owner__allows_training_use",
            "baby__owner__is_active",
            "baby__confirmed_sex",
            "baby__confirmed_sex_source",
            "review__state",
            *(f"review__{flag}" for flag in QUALITY_FLAGS),
        )
        .order_by()
    )
    reasons: Counter[str] = Counter()
    rejected_flags: Counter[str] = Counter()
    duplicates = set(excluded_duplicates)
    for row in rows:
        reason = _exclusion_reason(row, sources=sources, duplicates=duplicates)
        reasons[reason] += 1
        if reason == "rejected":
            rejected_flags.update(flag for flag in QUALITY_FLAGS if row[f"review__{flag}"])
    return {
        "version": 1,
        "scans": total,
        "babies": len({item.baby_key for item in items}),
        "by_sex": {sex: sum(1 for i in items if i.sex == sex) for sex in Sex.values},
        "by_gestational_week": dict(sorted(weeks.items(), key=lambda pair: _week_key(pair[0]))),
        "by_label_source": {
            source: sum(1 for i in items if i.label_source == source) for source in LabelSource.values
        },
        "synthetic": {"scans": synthetic, "share": round(synthetic / total, 4) if total else 0.0},
        "excluded": {
            "scans": sum(reasons.values()),
            "by_reason": {
                reason: reasons.get(reason, 0)
                for reason in [*EXCLUSION_REASONS, "other"]
                if reason != "other" or reasons.get(reason)
            },
            "rejected_by_flag": {flag: rejected_flags.get(flag, 0) for flag in QUALITY_FLAGS},
            "duplicates": [
                {"scan": excluded, "kept": kept} for excluded, kept in sorted(excluded_duplicates.items())
            ],
        },
        "label_errors": training_set_label_errors(items=items),
    }


# Fewer babies than this say too little about a batch's error rate to be worth recording.
MIN_BABIES_FOR_LABEL_ERROR_ESTIMATE = 30
# A scoring model must answer at least this share of evaluation babies right to judge answers
# (the gate's own floor for a live model is a lower bound above 60 %).
MIN_SCORING_ACCURACY = 0.6


def _baby_keys_of(training_set_id: int | None) -> set[str]:
    """The babies a frozen set holds (none for a model trained outside the frozen sets)."""
    if training_set_id is None:
        return set()
    items = TrainingSetItem.objects.filter(training_set_id=training_set_id)
    return set(items.values_list("baby_key", flat=True))


def _per_baby_accuracy(version) -> float | None:
    """A version's measured per-baby accuracy (on the fixed evaluation set when it has one)."""
    accuracy = version.measured.headline.get("accuracy")
    return float(accuracy) if isinstance(accuracy, int | float) else None


def training_set_label_errors(*, items: list[TrainingSetItem]) -> dict:
    """How many of the parents' answers in a set are wrong, as models that never saw them reckon.

    For each baby of the set with a parent's label (``selectors.parents_labels``: what the
    parent said, even where staff corrected it since) and a stored label score from a model
    version that did not train on the baby (its training set does not hold it) and answers
    clearly better than chance (measured per-baby accuracy of at least
    :data:`MIN_SCORING_ACCURACY`): whether that model's answer for the baby, all its scans
    combined, agrees with the parent. With the model's measured accuracy, ``ml.label_noise``
    turns these into the estimated share of wrong answers, with a one-sided 95 % interval (why
    the measured accuracy and not the model's own probabilities: see there). In a running loop
    that is the babies new since the live version's set: the answers parents sent since.

    The parents' answers, not the labels as they are now: a flood of wrong answers is a fault
    somewhere (a swapped button, a bad import, abuse) even after the review corrected some of
    them, and the gate (``ml.gate``, rule 4) wants a person to look before a model learns from
    such a batch. ``{"estimated": False, ...}`` with the reason when too few babies qualify.
    """
    from curation.models import LabelQualityScore
    from ml.label_noise import estimate_label_error_rate

    babies = {item.scan.baby_id for item in items if item.scan_id is not None}
    parents = selectors.parents_labels(babies)
    scores = {}
    for score in (
        LabelQualityScore.objects.filter(scan__baby_id__in=parents, model_version__isnull=False)
        .select_related("scan", "model_version")
        .order_by("scored_at", "id")
    ):
        scores[score.scan.baby_id] = score  # the baby's latest score
    trained_on: dict[int | None, set[str]] = {}
    accuracies: dict[int, float | None] = {}
    disagreements, versions = [], set()
    for baby_id, score in sorted(scores.items()):
        version = score.model_version
        if version.pk not in accuracies:
            accuracies[version.pk] = _per_baby_accuracy(version)
        accuracy = accuracies[version.pk]
        if accuracy is None or accuracy < MIN_SCORING_ACCURACY:
            continue
        if version.training_set_id not in trained_on:
            trained_on[version.training_set_id] = _baby_keys_of(version.training_set_id)
        if f"baby-{baby_id}" in trained_on[version.training_set_id]:
            continue  # in-sample: the model may have learnt this very label
        baby_score = score.label_score
        says_male = (baby_score if score.sex == Sex.FEMALE else 1.0 - baby_score) >= 0.5
        disagrees = says_male != (parents[baby_id] == Sex.MALE)
        # The chance the parent's answer is wrong, given only whether this model agrees with it.
        disagreements.append(accuracy if disagrees else 1.0 - accuracy)
        versions.add(version.pk)
    section = {
        "what": "estimated share of wrong answers among parents' labels that the scoring model never "
        "trained on, from whether it agrees with each and its measured per-baby accuracy",
        "babies_with_parent_labels": len(parents),
        "scored_by": sorted(versions),
    }
    if len(disagreements) < MIN_BABIES_FOR_LABEL_ERROR_ESTIMATE:
        return {
            **section,
            "estimated": False,
            "babies": len(disagreements),
            "why": f"fewer than {MIN_BABIES_FOR_LABEL_ERROR_ESTIMATE} babies with a parent's label "
            "scored by a model that never trained on them",
        }
    return {**section, "estimated": True, **estimate_label_error_rate(disagreements).to_dict()}


def _check_duplicate_choice(excluded_duplicates: Mapping[int, int], eligible: dict[int, Scan]) -> None:
    for excluded, kept in excluded_duplicates.items():
        if excluded not in eligible or kept not in eligible:
            raise ValidationError(
                "A duplicate you chose is no longer eligible; reload the page and choose again.",
                code="duplicates_changed",
            )
        if kept in excluded_duplicates:
            raise ValidationError(
                f"Scan {kept} is both kept and left out as a duplicate; keep one copy per group.",
                code="duplicates_conflict",
            )


def training_set_create(
    *,
    created_by,
    note: str = "",
    label_sources: Iterable[str] | None = None,
    split_seed: int | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    excluded_duplicates: Mapping[int, int] | None = None,
    split_duplicate_distance: int | None = None,
) -> TrainingSet:
    """Freeze the scans eligible now (``selectors.scans_eligible_for_training``) as a new set.

    Each item copies the baby's label, its source and time, and the JPEG's bytes (stored once
    per content hash). Whole babies, and babies sharing a near-duplicate scan, are assigned to
    train/val/test together. ``excluded_duplicates`` maps scans staff left out as near-duplicates
    to the copy they kept; both must be eligible. ``split_duplicate_distance`` (default
    ``selectors.SPLIT_DUPLICATE_DISTANCE``) is how close two scans' dHashes must be for their
    babies to share a split. The set's data card is computed here, once.
    Nothing eligible is a ``ValidationError`` that says why.
    """
    sources = sorted(set(label_sources if label_sources is not None else LabelSource.values))
    unknown = set(sources) - set(LabelSource.values)
    if unknown or not sources:
        raise ValidationError("Choose at least one known label source.", code="label_sources")
    excluded_duplicates = {int(k): int(v) for k, v in (excluded_duplicates or {}).items()}
    scans = list(selectors.scans_eligible_for_training(label_sources=sources))
    _check_duplicate_choice(excluded_duplicates, {scan.pk: scan for scan in scans})
    scans = [scan for scan in scans if scan.pk not in excluded_duplicates]
    if not scans:
        summary = selectors.training_eligibility_summary(label_sources=sources)
        raise ValidationError(
            "No scans are eligible for a training set yet: a scan needs to be accepted in review, "
            "its baby needs a confirmed sex from a chosen label source and must not be deleted, and "
            f"its parent must have agreed to training use. (Pending review: {summary.pending}.)",
            code="nothing_eligible",
        )
    seed = split_seed if split_seed is not None else random.SystemRandom().randrange(2**31)

    # Splits: records keyed by split unit, so near-duplicate babies land in the same split.
    if split_duplicate_distance is None:
        split_duplicate_distance = selectors.SPLIT_DUPLICATE_DISTANCE
    units = _split_groups(scans, max_distance=split_duplicate_distance)
    records = [
        TrainingRecord(
            image=str(scan.pk), label=SEX_LABELS[scan.baby.confirmed_sex], baby_key=units[scan.baby_id]
        )
        for scan in scans
    ]
    splits = split_by_baby(records, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    split_of_unit = {record.baby_key: name for name, members in splits.items() for record in members}

    written: list[str] = []
    try:
        items = []
        for scan in scans:
            try:
                with scan.image.storage.open(scan.image.name, "rb") as handle:
                    content = handle.read()
            except FileNotFoundError:
                raise ValidationError(
                    f"The JPEG of scan {scan.pk} is missing from storage; reject the scan or restore "
                    "the file, then try again.",
                    code="missing_file",
                ) from None
            sha256 = hashlib.sha256(content).hexdigest()
            baby = scan.baby
            items.append(
                TrainingSetItem(
                    scan=scan,
                    owner_id=baby.owner_id,
                    baby_key=f"baby-{baby.pk}",
                    scan_key=f"scan-{scan.pk}",
                    sex=baby.confirmed_sex,
                    label_source=baby.confirmed_sex_source,
                    labelled_at=baby.confirmed_sex_at,
                    gestational_week=scan.gestational_week,
                    split=split_of_unit[units[baby.pk]],
                    image=_store_training_copy(content, sha256, written),
                    image_sha256=sha256,
                    perceptual_hash=scan.perceptual_hash,
                    is_synthetic=scan.is_synthetic,
                )
            )
        class_counts = Counter(item.sex for item in items)
        split_counts = {
            name: {sex: sum(1 for i in items if i.split == name and i.sex == sex) for sex in Sex.values}
            for name in ("train", "val", "test")
        }
        with transaction.atomic():
            training_set = TrainingSet(
                note=note.strip(),
                label_sources=sources,
                split_seed=seed,
                item_count=len(items),
                baby_count=len({item.baby_key for item in items}),
                class_counts={sex: class_counts.get(sex, 0) for sex in Sex.values},
                split_counts=split_counts,
                content_digest=content_digest((i.image_sha256, i.sex, i.baby_key, i.split) for i in items),
                data_card=training_set_data_card(
                    items=items, sources=sources, excluded_duplicates=excluded_duplicates
                ),
                created_by=created_by,
            )
            training_set.full_clean()
            training_set.save()
            for item in items:
                item.training_set = training_set
            TrainingSetItem.objects.bulk_create(items)
            audit_log(
                actor=created_by,
                action="training_set.created",
                obj=training_set,
                data={
                    "after": {
                        "note": training_set.note,
                        "label_sources": sources,
                        "item_count": training_set.item_count,
                        "baby_count": training_set.baby_count,
                        "class_counts": training_set.class_counts,
                        "split_counts": split_counts,
                        "content_digest": training_set.content_digest,
                    },
                    "excluded_duplicates": training_set.data_card["excluded"]["duplicates"],
                    "excluded_by_reason": training_set.data_card["excluded"]["by_reason"],
                },
            )
    except BaseException:
        # Only files this call created; a copy another set already had stays. One the storage
        # refuses to delete now goes to the ledger, and cron retries it.
        alias = storage_alias(training_storage())
        delete_now_or_later([(alias, name) for name in written])
        raise
    return training_set


def training_items_erase_for_owner(*, owner, actor=None) -> tuple[int, FileRemoval]:
    """Erase the frozen copies of ``owner``'s scans (their account is being deleted).

    The one exception to "a frozen set never changes": a parent who deletes their account
    takes their pictures with them. The item rows stay, marked ``erased_at`` and without an
    image or a link to the parent, so a set still says how many scans it had and lost. A copy
    shared with another parent's item (the same bytes) stays while anyone else uses it.
    Returns the number of items erased and the ``FileRemoval`` of their copies: the copies go
    through the ledger of file deletions (``babies.files``), so a storage failure only delays
    their removal until cron retries it.
    """
    with transaction.atomic():
        items = list(TrainingSetItem.objects.select_for_update().filter(owner=owner, erased_at__isnull=True))
        if not items:
            return 0, FileRemoval(remaining=0)
        names = {item.image.name for item in items if item.image}
        now = timezone.now()
        TrainingSetItem.objects.filter(pk__in=[item.pk for item in items]).update(
            image="", erased_at=now, owner=None, scan=None
        )
        still_used = set(
            TrainingSetItem.objects.filter(image__in=names).values_list("image", flat=True).distinct()
        )
        for training_set_id, count in Counter(item.training_set_id for item in items).items():
            audit_log(
                actor=actor,
                action="training_set.items_erased",
                obj=TrainingSet(pk=training_set_id),
                object_repr=f"Training set {training_set_id}",
                data={"erased_items": count, "reason": "account deleted"},
            )
        alias = storage_alias(training_storage())
        removal = delete_on_commit([(alias, name) for name in sorted(names - still_used)])
    return len(items), removal
