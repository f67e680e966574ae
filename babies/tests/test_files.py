"""The ledger of file deletions, upload reservations and the reconciliation of storage with rows.

Storage failures are simulated here by a storage whose ``delete`` raises; the real faults (a
read-only and a full file system, a killed gunicorn worker) are in ``tests/faults/``.
"""

import datetime
import os
import time

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.db.models import FileField
from django.urls import reverse
from django.utils import timezone

from babies import files, services
from babies.models import FileDeletion, MissingFile, Scan
from babies.tests.factories import FILES_PER_SCAN, BabyFactory, create_scan, image_bytes, stored_files, upload

pytestmark = pytest.mark.django_db

LATER = datetime.timedelta(hours=2)  # past an upload reservation (an hour)


@pytest.fixture
def storage_refuses_deletes(monkeypatch):
    """Every private storage raises on delete, as a read-only mount or an S3 outage does."""

    def refuse(name):
        raise OSError(30, "Read-only file system")

    for alias in ("originals", "scans", "default"):
        monkeypatch.setattr(storages[alias], "delete", refuse)
    return monkeypatch


def _age(media_root, hours: float) -> None:
    """Make every stored file ``hours`` old (the grace period of reconcile_media has passed)."""
    then = time.time() - hours * 3600
    for path in media_root.rglob("*"):
        if path.is_file():
            os.utime(path, (then, then))


# --- Deleting ------------------------------------------------------------------------------
def test_files_per_scan_counts_every_file_field_of_a_scan(scan):
    """The fault tests count files with FILES_PER_SCAN: a new derivative must update it."""
    fields = [field for field in Scan._meta.get_fields() if isinstance(field, FileField)]
    assert len(fields) == FILES_PER_SCAN
    assert all(getattr(scan, field.name) for field in fields)


def test_scan_delete_records_the_files_and_removes_them_after_commit(
    scan, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        removal = services.scan_delete(scan=scan)

    assert removal.complete
    assert stored_files(settings.MEDIA_ROOT) == []
    deletions = FileDeletion.objects.filter(reason=FileDeletion.Reason.DELETED)
    assert deletions.count() == FILES_PER_SCAN
    assert all(entry.done_at and entry.outcome == "removed" and entry.attempts == 1 for entry in deletions)


def test_a_rolled_back_delete_keeps_row_files_and_no_ledger_entry(scan, settings):
    with pytest.raises(RuntimeError), transaction.atomic():
        services.scan_delete(scan=scan)
        raise RuntimeError("the caller's transaction fails")

    assert Scan.objects.filter(pk=scan.pk).exists()
    assert len(stored_files(settings.MEDIA_ROOT)) == FILES_PER_SCAN
    assert not FileDeletion.objects.filter(reason=FileDeletion.Reason.DELETED).exists()


def test_storage_refusing_the_delete_leaves_an_entry_that_cron_finishes(
    scan, settings, storage_refuses_deletes, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        removal = services.scan_delete(scan=scan)

    assert not removal.complete and removal.remaining == FILES_PER_SCAN
    assert not Scan.objects.exists()
    assert len(stored_files(settings.MEDIA_ROOT)) == FILES_PER_SCAN
    pending = FileDeletion.objects.filter(reason=FileDeletion.Reason.DELETED, done_at__isnull=True)
    assert pending.count() == FILES_PER_SCAN
    assert all("Read-only file system" in entry.last_error for entry in pending)

    # Cron while the storage still refuses: fails loudly and keeps every entry.
    with pytest.raises(CommandError, match=f"{FILES_PER_SCAN} file\\(s\\) could not be deleted"):
        call_command("finish_file_deletions")
    assert pending.count() == FILES_PER_SCAN
    assert {entry.attempts for entry in pending.all()} == {2}

    storage_refuses_deletes.undo()
    call_command("finish_file_deletions")
    assert stored_files(settings.MEDIA_ROOT) == []
    assert not pending.all().exists()


@pytest.mark.django_db(transaction=True)  # the removal runs at the view's own commit
def test_the_parent_is_told_the_truth_when_the_files_are_not_gone_yet(
    parent_client, baby, storage_refuses_deletes
):
    scan = create_scan(baby)
    response = parent_client.post(reverse("babies:scan_delete", args=[scan.pk]), follow=True)

    html = response.content.decode()
    assert response.status_code == 200
    assert "The scan was removed from" in html
    assert "could not erase its files just now" in html
    assert "was deleted from" not in html


@pytest.mark.django_db(transaction=True)  # the removal runs at the view's own commit
def test_the_parent_is_told_deleted_when_the_files_are_gone(parent_client, baby, settings):
    scan = create_scan(baby)
    response = parent_client.post(reverse("babies:scan_delete", args=[scan.pk]), follow=True)

    assert "The scan was deleted from" in response.content.decode()
    assert stored_files(settings.MEDIA_ROOT) == []


@pytest.mark.django_db(transaction=True)  # the removal runs at the view's own commit
def test_account_deletion_with_refusing_storage_says_so_and_cron_finishes_it(
    client, user, password, settings, storage_refuses_deletes
):
    client.force_login(user)
    create_scan(BabyFactory(owner=user))
    response = client.post(reverse("account_delete"), {"password": password}, follow=True)

    html = response.content.decode()
    assert "except some picture files that our storage could not erase just now" in html
    assert len(stored_files(settings.MEDIA_ROOT)) == FILES_PER_SCAN

    storage_refuses_deletes.undo()
    call_command("finish_file_deletions")
    assert stored_files(settings.MEDIA_ROOT) == []


def test_a_file_a_row_uses_is_never_deleted(scan, settings):
    FileDeletion.objects.create(storage="scans", name=scan.image.name, reason=FileDeletion.Reason.ORPHAN)

    call_command("finish_file_deletions")

    assert len(stored_files(settings.MEDIA_ROOT)) == FILES_PER_SCAN
    assert FileDeletion.objects.get(reason=FileDeletion.Reason.ORPHAN).outcome == "kept"


# --- Upload reservations ------------------------------------------------------------------
def test_an_upload_reserves_its_names_before_writing_and_drops_them_on_commit(
    baby, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        scan = create_scan(baby)
    reserved = {
        (entry.storage, entry.name)
        for entry in FileDeletion.objects.filter(reason=FileDeletion.Reason.UPLOAD)
    }
    assert reserved == set(services._scan_files(scan))
    assert all(entry.due_at > timezone.now() for entry in FileDeletion.objects.all())

    for callback in callbacks:
        callback()
    assert not FileDeletion.objects.exists()


def test_files_of_an_upload_that_never_committed_are_removed_once_the_reservation_is_due(baby, settings):
    # What a killed worker leaves: names reserved, files written, no row, nothing cleaned up.
    pending = files.PendingFiles()
    pending.save("originals", "killed.png", image_bytes())
    pending.save("scans", "killed.jpg", b"jpeg")
    kept = create_scan(baby)  # a row that committed but never dropped its reservations

    assert files.deletions_process().removed == 0  # within the hour: it may still commit
    assert len(stored_files(settings.MEDIA_ROOT)) == FILES_PER_SCAN + 2

    result = files.deletions_process(now=timezone.now() + LATER)

    assert (result.removed, result.kept, result.failed) == (2, FILES_PER_SCAN, 0)
    assert sorted(stored_files(settings.MEDIA_ROOT)) == sorted(
        f"{alias}/{name}" for alias, name in services._scan_files(kept)
    )


def test_a_failed_write_removes_the_partial_file_under_its_reserved_name(baby, settings, monkeypatch):
    scans = storages["scans"]
    real_save = scans.save

    def disk_full_half_way(name, content, max_length=None):
        real_save(name, type(content)(content.read()[:10]))  # some bytes reach the disk...
        raise OSError(28, "No space left on device")  # ...then the disk is full

    monkeypatch.setattr(scans, "save", disk_full_half_way)

    with pytest.raises(files.StorageUnavailable):
        services.scan_create(baby=baby, uploaded_file=upload(image_bytes()))
    assert stored_files(settings.MEDIA_ROOT) == []
    assert not FileDeletion.objects.exists()


def test_an_upload_whose_cleanup_fails_leaves_its_files_to_cron(baby, settings, monkeypatch):
    scans = storages["scans"]
    monkeypatch.setattr(scans, "save", lambda *args, **kwargs: (_ for _ in ()).throw(OSError(28, "full")))
    monkeypatch.setattr(
        storages["originals"], "delete", lambda name: (_ for _ in ()).throw(OSError(30, "ro"))
    )

    with pytest.raises(files.StorageUnavailable):
        services.scan_create(baby=baby, uploaded_file=upload(image_bytes()))
    (original,) = stored_files(settings.MEDIA_ROOT)
    entry = FileDeletion.objects.get(storage="originals")
    assert entry.due_at <= timezone.now() and "ro" in entry.last_error  # due at once, not in an hour

    monkeypatch.undo()
    call_command("finish_file_deletions")
    assert stored_files(settings.MEDIA_ROOT) == []


def test_the_upload_view_answers_a_storage_failure_with_a_sentence(
    parent_client, baby, settings, monkeypatch
):
    monkeypatch.setattr(
        storages["originals"], "save", lambda *a, **k: (_ for _ in ()).throw(OSError(30, "ro"))
    )

    response = parent_client.post(
        reverse("babies:scan_upload", args=[baby.pk]),
        {"file": upload(image_bytes())},
        HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 503
    assert response.json() == {"error": files.StorageUnavailable.message}
    assert stored_files(settings.MEDIA_ROOT) == []


# --- Reconciling storage with rows ---------------------------------------------------------
def test_reconcile_deletes_old_files_of_a_rolled_back_transaction_and_nothing_else(baby, settings):
    kept = create_scan(baby)
    with pytest.raises(RuntimeError), transaction.atomic():
        create_scan(baby)  # the files are written; the row and its reservations roll back
        raise RuntimeError("the caller's transaction fails")
    assert len(stored_files(settings.MEDIA_ROOT)) == 2 * FILES_PER_SCAN

    call_command("reconcile_media")  # the new files are younger than the grace period
    assert len(stored_files(settings.MEDIA_ROOT)) == 2 * FILES_PER_SCAN

    _age(settings.MEDIA_ROOT, hours=25)
    call_command("reconcile_media", "--dry-run")
    assert len(stored_files(settings.MEDIA_ROOT)) == 2 * FILES_PER_SCAN
    assert not FileDeletion.objects.filter(reason=FileDeletion.Reason.ORPHAN).exists()

    call_command("reconcile_media")
    assert sorted(stored_files(settings.MEDIA_ROOT)) == sorted(
        f"{alias}/{name}" for alias, name in services._scan_files(kept)
    )
    assert (
        FileDeletion.objects.filter(reason=FileDeletion.Reason.ORPHAN, outcome="removed").count()
        == FILES_PER_SCAN
    )


def test_reconcile_reports_rows_without_files_to_staff_until_resolved(scan, settings, capsys):
    with storages["scans"].open(scan.image.name, "rb") as handle:
        jpeg = handle.read()
    storages["scans"].delete(scan.image.name)

    with pytest.raises(CommandError, match="1 row\\(s\\) have lost their file"):
        call_command("reconcile_media")
    assert (
        f"row without file: babies.scan {scan.pk} field image -> scans/{scan.image.name}"
        in capsys.readouterr().out
    )
    missing = MissingFile.objects.get()
    assert (missing.model, missing.object_id, missing.field, missing.resolved_at) == (
        "babies.scan",
        str(scan.pk),
        "image",
        None,
    )

    storages["scans"].save(scan.image.name, ContentFile(jpeg))  # restored from a backup
    call_command("reconcile_media")
    missing.refresh_from_db()
    assert missing.resolved_at is not None


def test_reconcile_leaves_files_the_ledger_knows_to_the_ledger(baby, settings):
    pending = files.PendingFiles()
    pending.save("scans", "in-flight.jpg", b"jpeg")
    _age(settings.MEDIA_ROOT, hours=25)

    call_command("reconcile_media")

    assert stored_files(settings.MEDIA_ROOT) == ["scans/in-flight.jpg"]


def test_every_file_field_is_covered():
    covered = {
        (model._meta.label_lower, field) for fields in files.file_fields().values() for model, field in fields
    }
    assert {("babies.scan", "original"), ("babies.scan", "image"), ("babies.scan", "thumbnail")} <= covered
    assert ("curation.trainingsetitem", "image") in covered
    assert ("predictions.modelversion", "tflite_file") in covered
    assert "babies.reviewqueuescan" not in {label for label, _ in covered}  # proxies are their model


# --- Staff ------------------------------------------------------------------------------------
def test_staff_see_the_ledger_and_missing_files_read_only(staff_client, scan, storage_refuses_deletes):
    services.scan_delete(scan=scan)
    MissingFile.objects.create(
        storage="scans", name="gone.jpg", model="babies.scan", object_id="7", field="image"
    )

    ledger = staff_client.get(reverse("admin:babies_filedeletion_changelist") + "?state=open")
    missing = staff_client.get(reverse("admin:babies_missingfile_changelist"))

    assert ledger.status_code == missing.status_code == 200
    assert scan.image.name in ledger.content.decode()
    assert "gone.jpg" in missing.content.decode()
    entry = FileDeletion.objects.filter(reason=FileDeletion.Reason.DELETED).first()
    change = staff_client.get(reverse("admin:babies_filedeletion_change", args=[entry.pk]))
    assert change.status_code == 200
    assert 'name="_save"' not in change.content.decode()  # nothing to change
    assert staff_client.post(reverse("admin:babies_filedeletion_delete", args=[entry.pk])).status_code == 403


def test_erased_training_copies_go_through_the_ledger_too(
    client, password, staff_user, settings, storage_refuses_deletes, django_capture_on_commit_callbacks
):
    from curation import services as curation_services
    from curation.models import TrainingSetItem
    from curation.tests.factories import distinct_image, labelled_baby, reviewed_scan

    storage_refuses_deletes.undo()  # the set is frozen while storage works
    leaving = labelled_baby()
    reviewed_scan(leaving, reviewer=staff_user, data=distinct_image(1))
    training_set = curation_services.training_set_create(created_by=staff_user)
    (copy,) = [item.image.name for item in TrainingSetItem.objects.filter(training_set=training_set)]
    storage_refuses_deletes.setattr(
        storages["default"], "delete", lambda name: (_ for _ in ()).throw(OSError(30, "ro"))
    )
    client.force_login(leaving.owner)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("account_delete"), {"password": password})

    entry = FileDeletion.objects.get(storage="default", done_at__isnull=True)
    assert entry.name == copy and "ro" in entry.last_error
    assert f"default/{copy}" in stored_files(settings.MEDIA_ROOT)

    storage_refuses_deletes.undo()
    call_command("finish_file_deletions")
    assert not [name for name in stored_files(settings.MEDIA_ROOT) if name.startswith("default/")]


def test_finished_entries_are_dropped_after_ninety_days():
    old = timezone.now() - datetime.timedelta(days=91)
    FileDeletion.objects.create(
        storage="scans", name="old.jpg", reason="deleted", done_at=old, created_at=old
    )
    FileDeletion.objects.create(storage="scans", name="recent.jpg", reason="deleted", done_at=timezone.now())
    FileDeletion.objects.create(
        storage="scans", name="open.jpg", reason="deleted", created_at=old, attempts=9
    )

    call_command("finish_file_deletions")

    assert sorted(FileDeletion.objects.values_list("name", flat=True)) == ["open.jpg", "recent.jpg"]
