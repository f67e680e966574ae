"""ModelVersion activation: at most one active, by service, command and admin."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.urls import reverse

from predictions.models import ModelVersion
from predictions.selectors import model_version_active_fingerprint, model_version_get_active
from predictions.services import model_version_activate


def test_activating_deactivates_the_previous_version(make_model_version, staff_user):
    first, second = make_model_version(name="first"), make_model_version(name="second")
    model_version_activate(model_version=first)
    assert model_version_get_active() == first
    second = model_version_activate(model_version=second, user=staff_user, reason="better")
    assert list(ModelVersion.objects.active()) == [second]
    assert (second.activated_by, second.activation_reason) == (staff_user, "better")
    assert second.activated_at is not None
    assert model_version_active_fingerprint() == (second.pk, second.tflite_file.name)


def test_activating_the_active_version_keeps_it_active(make_model_version):
    version = make_model_version()
    model_version_activate(model_version=version)
    model_version_activate(model_version=version)
    assert list(ModelVersion.objects.active()) == [version]


def test_the_database_refuses_two_active_versions(make_model_version):
    make_model_version(is_active=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_model_version(is_active=True)


def test_no_active_version(db):
    assert model_version_get_active() is None
    assert model_version_active_fingerprint() is None


def test_files_live_in_the_models_storage(make_model_version, settings):
    version = make_model_version()
    assert version.tflite_file.storage.location.endswith("models")
    assert version.tflite_file.name.startswith("model-versions/")
    assert version.tflite_file.read() == b"tflite"


def test_activate_model_command(make_model_version):
    version = make_model_version()
    out = io.StringIO()
    call_command("activate_model", str(version.pk), reason="try it", stdout=out)
    version.refresh_from_db()
    assert version.is_active and version.activation_reason == "try it"
    assert f"#{version.pk}" in out.getvalue()
    with pytest.raises(CommandError, match="no model version 999"):
        call_command("activate_model", "999", stdout=out)


def test_admin_lists_and_activates(staff_client, make_model_version):
    version = make_model_version(name="Synthetic demo model")
    response = staff_client.get(reverse("admin:predictions_modelversion_changelist"))
    assert response.status_code == 200 and "Synthetic demo model" in response.text
    assert (
        staff_client.get(reverse("admin:predictions_modelversion_change", args=[version.pk])).status_code
        == 200
    )
    # curation's admin asks for confirmation first (and logs the activation).
    action = {"action": "activate", "_selected_action": [version.pk]}
    confirmation = staff_client.post(reverse("admin:predictions_modelversion_changelist"), action)
    assert confirmation.status_code == 200 and "Yes, activate it" in confirmation.text
    response = staff_client.post(
        reverse("admin:predictions_modelversion_changelist"), {**action, "post": "yes"}
    )
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.is_active and version.activation_reason == "admin action"


def test_parents_cannot_reach_the_admin(parent_client):
    response = parent_client.get(reverse("admin:predictions_modelversion_changelist"))
    assert response.status_code == 302


def test_ensure_demo_model_does_nothing_when_a_version_is_active(make_model_version, tmp_path):
    active = make_model_version(is_active=True)
    out = io.StringIO()
    call_command("ensure_demo_model", data_dir=tmp_path / "demo", stdout=out)
    assert "Nothing to do" in out.getvalue()
    assert list(ModelVersion.objects.all()) == [active]
    assert not (tmp_path / "demo" / "manifest.csv").exists()
