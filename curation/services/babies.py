"""Staff changes to babies (restore, purge, relabel), each one written to the audit log."""

from __future__ import annotations

import uuid

from django.db import transaction

from babies import services as baby_services
from babies.models import Baby, LabelSource, Scan
from curation.models import TrainingSetItem
from curation.services.audit import audit_log


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
