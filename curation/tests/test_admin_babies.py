"""The baby admin: soft-deleted babies, filters, restore, purge (with confirmation) and relabelling."""

import datetime
import re

import pytest
from django.urls import reverse

from audit.models import AuditEntry
from babies import services as baby_services
from babies.models import Baby, LabelSource
from babies.tests.factories import BabyFactory, create_scan, stored_files
from curation import services
from curation.models import TrainingSetItem, training_storage
from curation.tests.factories import labelled_baby, reviewed_scan

pytestmark = pytest.mark.django_db

BABIES_URL = reverse("admin:babies_baby_changelist")


def listed_baby_ids(response) -> list[int]:
    return sorted(
        int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', response.content.decode())
    )


@pytest.fixture
def babies(user):
    alive = BabyFactory(owner=user, due_date=datetime.date(2031, 5, 3))
    deleted = BabyFactory(due_date=datetime.date(2031, 6, 9))
    create_scan(deleted)
    create_scan(deleted)
    baby_services.baby_soft_delete(baby=deleted)
    girl = labelled_baby(sex="female", source=LabelSource.EMAIL)
    boy = labelled_baby(sex="male", source=LabelSource.DASHBOARD)
    return {"alive": alive, "deleted": deleted, "girl": girl, "boy": boy}


def test_the_list_includes_soft_deleted_babies(staff_client, babies):
    assert listed_baby_ids(staff_client.get(BABIES_URL)) == sorted(b.pk for b in babies.values())


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"deleted": "yes"}, ["deleted"]),
        ({"deleted": "no"}, ["alive", "girl", "boy"]),
        ({"sex": "female"}, ["girl"]),
        ({"sex": "none"}, ["alive", "deleted"]),
        ({"label_source": "email"}, ["girl"]),
        ({"due_month": "2031-06"}, ["deleted"]),
    ],
)
def test_filters(staff_client, babies, query, expected):
    assert listed_baby_ids(staff_client.get(BABIES_URL, query)) == sorted(
        babies[name].pk for name in expected
    )


def test_search_by_owner_email(staff_client, babies, user):
    assert listed_baby_ids(staff_client.get(BABIES_URL, {"q": user.email})) == [babies["alive"].pk]


def test_a_deleted_babys_page_shows_its_scans(staff_client, babies):
    scan = babies["deleted"].scans.first()
    html = staff_client.get(reverse("admin:babies_baby_change", args=[babies["deleted"].pk])).content.decode()
    assert reverse("babies:scan_thumbnail", args=[scan.pk]) in html
    assert reverse("admin:curation_reviewqueuescan_change", args=[scan.pk]) in html


def test_restore_is_audited_per_baby(staff_client, staff_user, babies):
    other_deleted = BabyFactory()
    baby_services.baby_soft_delete(baby=other_deleted)
    chosen = [babies["deleted"], other_deleted, babies["alive"]]

    response = staff_client.post(
        BABIES_URL, {"action": "restore_babies", "_selected_action": [b.pk for b in chosen]}, follow=True
    )

    assert "2 restored; 1 were not deleted." in [str(m) for m in response.context["messages"]]
    assert Baby.objects.filter(pk__in=[b.pk for b in chosen]).count() == 3
    entries = AuditEntry.objects.filter(action="baby.restored")
    assert sorted(int(e.object_id) for e in entries) == sorted([babies["deleted"].pk, other_deleted.pk])
    assert all(e.actor == staff_user and e.data["after"]["deleted_at"] is None for e in entries)
    assert entries[0].data["before"]["deleted_at"] is not None


def test_purge_asks_first_then_deletes_files_and_rows(
    staff_client, babies, settings, django_capture_on_commit_callbacks
):
    baby = babies["deleted"]
    kept_scan = create_scan(babies["alive"])
    data = {"action": "purge_babies", "_selected_action": [baby.pk]}

    confirmation = staff_client.post(BABIES_URL, data)
    assert confirmation.status_code == 200
    assert "Purge babies for good?" in confirmation.content.decode()
    assert Baby.all_objects.filter(pk=baby.pk).exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(BABIES_URL, {**data, "post": "yes"})
    assert response.status_code == 302
    assert not Baby.all_objects.filter(pk=baby.pk).exists()
    files = stored_files(settings.MEDIA_ROOT)
    assert len(files) == 4  # the other baby's original, JPEG, thumbnail and model input
    assert all(
        kept_scan.image.name in f
        or kept_scan.original.name in f
        or kept_scan.thumbnail.name in f
        or kept_scan.model_input.name in f
        for f in files
    )
    entry = AuditEntry.objects.get(action="baby.purged")
    assert entry.object_repr == f"Baby #{baby.pk} (owner #{baby.owner_id})"
    assert len(entry.data["before"]["scan_ids"]) == 2
    assert AuditEntry.objects.filter(action="scan.purged", batch=entry.batch).count() == 2


def test_purge_of_a_baby_in_a_training_set_keeps_the_frozen_copy(
    staff_client, staff_user, django_capture_on_commit_callbacks
):
    baby = labelled_baby()
    reviewed_scan(baby, reviewer=staff_user)
    training_set = services.training_set_create(created_by=staff_user)
    data = {"action": "purge_babies", "_selected_action": [baby.pk]}

    confirmation = staff_client.post(BABIES_URL, data).content.decode()
    assert "in frozen training sets" in confirmation
    assert '<input type="submit" value="Yes, purge them for good">' in confirmation
    assert f'name="_selected_action" value="{baby.pk}"' in confirmation
    assert '<input type="hidden" name="action" value="purge_babies">' in confirmation
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(BABIES_URL, {**data, "post": "yes"})

    item = TrainingSetItem.objects.get(training_set=training_set)
    assert item.scan_id is None
    assert training_storage().exists(item.image.name)


def test_babies_cannot_be_added_or_deleted_in_the_admin(staff_client, babies):
    assert staff_client.get(reverse("admin:babies_baby_add")).status_code == 403
    assert staff_client.get(reverse("admin:babies_baby_delete", args=[babies["alive"].pk])).status_code == 403
    assert b"delete_selected" not in staff_client.get(BABIES_URL).content


def test_staff_can_correct_a_label(staff_client, staff_user, babies):
    baby = babies["girl"]
    url = reverse("admin:babies_baby_change", args=[baby.pk])
    response = staff_client.post(
        url, {"relabel_as": "male", "scans-TOTAL_FORMS": 0, "scans-INITIAL_FORMS": 0}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    baby.refresh_from_db()
    assert (baby.confirmed_sex, baby.confirmed_sex_source) == ("male", "staff")
    entry = AuditEntry.objects.get(action="baby.relabelled")
    assert entry.data["before"]["confirmed_sex"] == "female"
    assert entry.data["after"]["confirmed_sex_source"] == "staff"
    assert "baby.relabelled" in staff_client.get(url).content.decode()


def test_saving_without_a_relabel_changes_nothing(staff_client, babies):
    baby = babies["girl"]
    url = reverse("admin:babies_baby_change", args=[baby.pk])
    staff_client.post(url, {"relabel_as": "", "scans-TOTAL_FORMS": 0, "scans-INITIAL_FORMS": 0})
    baby.refresh_from_db()
    assert baby.confirmed_sex_source == "email"
    assert not AuditEntry.objects.filter(action="baby.relabelled").exists()


def test_the_outcome_email_filter(staff_client, babies):
    from django.utils import timezone

    from predictions.models import OutcomeRequest

    OutcomeRequest.objects.create(baby=babies["girl"], email="x@example.com", sent_at=timezone.now())
    OutcomeRequest.objects.create(baby=babies["boy"], attempts=1, last_error="mailbox full")
    assert listed_baby_ids(staff_client.get(BABIES_URL, {"outcome_email": "sent"})) == [babies["girl"].pk]
    assert listed_baby_ids(staff_client.get(BABIES_URL, {"outcome_email": "not_sent"})) == sorted(
        babies[name].pk for name in ("alive", "deleted", "boy")
    )


def test_the_list_needs_the_same_queries_for_many_babies(staff_client, babies):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        staff_client.get(BABIES_URL)
    for _ in range(5):
        create_scan(labelled_baby())
    with CaptureQueriesContext(connection) as many:
        staff_client.get(BABIES_URL)
    assert len(many.captured_queries) == len(few.captured_queries)
