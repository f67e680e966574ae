"""Services: validation, soft delete, confirmed sex, and files that never outlive their rows."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import storages
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from babies import images, services
from babies.files import StorageUnavailable
from babies.models import Baby, FileDeletion, LabelSource, Scan, Sex
from babies.tests.factories import BabyFactory, create_scan, image_bytes, stored_files, upload

pytestmark = pytest.mark.django_db


# --- Babies ---------------------------------------------------------------------------------
def test_baby_create_needs_a_due_date_or_a_birth_date(user):
    with pytest.raises(ValidationError, match="due date, or a birth date"):
        services.baby_create(owner=user, name="Sam")
    assert not Baby.all_objects.exists()


def test_baby_create_refuses_a_birth_date_in_the_future(user):
    with pytest.raises(ValidationError, match="in the future"):
        services.baby_create(owner=user, birth_date=timezone.localdate() + datetime.timedelta(days=1))


def test_baby_create_and_display_name(user):
    baby = services.baby_create(owner=user, name="  ", due_date=datetime.date(2027, 5, 3))
    assert baby.name == ""
    assert baby.display_name == "Baby due 3 May 2027"
    assert not baby.is_born
    baby = services.baby_update(baby=baby, birth_date=datetime.date(2025, 1, 9))
    assert baby.display_name == "Baby born 9 January 2025"
    assert baby.is_born
    assert services.baby_update(baby=baby, name="Robin").display_name == "Robin"


def test_baby_update_cannot_change_the_owner_or_the_label(baby, other_user):
    with pytest.raises(TypeError):
        services.baby_update(baby=baby, owner=other_user)
    with pytest.raises(TypeError):
        services.baby_update(baby=baby, confirmed_sex=Sex.MALE)


def test_soft_delete_hides_from_parents_and_restore_brings_back(baby, user):
    services.baby_soft_delete(baby=baby)

    assert baby.deleted_at is not None
    assert not Baby.objects.for_owner(user).exists()
    assert not user.babies.exists()
    assert Baby.all_objects.filter(pk=baby.pk).exists()

    services.baby_restore(baby=baby)
    assert Baby.objects.for_owner(user).get() == baby


def test_confirm_sex_on_the_dashboard_needs_a_born_baby(baby, born_baby):
    with pytest.raises(ValidationError, match="once your baby is born"):
        services.baby_confirm_sex(baby=baby, sex=Sex.FEMALE, source=LabelSource.DASHBOARD)

    services.baby_confirm_sex(baby=born_baby, sex=Sex.FEMALE, source=LabelSource.DASHBOARD)

    born_baby.refresh_from_db()
    assert born_baby.confirmed_sex == "female"
    assert born_baby.confirmed_sex_source == "dashboard"
    assert born_baby.confirmed_sex_at is not None


def test_confirm_sex_from_the_outcome_email_may_precede_the_birth_date(baby):
    services.baby_confirm_sex(baby=baby, sex=Sex.MALE, source=LabelSource.EMAIL)
    baby.refresh_from_db()
    assert (baby.confirmed_sex, baby.confirmed_sex_source) == ("male", "email")


def test_confirm_sex_refuses_anything_but_girl_or_boy(born_baby):
    with pytest.raises(ValidationError):
        services.baby_confirm_sex(baby=born_baby, sex="unknown", source=LabelSource.STAFF)


def test_database_refuses_a_label_without_source(born_baby):
    with pytest.raises(IntegrityError):
        Baby.all_objects.filter(pk=born_baby.pk).update(confirmed_sex="female")


# --- Scans and their files -----------------------------------------------------------------
def test_scan_create_writes_four_files_and_a_row(baby, settings):
    scan, created = services.scan_create(baby=baby, uploaded_file=upload(image_bytes()), gestational_week=12)

    assert created
    assert storages["originals"].exists(scan.original.name)
    assert storages["scans"].exists(scan.image.name)
    assert storages["scans"].exists(scan.thumbnail.name)
    assert storages["scans"].exists(scan.model_input.name)
    assert len(stored_files(settings.MEDIA_ROOT)) == 4


def test_scan_create_refuses_a_soft_deleted_baby(baby, settings):
    services.baby_soft_delete(baby=baby)
    with pytest.raises(ValidationError, match="deleted"):
        services.scan_create(baby=baby, uploaded_file=upload(image_bytes()))
    assert stored_files(settings.MEDIA_ROOT) == []


def test_bad_week_is_refused_before_any_file_is_written(baby, settings):
    with pytest.raises(ValidationError):
        services.scan_create(baby=baby, uploaded_file=upload(image_bytes()), gestational_week=60)
    assert stored_files(settings.MEDIA_ROOT) == []


def test_failure_while_saving_the_row_removes_the_files(baby, settings, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(Scan, "save", explode)

    with pytest.raises(RuntimeError):
        services.scan_create(baby=baby, uploaded_file=upload(image_bytes()))
    assert stored_files(settings.MEDIA_ROOT) == []


def test_failure_after_the_first_file_removes_it(baby, settings, monkeypatch):
    scans = storages["scans"]

    def full_disk(name, content, max_length=None):
        raise OSError("No space left on device")

    monkeypatch.setattr(scans, "save", full_disk)

    with pytest.raises(StorageUnavailable, match="nothing was saved") as raised:
        services.scan_create(baby=baby, uploaded_file=upload(image_bytes()))
    assert isinstance(raised.value.__cause__, OSError)
    assert stored_files(settings.MEDIA_ROOT) == []
    assert not Scan.objects.exists()
    assert not FileDeletion.objects.exists()  # the reservations went with the files


def test_lost_race_for_the_same_original_keeps_one_copy(baby, settings, monkeypatch):
    """Two identical uploads at once: the unique constraint decides; the loser's files go."""
    data = image_bytes()
    real_normalise = images.normalise
    winners = []

    def normalise_while_the_other_upload_commits(*args, **kwargs):
        # The other upload commits after this one's duplicate check and before its INSERT:
        # exactly the window the check cannot see.
        monkeypatch.setattr(images, "normalise", real_normalise)
        winners.append(create_scan(baby, data=data))
        return real_normalise(*args, **kwargs)

    monkeypatch.setattr(images, "normalise", normalise_while_the_other_upload_commits)

    with CaptureQueriesContext(connection) as queries:
        scan, created = services.scan_create(baby=baby, uploaded_file=upload(data))

    (winner,) = winners
    assert (scan, created) == (winner, False)
    # This upload really reached its INSERT and lost it (not an earlier check that saw the winner).
    inserts = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith(f'INSERT INTO "{Scan._meta.db_table}"')
    ]
    assert len(inserts) == 2
    assert Scan.objects.get() == winner
    kept = {winner.original.name, winner.image.name, winner.thumbnail.name, winner.model_input.name}
    assert {path.split("/", 1)[1] for path in stored_files(settings.MEDIA_ROOT)} == kept


def test_scan_delete_removes_files_after_commit(scan, settings, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.scan_delete(scan=scan)
    assert not Scan.objects.exists()
    assert len(stored_files(settings.MEDIA_ROOT)) == 4  # not before the commit

    for callback in callbacks:
        callback()
    assert stored_files(settings.MEDIA_ROOT) == []


def test_baby_purge_deletes_rows_and_files(baby, settings, django_capture_on_commit_callbacks):
    create_scan(baby)
    create_scan(baby)
    services.baby_soft_delete(baby=baby)
    other = create_scan(BabyFactory())

    with django_capture_on_commit_callbacks(execute=True):
        services.baby_purge(baby=baby)

    assert not Baby.all_objects.filter(pk=baby.pk).exists()
    assert list(Scan.objects.all()) == [other]
    assert len(stored_files(settings.MEDIA_ROOT)) == 4
