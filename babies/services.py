"""Writes for babies and scans. Views, commands and other apps change these rows only here.

Scan files and rows must exist together or not at all (``babies.files`` says how): each file's
name is reserved in the ledger before it is written and the reservation dropped once the row
commits; files of deleted rows are recorded in the ledger in the deleting transaction and removed
once it commits, retried by cron until they are gone. Every scan file is written through
``PendingFiles.save_all`` in ``scan_create`` and listed by ``_scan_files`` (deleted through
``_delete_files``), so a new file field needs a line in those two places.
"""

from __future__ import annotations

import datetime
import logging
import uuid

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from audit.services import audit_log
from babies import files, images
from babies.models import Baby, LabelSource, Scan, Sex
from ml.gestation import gestational_week_from_dates
from ml.markers import MarkerReport, detect_markers
from ml.preprocessing import model_input_bytes

logger = logging.getLogger(__name__)

BABY_EDITABLE_FIELDS = frozenset({"name", "due_date", "birth_date"})


# --- Babies --------------------------------------------------------------------------------
def baby_create(
    *,
    owner,
    name: str = "",
    due_date: datetime.date | None = None,
    birth_date: datetime.date | None = None,
    is_synthetic: bool = False,
) -> Baby:
    """A new baby of ``owner``; ``is_synthetic`` only for the generator's babies (demos, benchmarks)."""
    baby = Baby(owner=owner, name=name, due_date=due_date, birth_date=birth_date, is_synthetic=is_synthetic)
    baby.full_clean()
    with transaction.atomic():
        baby.save()
    return baby


def baby_update(*, baby: Baby, **fields) -> Baby:
    """Change the name and dates; anything else (owner, confirmed sex) has its own service."""
    unknown = set(fields) - BABY_EDITABLE_FIELDS
    if unknown:
        raise TypeError(f"baby_update() cannot change {', '.join(sorted(unknown))}")
    for field, value in fields.items():
        setattr(baby, field, value)
    baby.full_clean()
    with transaction.atomic():
        baby.save(update_fields=[*fields, "updated_at"])
    return baby


def baby_soft_delete(*, baby: Baby) -> Baby:
    """Hide the baby from its parent; staff still see it and may restore or purge it."""
    if baby.deleted_at is None:
        baby.deleted_at = timezone.now()
        with transaction.atomic():
            baby.save(update_fields=["deleted_at", "updated_at"])
    return baby


def _baby_snapshot(baby: Baby) -> dict:
    return {
        "deleted_at": baby.deleted_at,
        "confirmed_sex": baby.confirmed_sex,
        "confirmed_sex_source": baby.confirmed_sex_source,
    }


def baby_restore(*, baby: Baby, actor=None, batch: uuid.UUID | None = None) -> bool:
    """Undo a parent's delete (staff), audited; False (and nothing logged) if it was not deleted."""
    if baby.deleted_at is None:
        return False
    with transaction.atomic():
        before = _baby_snapshot(baby)
        baby.deleted_at = None
        baby.save(update_fields=["deleted_at", "updated_at"])
        audit_log(
            actor=actor,
            action="baby.restored",
            obj=baby,
            data={"before": before, "after": _baby_snapshot(baby)},
            batch=batch,
        )
    return True


def baby_confirm_sex(*, baby: Baby, sex: str, source: str, actor=None) -> Baby:
    """Record the baby's real sex: the label that checks predictions and trains the model.

    A staff correction (``source="staff"``) is written to the audit log with ``actor``; setting
    the label staff already set is no change and logs nothing.
    """
    if source == LabelSource.STAFF and sex == baby.confirmed_sex and baby.confirmed_sex_source == source:
        return baby
    if sex not in Sex.values:
        raise ValidationError({"confirmed_sex": "Please choose girl or boy."})
    if source not in LabelSource.values:
        raise ValueError(f"Unknown label source {source!r}")
    # On the dashboard a parent confirms a born baby; the outcome e-mail may arrive before the
    # parent has entered the birth date, and staff correct labels from the admin.
    if source == LabelSource.DASHBOARD and not baby.is_born:
        raise ValidationError("You can confirm the sex once your baby is born: add the birth date first.")
    before = _baby_snapshot(baby)
    baby.confirmed_sex = sex
    baby.confirmed_sex_source = source
    baby.confirmed_sex_at = timezone.now()
    baby.full_clean()
    with transaction.atomic():
        baby.save(update_fields=["confirmed_sex", "confirmed_sex_source", "confirmed_sex_at", "updated_at"])
        if source == LabelSource.STAFF:
            audit_log(
                actor=actor,
                action="baby.relabelled",
                obj=baby,
                data={"before": before, "after": _baby_snapshot(baby)},
            )
    return baby


def baby_purge(*, baby: Baby, actor=None, batch: uuid.UUID | None = None) -> files.FileRemoval:
    """Delete the baby, its scans and their files for good (staff, account deletion), audited.

    Frozen training-set items of its scans keep their own copy of the JPEG and their label: a
    training set never changes, and a model trained on it stays reproducible. Only the parent's
    account deletion erases those copies (``curation.services.training_items_erase_for_owner``).
    The audit log gets an entry for the baby and one for each scan, so a scan's entries stay
    readable under its baby's after the purge. The files go through the ledger (see
    :func:`scan_delete`); the returned ``FileRemoval`` says whether they are gone yet.
    """
    with transaction.atomic():
        scans = list(Scan.objects.filter(baby=baby))
        scan_files = [file for scan in scans for file in _scan_files(scan)]
        # Counted through the reverse relation, so babies needs no import from curation.
        kept = Scan.objects.filter(baby=baby).aggregate(items=Count("training_set_items"))["items"]
        data = {
            "before": {**_baby_snapshot(baby), "scan_ids": [scan.pk for scan in scans]},
            "after": None,
            "training_set_items_kept": kept,
        }
        audit_log(actor=actor, action="baby.purged", obj=baby, data=data, batch=batch)
        for scan in scans:
            audit_log(actor=actor, action="scan.purged", obj=scan, data={"baby": baby.pk}, batch=batch)
        Baby.all_objects.filter(pk=baby.pk).delete()
        return _delete_files(scan_files)


# --- Scans ---------------------------------------------------------------------------------
def scan_default_gestational_week(*, baby: Baby, today: datetime.date | None = None) -> int | None:
    """The week to record for a scan uploaded today when the parent did not type one in.

    Counted back from the due date (``ml.gestation``). The upload date is not the
    scan date: a parent may upload an older scan, so this is the *latest* week the scan can be
    from. It can therefore let an early scan through the gate, never hold a usable one back;
    the form says so and asks for the week. A born baby gets no default: after the birth the
    upload date says nothing about when the scan was taken.
    """
    if baby.birth_date is not None:
        return None
    return gestational_week_from_dates(baby.due_date, today or timezone.localdate())


def _scan_markers(jpeg: bytes) -> MarkerReport | None:
    """The marker report, or ``None`` if the check itself failed.

    The flag only advises (a notice, a curation filter), so a failure of the heuristic must
    never cost the parent the upload: it is logged and the scan is stored as "not checked".
    """
    try:
        return detect_markers(jpeg)
    except Exception:
        logger.exception("marker detection failed; the scan is stored unchecked")
        return None


def scan_create(
    *,
    baby: Baby,
    uploaded_file,
    crop_box: dict | None = None,
    gestational_week: int | None = None,
) -> tuple[Scan, bool]:
    """Store an uploaded scan for ``baby``; returns ``(scan, created)``.

    The same original uploaded again for the same baby returns the existing scan with
    ``created=False`` and stores nothing. Bad files raise an ``images.ImageError`` (a
    ``ValidationError``) whose message is meant for the parent.

    Two things are worked out here so that every way in (form, command, tests) gets them:

    * the gestational week, when the parent left it empty, from the due date and today
      (:func:`scan_default_gestational_week`);
    * burned-in text or caliper marks (``ml.markers``), stored as ``has_markers`` /
      ``marker_score`` for the parent's notice and for curation. The check reads the 320 px
      thumbnail: on a 12-megapixel crop it took about 230 ms, more than the whole rest of the
      upload, and the overlays it looks for (text, '+' calipers) survive the downscale.
    """
    if baby.deleted_at is not None:
        raise ValidationError("This baby has been deleted, so no scans can be added.", code="baby_deleted")
    data = images.read_upload(uploaded_file)
    sha256 = images.sha256_hex(data)
    existing = Scan.objects.filter(baby=baby, sha256=sha256).first()
    if existing is not None:
        return existing, False

    box = images.parse_crop_box(crop_box)
    normalised = images.normalise(data, crop_box=box, check_thumbnail=_scan_markers)
    if gestational_week is None:
        gestational_week = scan_default_gestational_week(baby=baby)
    markers = normalised.thumbnail_check
    scan = Scan(
        baby=baby,
        original_format=normalised.original_format,
        sha256=sha256,
        perceptual_hash=normalised.perceptual_hash,
        width=normalised.width,
        height=normalised.height,
        crop_box=normalised.crop_box.as_dict() if normalised.crop_box else None,
        gestational_week=gestational_week,
        has_markers=markers.has_markers if markers else False,
        marker_score=markers.score if markers else None,
        is_synthetic=baby.is_synthetic,
    )
    # Validate before writing any file; the file fields are filled in below.
    scan.full_clean(exclude=["original", "image", "thumbnail", "model_input"], validate_constraints=False)

    # Files first, each name reserved in the ledger before it is written; then the row. The
    # row's transaction holds no lock while files are written, and a crash anywhere leaves
    # either a committed row with its files or reserved files that cron removes.
    pending = files.PendingFiles()
    stem = uuid.uuid4().hex
    try:
        scan.original.name, scan.image.name, scan.thumbnail.name, scan.model_input.name = pending.save_all(
            [
                ("originals", stem + normalised.original_extension, data),
                ("scans", stem + ".jpg", normalised.jpeg),
                ("scans", stem + "_thumb.jpg", normalised.thumbnail),
                ("scans", stem + "_model.pgm", normalised.model_input),
            ]
        )
        with transaction.atomic():
            scan.save()
            pending.keep_on_commit()
    except IntegrityError:
        # Two identical uploads raced; the other one won. Keep its files, drop ours.
        pending.discard()
        existing = Scan.objects.filter(baby=baby, sha256=sha256).first()
        if existing is None:
            raise
        return existing, False
    except BaseException:
        pending.discard()
        raise
    return scan, True


def scan_delete(*, scan: Scan) -> files.FileRemoval:
    """Delete a scan for good; its files go once the deletion has committed.

    They are recorded in the ledger in the same transaction, so a storage that refuses to delete
    them now (read-only, unreachable) only delays it: cron retries until they are gone. The
    returned ``FileRemoval`` tells the caller which of the two happened, to word its message.
    """
    scan_files = _scan_files(scan)
    with transaction.atomic():
        Scan.objects.filter(pk=scan.pk).delete()
        return _delete_files(scan_files)


def scan_model_input_create(*, scan: Scan) -> bool:
    """Write the model-ready derivative of a scan stored before derivatives existed.

    Made from the stored JPEG, the very pixels training reads (``ml.preprocessing``). Safe to run
    concurrently: the row is claimed with a conditional UPDATE and a run that loses (or finds the
    scan deleted) removes its own file. False when the scan already had a derivative.
    """
    if scan.model_input:
        return False
    with scan.image.storage.open(scan.image.name, "rb") as handle:
        derivative = model_input_bytes(handle.read())
    pending = files.PendingFiles()
    stem = scan.image.name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    try:
        name = pending.save("scans", stem + "_model.pgm", derivative)
        with transaction.atomic():
            claimed = Scan.objects.filter(pk=scan.pk, model_input="").update(model_input=name)
            if claimed:
                pending.keep_on_commit()
    except BaseException:
        pending.discard()
        raise
    if not claimed:
        pending.discard()
        return False
    scan.model_input.name = name
    return True


# --- Files ---------------------------------------------------------------------------------
def _scan_files(scan: Scan) -> list[tuple[str, str]]:
    """Every stored file of a scan, as ``(storage alias, name)``."""
    scan_files = [("originals", scan.original.name), ("scans", scan.image.name)]
    if scan.thumbnail:
        scan_files.append(("scans", scan.thumbnail.name))
    if scan.model_input:
        scan_files.append(("scans", scan.model_input.name))
    return [(alias, name) for alias, name in scan_files if name]


def _delete_files(scan_files: list[tuple[str, str]]) -> files.FileRemoval:
    """Record the files in the ledger (call inside the deleting transaction); gone after commit."""
    return files.delete_on_commit(scan_files)
