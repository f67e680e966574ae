"""The audit log: append-only, readable in the admin, and kept for purged objects."""

import pytest
from django.urls import reverse

from audit.models import AuditEntry
from babies import services as baby_services
from babies.models import LabelSource
from curation.tests.factories import labelled_baby, reviewed_scan

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry(staff_user):
    scan = reviewed_scan(labelled_baby(), reviewer=staff_user)
    return AuditEntry.objects.get(action="scan.reviewed", object_id=str(scan.pk))


def test_an_entry_records_who_what_when_and_the_change(entry, staff_user):
    assert entry.actor == staff_user
    assert entry.actor_repr == staff_user.email
    assert entry.content_type.model_class()._meta.label == "babies.Scan"
    assert entry.created_at is not None
    assert entry.changes() == [("state", "pending", "accepted")]


def test_entries_cannot_be_changed_or_deleted_in_code(entry):
    entry.action = "scan.forged"
    with pytest.raises(ValueError, match="cannot be changed"):
        entry.save()
    with pytest.raises(ValueError, match="cannot be deleted"):
        entry.delete()


def test_entries_cannot_be_added_changed_or_deleted_in_the_admin(staff_client, entry):
    change_url = reverse("admin:audit_auditentry_change", args=[entry.pk])
    page = staff_client.get(change_url)
    assert page.status_code == 200
    assert b'type="submit"' not in page.content.split(b'id="content-main"')[1]
    assert staff_client.post(change_url, {"action": "scan.forged"}).status_code == 403
    assert staff_client.get(reverse("admin:audit_auditentry_delete", args=[entry.pk])).status_code == 403
    assert staff_client.get(reverse("admin:audit_auditentry_add")).status_code == 403
    listing = staff_client.get(reverse("admin:audit_auditentry_changelist")).content.decode()
    assert "delete_selected" not in listing
    entry.refresh_from_db()
    assert entry.action == "scan.reviewed"


def test_the_log_lists_and_filters_entries(staff_client, entry):
    html = staff_client.get(reverse("admin:audit_auditentry_changelist"), {"action": "scan.reviewed"}).content
    assert entry.object_repr.encode() in html


def test_entries_outlive_a_purge_and_deleted_staff(staff_user, entry, django_capture_on_commit_callbacks):
    from babies.models import Scan

    scan = Scan.objects.get(pk=entry.object_id)
    with django_capture_on_commit_callbacks(execute=True):
        baby_services.baby_purge(baby=scan.baby, actor=staff_user)
    staff_user.delete()

    entry.refresh_from_db()
    assert entry.actor is None
    assert entry.actor_repr.startswith("staff")
    assert entry.object_repr == f"Scan #{scan.pk} (baby #{scan.baby_id})"
    assert AuditEntry.objects.filter(action="baby.purged", object_id=str(scan.baby_id)).exists()


def test_audit_descriptions_never_name_a_parent(staff_user):
    baby = labelled_baby(name="Rosalind")
    reviewed_scan(baby, reviewer=staff_user)
    baby_services.baby_confirm_sex(baby=baby, sex="male", source=LabelSource.STAFF, actor=staff_user)
    baby_services.baby_purge(baby=baby, actor=staff_user)
    for entry in AuditEntry.objects.all():
        assert "Rosalind" not in entry.object_repr
        assert baby.owner.email not in entry.object_repr + entry.actor_repr
