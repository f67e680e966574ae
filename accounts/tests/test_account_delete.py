"""Deleting an account: asks for the password, then removes every row and every file."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from audit.models import AuditEntry
from babies import services as baby_services
from babies.models import Baby, Scan
from babies.tests.factories import BabyFactory, create_scan, stored_files
from curation import services as curation_services
from curation.models import TrainingSetItem
from curation.tests.factories import distinct_image, labelled_baby, reviewed_scan

pytestmark = pytest.mark.django_db

DELETE_URL = reverse("account_delete")


def test_the_page_asks_for_the_password(parent_client, user):
    html = parent_client.get(DELETE_URL).content.decode()
    assert 'type="password"' in html
    assert user.email in html


def test_a_wrong_password_deletes_nothing(parent_client, user, scan):
    response = parent_client.post(DELETE_URL, {"password": "not-my-password"})
    assert response.status_code == 200
    assert "That is not your password" in response.content.decode()
    assert get_user_model().objects.filter(pk=user.pk).exists()
    assert Scan.objects.filter(pk=scan.pk).exists()


def test_deleting_the_account_leaves_no_rows_and_no_files(
    client, user, password, settings, django_capture_on_commit_callbacks
):
    client.force_login(user)
    live = BabyFactory(owner=user)
    create_scan(live)
    create_scan(live)
    deleted = BabyFactory(owner=user)
    create_scan(deleted)
    baby_services.baby_soft_delete(baby=deleted)
    others = create_scan(BabyFactory())

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(DELETE_URL, {"password": password}, follow=True)

    assert response.redirect_chain[-1][0] == reverse("home")
    assert "Your account and all your data have been deleted" in response.content.decode()
    assert not get_user_model().objects.filter(pk=user.pk).exists()
    assert not Baby.all_objects.filter(owner_id=user.pk).exists()
    assert list(Scan.objects.values_list("pk", flat=True)) == [others.pk]
    assert sorted(stored_files(settings.MEDIA_ROOT)) == sorted(
        [
            f"originals/{others.original.name}",
            f"scans/{others.image.name}",
            f"scans/{others.thumbnail.name}",
            f"scans/{others.model_input.name}",
        ]
    )
    # Logged out, and the audit log names the account by number only.
    assert client.get(reverse("account_settings")).status_code == 302
    entry = AuditEntry.objects.get(action="user.deleted")
    assert entry.object_repr == f"User #{user.pk}"
    assert entry.data == {"babies_purged": 2, "scans_purged": 3, "training_items_erased": 0}


def test_frozen_training_copies_are_erased_too(
    client, password, staff_user, settings, django_capture_on_commit_callbacks
):
    leaving = labelled_baby()
    leaving_scan = reviewed_scan(leaving, reviewer=staff_user, data=distinct_image(1))
    staying = labelled_baby()
    reviewed_scan(staying, reviewer=staff_user, data=distinct_image(2))
    # The same picture under another parent: its copy is shared and must stay for them.
    shared = reviewed_scan(staying, reviewer=staff_user, data=distinct_image(1))
    training_set = curation_services.training_set_create(created_by=staff_user)
    assert training_set.items.count() == 3
    client.force_login(leaving.owner)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(DELETE_URL, {"password": password})

    erased = TrainingSetItem.objects.get(training_set=training_set, scan_key=f"scan-{leaving_scan.pk}")
    assert (erased.image.name, erased.owner, erased.scan) == ("", None, None)
    assert erased.erased_at is not None
    kept = TrainingSetItem.objects.filter(training_set=training_set, erased_at__isnull=True)
    assert kept.count() == 2
    assert all(item.image.storage.exists(item.image.name) for item in kept)
    # Nothing of the leaving parent is stored: not their scans, not a copy only they used.
    files = stored_files(settings.MEDIA_ROOT)
    assert not any(leaving_scan.image.name in f or leaving_scan.original.name in f for f in files)
    shared_copy = TrainingSetItem.objects.get(scan=shared).image.name
    assert [f for f in files if f.startswith("default/")] == sorted(
        f"default/{item.image.name}" for item in kept
    )
    assert shared_copy in [item.image.name for item in kept]
    entry = AuditEntry.objects.get(action="training_set.items_erased")
    assert entry.data == {"erased_items": 1, "reason": "account deleted"}


def test_an_account_without_a_password_confirms_by_typing_the_address(client, user):
    user.set_unusable_password()
    user.save()
    client.force_login(user)
    assert "Type your e-mail address" in client.get(DELETE_URL).content.decode()
    response = client.post(DELETE_URL, {"confirmation": "someone@else.example"})
    assert "That is not your e-mail address" in response.content.decode()
    client.post(DELETE_URL, {"confirmation": user.email.upper()})
    assert not get_user_model().objects.filter(pk=user.pk).exists()


def test_password_guessing_is_throttled(parent_client, user, password):
    for _ in range(10):
        parent_client.post(DELETE_URL, {"password": "guess"})
    response = parent_client.post(DELETE_URL, {"password": password})
    assert "Too many attempts" in response.content.decode()
    assert get_user_model().objects.filter(pk=user.pk).exists()


def test_staff_deleting_a_user_in_the_admin_removes_their_files_too(
    staff_client, staff_user, user, settings, django_capture_on_commit_callbacks
):
    create_scan(BabyFactory(owner=user))
    url = reverse("admin:accounts_user_delete", args=[user.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not get_user_model().objects.filter(pk=user.pk).exists()
    assert stored_files(settings.MEDIA_ROOT) == []
    entry = AuditEntry.objects.get(action="user.deleted")
    assert (entry.actor, entry.object_repr) == (staff_user, f"User #{user.pk}")
