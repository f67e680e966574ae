"""Writes for curation: reviews, staff changes to babies, training sets, and the audit log.

Every staff change goes through a function here, and each one writes an :class:`AuditEntry`
inside the same transaction as the change: a change is logged if and only if it happened.
Bulk admin actions call the per-object function in a loop with one shared ``batch`` id, so a
bulk action leaves one entry per object, not a single "changed 40 objects" line.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import random
import shutil
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from babies import services as baby_services
from babies.models import Baby, LabelSource, Scan, Sex
from curation import selectors
from curation.models import (
    QUALITY_FLAGS,
    AuditEntry,
    LabelQualityScore,
    ReviewState,
    ScanReview,
    TrainingSet,
    TrainingSetItem,
    new_batch,
    training_storage,
)
from ml.records import MANIFEST_NAME, SEX_LABELS, TrainingRecord
from ml.splits import split_by_baby

logger = logging.getLogger(__name__)

TRAINING_COPY_PREFIX = "training-sets"


# --- Audit log -----------------------------------------------------------------------------
def describe(obj) -> str:
    """A description of ``obj`` for the audit log that names no parent (it outlives the object)."""
    if isinstance(obj, Baby):
        return f"Baby #{obj.pk} (owner #{obj.owner_id})"
    if isinstance(obj, Scan):
        return f"Scan #{obj.pk} (baby #{obj.baby_id})"
    if getattr(obj, "_meta", None) is not None and obj._meta.label_lower == "accounts.user":
        return f"User #{obj.pk}"
    return str(obj)[:200]


def actor_description(actor) -> str:
    """Staff are named by e-mail; a parent acting on their own account only by number."""
    if actor is None:
        return "system"
    if actor.is_staff:
        return actor.email
    return f"User #{actor.pk}"


def audit_log(
    *,
    actor,
    action: str,
    obj=None,
    data: Mapping | None = None,
    batch: uuid.UUID | None = None,
    object_repr: str | None = None,
) -> AuditEntry:
    """Record that ``actor`` did ``action`` (a dotted name such as ``scan.reviewed``) to ``obj``.

    ``data`` holds what changed, usually ``{"before": {...}, "after": {...}}``. Call it inside
    the transaction that makes the change.
    """
    entry = AuditEntry(
        actor=actor if getattr(actor, "pk", None) else None,
        actor_repr=actor_description(actor),
        action=action,
        data=dict(data or {}),
        batch=batch,
    )
    if obj is not None:
        entry.content_type = ContentType.objects.get_for_model(obj)
        entry.object_id = str(obj.pk)
        entry.object_repr = object_repr or describe(obj)
    elif object_repr:
        entry.object_repr = object_repr
    entry.full_clean(exclude=["content_type", "actor"])
    entry.save()
    return entry


# --- Reviews -------------------------------------------------------------------------------
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


# --- Likely label errors -------------------------------------------------------------------
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


def scan_label_mark_checked(*, scan: Scan, actor, batch: uuid.UUID | None = None) -> bool:
    """Staff looked at a likely label error and the label is right: it leaves the queue's top.

    Returns False (and logs nothing) when the scan has no current score or was already checked.
    """
    with transaction.atomic():
        score = LabelQualityScore.objects.select_for_update().filter(scan=scan).first()
        if score is None or score.label_checked_at is not None:
            return False
        score.label_checked_by, score.label_checked_at = actor, timezone.now()
        score.save(update_fields=["label_checked_by", "label_checked_at"])
        audit_log(
            actor=actor,
            action="scan.label_checked",
            obj=scan,
            data={
                "label": score.sex,
                "disagreement": round(score.disagreement, 4),
                "model_version": score.model_version_id,
            },
            batch=batch,
        )
    return True


# --- Babies --------------------------------------------------------------------------------
def _baby_snapshot(baby: Baby) -> dict:
    return {
        "deleted_at": baby.deleted_at,
        "confirmed_sex": baby.confirmed_sex,
        "confirmed_sex_source": baby.confirmed_sex_source,
    }


def baby_restore_as_staff(*, baby: Baby, actor, batch: uuid.UUID | None = None) -> bool:
    """Undo a parent's delete; returns False (and logs nothing) for a baby that is not deleted."""
    if baby.deleted_at is None:
        return False
    with transaction.atomic():
        before = _baby_snapshot(baby)
        baby_services.baby_restore(baby=baby)
        audit_log(
            actor=actor,
            action="baby.restored",
            obj=baby,
            data={"before": before, "after": _baby_snapshot(baby)},
            batch=batch,
        )
    return True


def baby_purge_as_staff(*, baby: Baby, actor, batch: uuid.UUID | None = None) -> None:
    """Delete a baby, its scans and their files for good.

    Frozen training-set items of its scans keep their own copy of the JPEG and their label:
    a training set never changes, and a model trained on it stays reproducible. Only the
    parent's account deletion erases those copies (``training_items_erase_for_owner``).
    """
    with transaction.atomic():
        scans = list(Scan.objects.filter(baby=baby).values_list("pk", flat=True))
        kept = TrainingSetItem.objects.filter(scan_id__in=scans).count()
        data = {
            "before": {**_baby_snapshot(baby), "scan_ids": scans},
            "after": None,
            "training_set_items_kept": kept,
        }
        audit_log(actor=actor, action="baby.purged", obj=baby, data=data, batch=batch)
        for scan_id in scans:
            # Entries of its scans stay readable after the purge, under the baby's entry.
            audit_log(
                actor=actor,
                action="scan.purged",
                obj=Scan(pk=scan_id, baby_id=baby.pk),
                data={"baby": baby.pk},
                batch=batch,
            )
        baby_services.baby_purge(baby=baby)


def baby_relabel_as_staff(*, baby: Baby, actor, sex: str) -> Baby:
    """Staff correct a confirmed sex (e.g. a parent's slip); the label source becomes "staff"."""
    if sex == baby.confirmed_sex and baby.confirmed_sex_source == LabelSource.STAFF:
        return baby
    with transaction.atomic():
        before = _baby_snapshot(baby)
        baby_services.baby_confirm_sex(baby=baby, sex=sex, source=LabelSource.STAFF)
        audit_log(
            actor=actor,
            action="baby.relabelled",
            obj=baby,
            data={"before": before, "after": _baby_snapshot(baby)},
        )
    return baby


# --- Training sets -------------------------------------------------------------------------
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
    parent = {scan.baby_id: scan.baby_id for scan in scans}

    def find(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    hashed = [scan for scan in scans if selectors.is_hex_hash(scan.perceptual_hash)]
    pairs = selectors.near_duplicate_pairs([s.perceptual_hash for s in hashed], max_distance=max_distance)
    for i, j, _ in pairs:
        parent[find(hashed[i].baby_id)] = find(hashed[j].baby_id)
    return {baby_id: f"unit-{find(baby_id)}" for baby_id in parent}


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
    and label source; the share of synthetic images; and every other scan on record counted
    under the first reason it was left out (``EXCLUSION_REASONS``), rejected ones also by flag.
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
    }


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
) -> TrainingSet:
    """Freeze the scans eligible now (``selectors.scans_eligible_for_training``) as a new set.

    Each item copies the baby's label, its source and time, and the JPEG's bytes (stored once
    per content hash). Whole babies, and babies sharing a near-duplicate scan, are assigned to
    train/val/test together. ``excluded_duplicates`` maps scans staff left out as near-duplicates
    to the copy they kept; both must be eligible. The set's data card is computed here, once.
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
    units = _split_groups(scans, max_distance=selectors.SPLIT_DUPLICATE_DISTANCE)
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
                    is_synthetic=selectors.scan_is_synthetic(scan),
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
        # Only files this call created; a copy another set already had stays.
        for name in written:
            training_storage().delete(name)
        raise
    return training_set


def training_items_erase_for_owner(*, owner, actor=None) -> int:
    """Erase the frozen copies of ``owner``'s scans (their account is being deleted).

    The one exception to "a frozen set never changes": a parent who deletes their account
    takes their pictures with them. The item rows stay, marked ``erased_at`` and without an
    image or a link to the parent, so a set still says how many scans it had and lost. A copy
    shared with another parent's item (the same bytes) stays while anyone else uses it.
    """
    with transaction.atomic():
        items = list(TrainingSetItem.objects.select_for_update().filter(owner=owner, erased_at__isnull=True))
        if not items:
            return 0
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
        orphaned = sorted(names - still_used)
        transaction.on_commit(lambda: _delete_training_copies(orphaned))
    return len(items)


def _delete_training_copies(names: list[str]) -> None:
    storage = training_storage()
    for name in names:
        try:
            storage.delete(name)
        except Exception:
            logger.exception("Could not delete the training copy %s", name)


# --- Export --------------------------------------------------------------------------------
MANIFEST_COLUMNS = [
    "path",
    "split",
    "sex",
    "label",
    "baby_key",
    "scan_index",
    "gestational_week",
    "sha256",
    "label_source",
    "scan_key",
    "item_id",
]


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    manifest: Path
    exported: int
    erased: int


def training_set_export(*, training_set: TrainingSet, directory: str | Path) -> ExportResult:
    """Write ``<directory>/<split>/<sex>/<baby_key>_<scan_key>.jpg`` and ``manifest.csv``.

    The manifest is the format ``train_model`` reads (``ml.records``), paths
    relative to ``directory``. The folder must be new or empty, so an export never mixes
    with an older one. Items erased at a parent's request are left out and counted.
    """
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ValidationError(f"{directory} is not an empty folder; choose a new one.", code="not_empty")
    directory.mkdir(parents=True, exist_ok=True)
    storage = training_storage()
    rows = []
    erased = 0
    scan_index: Counter[str] = Counter()
    for item in training_set.items.order_by("split", "baby_key", "id"):
        if item.erased_at is not None or not item.image:
            erased += 1
            continue
        relative = Path(item.split) / item.sex / f"{item.baby_key}_{item.scan_key}.jpg"
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with storage.open(item.image.name, "rb") as source, target.open("wb") as destination:
            shutil.copyfileobj(source, destination)
        rows.append(
            {
                "path": relative.as_posix(),
                "split": item.split,
                "sex": item.sex,
                "label": SEX_LABELS[item.sex],
                "baby_key": item.baby_key,
                "scan_index": scan_index[item.baby_key],
                "gestational_week": "" if item.gestational_week is None else item.gestational_week,
                "sha256": item.image_sha256,
                "label_source": item.label_source,
                "scan_key": item.scan_key,
                "item_id": item.pk,
            }
        )
        scan_index[item.baby_key] += 1
    manifest = directory / MANIFEST_NAME
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (directory / "training_set.json").write_text(
        json.dumps(
            {
                "training_set": training_set.pk,
                "created_at": training_set.created_at.isoformat(),
                "note": training_set.note,
                "label_sources": training_set.label_sources,
                "split_seed": training_set.split_seed,
                "content_digest": training_set.content_digest,
                "class_counts": training_set.class_counts,
                "split_counts": training_set.split_counts,
                "exported_items": len(rows),
                "erased_items": erased,
                "data_card": training_set.data_card,
            },
            indent=2,
        )
    )
    return ExportResult(directory=directory, manifest=manifest, exported=len(rows), erased=erased)


# --- Model versions ------------------------------------------------------------------------
def model_version_activate_as_staff(
    *, model_version, actor, reason: str = "admin action", override_gate: bool = False
) -> bool:
    """Make ``model_version`` the one predictions use, and log who switched from what.

    Returns False (and logs nothing) if it already is the active version. The version it
    replaces gets a ``model_version.deactivated`` entry of its own, so both pages tell the story.
    """
    from predictions.models import ModelVersion
    from predictions.services import model_version_activate

    with transaction.atomic():
        if ModelVersion.objects.filter(pk=model_version.pk, is_active=True).exists():
            return False
        previous = ModelVersion.objects.filter(is_active=True).exclude(pk=model_version.pk).first()
        model_version_activate(
            model_version=model_version, user=actor, reason=reason, override_gate=override_gate
        )
        change = {
            "before": {"active_version": previous.pk if previous else None},
            "after": {"active_version": model_version.pk},
        }
        audit_log(
            actor=actor,
            action="model_version.activated",
            obj=model_version,
            data={**change, "reason": reason, "is_synthetic": model_version.is_synthetic},
        )
        if previous is not None:
            audit_log(actor=actor, action="model_version.deactivated", obj=previous, data=change)
    return True
