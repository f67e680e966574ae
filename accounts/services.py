"""Writes about a parent's account: training consent, the data export, and account deletion."""

from __future__ import annotations

import csv
import io
import json
import logging
import uuid
import zipfile
from pathlib import PurePosixPath
from typing import IO

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from accounts import selectors
from audit.services import audit_log
from babies import services as baby_services
from babies.files import FileRemoval
from babies.models import Baby
from curation import services as curation_services

logger = logging.getLogger(__name__)


def user_training_consent_update(*, user, allows_training_use: bool):
    """Record the parent's choice and when it changed; the audit log keeps the history.

    The proof of consent matters later: a training set only takes scans of parents who have
    it on at that moment (``curation.selectors.scans_eligible_for_training``).
    """
    allows_training_use = bool(allows_training_use)
    if user.allows_training_use == allows_training_use:
        return user
    with transaction.atomic():
        before = {
            "allows_training_use": user.allows_training_use,
            "changed_at": user.training_consent_changed_at,
        }
        user.allows_training_use = allows_training_use
        user.training_consent_changed_at = timezone.now()
        user.save(update_fields=["allows_training_use", "training_consent_changed_at"])
        audit_log(
            actor=user,
            action="user.training_consent_changed",
            obj=user,
            data={
                "before": before,
                "after": {
                    "allows_training_use": allows_training_use,
                    "changed_at": user.training_consent_changed_at,
                },
            },
        )
    return user


# --- Export --------------------------------------------------------------------------------
EXPORT_README = """Your data from Instagender, exported {exported_at}.

account.json      your account and your training-consent choice
babies.json       every baby with its scans and predictions (babies you deleted included:
                  we keep them until our team reviews them or you delete your account)
babies.csv        the babies as a table
scans.csv         the scans as a table; "jpeg" and "original" are paths inside this ZIP
predictions.csv   every prediction made for your babies
training_sets.csv your scans that are part of a frozen training set (only with your consent)
scans/            the normalised JPEGs we show you and use for predictions
originals/        the files exactly as you uploaded them
"""


def _scan_paths(baby: Baby, scan) -> tuple[str, str]:
    folder = f"baby-{baby.pk}"
    suffix = PurePosixPath(scan.original.name).suffix or ".bin"
    return f"scans/{folder}/scan-{scan.pk}.jpg", f"originals/{folder}/scan-{scan.pk}{suffix}"


def _csv(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row.get(key) is None else row.get(key) for key in columns})
    return buffer.getvalue()


def _copy_into(archive: zipfile.ZipFile, field_file, arcname: str) -> bool:
    """Copy a stored file into the archive in chunks; a missing file is logged, not fatal."""
    try:
        with field_file.storage.open(field_file.name, "rb") as source, archive.open(arcname, "w") as target:
            while chunk := source.read(1024 * 1024):
                target.write(chunk)
    except FileNotFoundError:
        logger.warning("Export: %s is missing from storage", field_file.name)
        return False
    return True


def user_data_export(*, user, destination: IO[bytes], actor=None) -> None:
    """Write a ZIP of everything we hold about ``user`` to ``destination``.

    Images are stored without compression (JPEGs do not shrink) and copied in chunks, so a
    parent with many scans does not need their whole archive in memory. ``actor`` is the staff
    member exporting it for the parent (data protection, from the admin): that is audited.
    """
    exported_at = timezone.now()
    if actor is not None and actor.pk != user.pk:
        audit_log(actor=actor, action="user.data_exported", obj=user)
    babies = list(selectors.user_babies_for_export(user=user))
    predictions = selectors.user_predictions_for_export(babies=babies)
    baby_rows, scan_rows, prediction_rows, nested = [], [], [], []
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_STORED) as archive:
        for baby in babies:
            baby_row = {
                "id": baby.pk,
                "name": baby.name,
                "due_date": baby.due_date,
                "birth_date": baby.birth_date,
                "confirmed_sex": baby.confirmed_sex,
                "confirmed_sex_source": baby.confirmed_sex_source,
                "confirmed_sex_at": baby.confirmed_sex_at,
                "deleted_at": baby.deleted_at,
                "created_at": baby.created_at,
            }
            baby_rows.append(baby_row)
            scans = []
            for scan in baby.scans.all():
                jpeg_path, original_path = _scan_paths(baby, scan)
                has_jpeg = _copy_into(archive, scan.image, jpeg_path)
                has_original = _copy_into(archive, scan.original, original_path)
                scan_row = {
                    "id": scan.pk,
                    "baby_id": baby.pk,
                    "uploaded_at": scan.uploaded_at,
                    "gestational_week": scan.gestational_week,
                    "width": scan.width,
                    "height": scan.height,
                    "crop_box": scan.crop_box,
                    "original_format": scan.original_format,
                    "sha256": scan.sha256,
                    "jpeg": jpeg_path if has_jpeg else None,
                    "original": original_path if has_original else None,
                }
                scan_rows.append(scan_row)
                scans.append(scan_row)
            baby_predictions = predictions.get(baby.pk, [])
            prediction_rows.extend(baby_predictions)
            nested.append({**baby_row, "scans": scans, "predictions": baby_predictions})

        training_rows = [
            {
                "training_set": item.training_set_id,
                "training_set_created_at": item.training_set.created_at,
                "baby_id": item.baby_key.removeprefix("baby-"),
                "scan_id": item.scan_key.removeprefix("scan-"),
                "sex": item.sex,
                "label_source": item.label_source,
            }
            for item in selectors.user_training_set_items(user=user)
        ]
        account = {
            "email": user.email,
            "date_joined": user.date_joined,
            "last_login": user.last_login,
            "allows_training_use": user.allows_training_use,
            "training_consent_changed_at": user.training_consent_changed_at,
            "exported_at": exported_at,
        }

        def write_text(name: str, text: str) -> None:
            archive.writestr(name, text, compress_type=zipfile.ZIP_DEFLATED)

        write_text("README.txt", EXPORT_README.format(exported_at=exported_at.isoformat(timespec="seconds")))
        write_text("account.json", json.dumps(account, cls=DjangoJSONEncoder, indent=2))
        write_text("babies.json", json.dumps(nested, cls=DjangoJSONEncoder, indent=2))
        write_text("babies.csv", _csv(baby_rows, list(baby_rows[0]) if baby_rows else ["id"]))
        scan_columns = [c for c in (scan_rows[0] if scan_rows else {"id": 0}) if c != "crop_box"]
        write_text("scans.csv", _csv(scan_rows, scan_columns))
        prediction_columns = list(prediction_rows[0]) if prediction_rows else ["id", "baby_id"]
        write_text("predictions.csv", _csv([_flat(row) for row in prediction_rows], prediction_columns))
        write_text(
            "training_sets.csv",
            _csv(
                training_rows,
                ["training_set", "training_set_created_at", "baby_id", "scan_id", "sex", "label_source"],
            ),
        )


def _flat(row: dict) -> dict:
    """Nested values (per-scan probabilities) as JSON text in one CSV cell."""
    return {
        key: json.dumps(value, cls=DjangoJSONEncoder) if isinstance(value, dict | list) else value
        for key, value in row.items()
    }


# --- Deletion ------------------------------------------------------------------------------
def user_delete(*, user, actor=None) -> dict:
    """Delete the account and everything in it, files included; returns what was removed.

    Babies (deleted ones too) are purged through ``babies.services.baby_purge``. Frozen
    training-set copies of the parent's scans are erased as well
    (``curation.services.training_items_erase_for_owner``): the one way a frozen set loses an
    item. Every file is recorded in the ledger of file deletions (``babies.files``) in this
    transaction and removed once it commits; ``files_pending`` in the summary counts those the
    storage refused just now, which cron keeps retrying until they are gone. The audit log keeps
    an entry that names the account by number only. ``actor`` is the staff member deleting it
    from the admin; the parent themselves by default.
    """
    actor = actor or user
    with transaction.atomic():
        babies = list(Baby.all_objects.for_owner(user))
        scan_count = sum(baby.scans.count() for baby in babies)
        erased, removal = curation_services.training_items_erase_for_owner(owner=user, actor=actor)
        removals = [removal]
        batch = uuid.uuid4()  # one deletion: its babies' entries share a batch
        for baby in babies:
            removals.append(baby_services.baby_purge(baby=baby, actor=actor, batch=batch))
        summary = {"babies_purged": len(babies), "scans_purged": scan_count, "training_items_erased": erased}
        audit_log(actor=actor, action="user.deleted", obj=user, data=summary)
        user.delete()
    # The files were removed when the transaction committed (unless a caller's still holds it).
    files = FileRemoval.combine(removals)
    summary["files_pending"] = len(files.entry_ids) if files.remaining is None else files.remaining
    return summary
