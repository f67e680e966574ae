"""Staff only: parents and anonymous visitors never see a curation page; staff need permissions."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from accounts.tests.factories import UserFactory
from audit.models import AuditEntry
from curation import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def pages(staff_user, eligible_scans):
    scan = eligible_scans[0]
    training_set = services.training_set_create(created_by=staff_user)
    entry = AuditEntry.objects.first()
    return [
        reverse("admin:index"),
        reverse("admin:babies_baby_changelist"),
        reverse("admin:babies_baby_change", args=[scan.baby_id]),
        reverse("admin:curation_reviewqueuescan_changelist"),
        reverse("admin:curation_reviewqueuescan_change", args=[scan.pk]),
        reverse("admin:curation_reviewqueuescan_duplicates"),
        reverse("admin:curation_trainingset_changelist"),
        reverse("admin:curation_trainingset_change", args=[training_set.pk]),
        reverse("admin:curation_trainingset_create"),
        reverse("admin:curation_trainingsetitem_changelist"),
        reverse("admin:audit_auditentry_changelist"),
        reverse("admin:audit_auditentry_change", args=[entry.pk]),
    ]


def test_staff_see_every_page(client, staff_user, pages):
    client.force_login(staff_user)
    for url in pages:
        assert client.get(url).status_code == 200, url


def test_a_parent_gets_the_admin_login_page(client, pages):
    client.force_login(UserFactory())
    for url in pages:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("admin:login")), url


def test_anonymous_visitors_get_the_admin_login_page(client, pages):
    for url in pages:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("admin:login")), url


def test_a_parent_cannot_post_to_the_admin(client, eligible_scans):
    client.force_login(UserFactory())
    scan = eligible_scans[0]
    response = client.post(
        reverse("admin:curation_reviewqueuescan_changelist"),
        {"action": "mark_rejected", "_selected_action": [scan.pk]},
    )
    assert response.status_code == 302
    assert not AuditEntry.objects.filter(
        action="scan.reviewed", object_id=str(scan.pk), data__after__state="rejected"
    )


def test_staff_without_permissions_are_refused(client, eligible_scans):
    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    scan = eligible_scans[0]
    for url in [
        reverse("admin:curation_reviewqueuescan_changelist"),
        reverse("admin:curation_reviewqueuescan_change", args=[scan.pk]),
        reverse("admin:curation_reviewqueuescan_duplicates"),
        reverse("admin:curation_trainingset_create"),
        reverse("admin:babies_baby_changelist"),
        reverse("admin:audit_auditentry_changelist"),
    ]:
        assert client.get(url).status_code == 403, url


def test_a_reviewer_may_review_but_not_purge_or_freeze(client, eligible_scans):
    reviewer = UserFactory(is_staff=True)
    reviewer.user_permissions.add(
        Permission.objects.get(codename="review_scan"), Permission.objects.get(codename="view_baby")
    )
    client.force_login(reviewer)
    scan = eligible_scans[0]

    queue = client.get(reverse("admin:curation_reviewqueuescan_changelist"))
    assert queue.status_code == 200
    assert b"Accept selected scans" in queue.content
    babies = client.get(reverse("admin:babies_baby_changelist"))
    assert babies.status_code == 200
    assert b"purge_babies" not in babies.content
    assert b"restore_babies" not in babies.content
    assert client.get(reverse("admin:curation_trainingset_create")).status_code == 403

    response = client.post(
        reverse("admin:babies_baby_changelist"),
        {"action": "purge_babies", "_selected_action": [scan.baby_id], "post": "yes"},
    )
    assert response.status_code in (200, 302)
    assert not AuditEntry.objects.filter(action="baby.purged").exists()
