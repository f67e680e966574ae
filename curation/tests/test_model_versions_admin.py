"""Model versions in the admin: the training set they came from, and a logged, confirmed activation."""

import io

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.tests.factories import UserFactory
from audit.models import AuditEntry
from curation import services
from predictions.tests.predict_support import tiny_model_version

pytestmark = pytest.mark.django_db

VERSIONS_URL = reverse("admin:predictions_modelversion_changelist")


@pytest.fixture
def versions():
    active = tiny_model_version(name="Current model")
    candidate = tiny_model_version(name="Candidate", activate=False, is_synthetic=False)
    return active, candidate


def test_activation_asks_first_then_switches_and_logs_both_versions(staff_client, staff_user, versions):
    active, candidate = versions
    data = {"action": "activate", "_selected_action": [candidate.pk]}

    page = staff_client.post(VERSIONS_URL, data)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Activate Candidate" in html and "instead of Current model" in html
    candidate.refresh_from_db()
    assert not candidate.is_active

    response = staff_client.post(VERSIONS_URL, {**data, "post": "yes"}, follow=True)
    assert "is now active" in response.content.decode()
    candidate.refresh_from_db()
    active.refresh_from_db()
    assert candidate.is_active and not active.is_active
    assert candidate.activated_by == staff_user
    # The fixture's own activation is audited too (every activation is): this one is the candidate's.
    activated = AuditEntry.objects.get(action="model_version.activated", actor=staff_user)
    assert activated.object_id == str(candidate.pk)
    assert activated.data["before"] == {"active_version": active.pk}
    deactivated = AuditEntry.objects.get(action="model_version.deactivated")
    assert deactivated.object_id == str(active.pk)
    page = staff_client.get(reverse("admin:predictions_modelversion_change", args=[candidate.pk]))
    assert "model_version.activated" in page.content.decode()


def test_activating_the_active_version_changes_nothing(staff_client, versions):
    active, _ = versions
    before = AuditEntry.objects.count()
    staff_client.post(VERSIONS_URL, {"action": "activate", "_selected_action": [active.pk], "post": "yes"})
    assert AuditEntry.objects.count() == before


def test_a_synthetic_model_is_flagged_on_the_confirmation(staff_client, versions):
    synthetic = tiny_model_version(name="Synthetic one", activate=False, is_synthetic=True)
    html = staff_client.post(VERSIONS_URL, {"action": "activate", "_selected_action": [synthetic.pk]}).content
    assert b"trained on synthetic images" in html


def test_activation_needs_the_change_permission(client, versions):
    _, candidate = versions
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_modelversion"))
    client.force_login(viewer)
    assert client.get(VERSIONS_URL).status_code == 200
    client.post(VERSIONS_URL, {"action": "activate", "_selected_action": [candidate.pk], "post": "yes"})
    candidate.refresh_from_db()
    assert not candidate.is_active


def test_the_version_page_links_its_training_set_and_the_set_lists_its_models(
    staff_client, staff_user, eligible_scans, versions
):
    _, candidate = versions
    training_set = services.training_set_create(created_by=staff_user)
    candidate.training_set = training_set
    candidate.save(update_fields=["training_set"])

    version_page = staff_client.get(reverse("admin:predictions_modelversion_change", args=[candidate.pk]))
    assert (
        reverse("admin:curation_trainingset_change", args=[training_set.pk]) in version_page.content.decode()
    )
    set_page = staff_client.get(reverse("admin:curation_trainingset_change", args=[training_set.pk]))
    assert reverse("admin:predictions_modelversion_change", args=[candidate.pk]) in set_page.content.decode()


def test_train_model_needs_exactly_one_data_source(db, tmp_path):
    with pytest.raises(CommandError, match="either --data FOLDER or --training-set ID"):
        call_command("train_model", stdout=io.StringIO())
    with pytest.raises(CommandError, match="either --data FOLDER or --training-set ID"):
        call_command("train_model", data=tmp_path, training_set=1, stdout=io.StringIO())
    with pytest.raises(CommandError, match="no training set 404"):
        call_command("train_model", training_set=404, stdout=io.StringIO())


def test_versions_are_read_only_and_cannot_be_deleted(staff_client, versions):
    _, candidate = versions
    page = staff_client.get(reverse("admin:predictions_modelversion_change", args=[candidate.pk]))
    assert "View model version" in page.content.decode()
    assert 'name="_save"' not in page.content.decode()
    assert (
        staff_client.get(reverse("admin:predictions_modelversion_delete", args=[candidate.pk])).status_code
        == 403
    )
    assert b"delete_selected" not in staff_client.get(VERSIONS_URL).content
