"""The account settings page: training consent (off until the parent opts in)."""

import pytest
from django.urls import reverse

from accounts.tests.factories import UserFactory
from audit.models import AuditEntry

pytestmark = pytest.mark.django_db

SETTINGS_URL = reverse("account_settings")


def test_consent_is_off_for_a_new_parent(parent_client, user):
    assert user.allows_training_use is False
    page = parent_client.get(SETTINGS_URL)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Your scans are not used for training" in html
    assert 'name="allows_training_use"' in html
    assert "checked" not in html.split('name="allows_training_use"')[1].split(">")[0]


def test_opting_in_and_out_is_recorded_with_its_time(parent_client, user):
    response = parent_client.post(SETTINGS_URL, {"allows_training_use": "on"}, follow=True)
    user.refresh_from_db()
    assert user.allows_training_use is True
    first_change = user.training_consent_changed_at
    assert first_change is not None
    assert "Thank you" in response.content.decode()
    assert "You have agreed" in response.content.decode()

    parent_client.post(SETTINGS_URL, {})
    user.refresh_from_db()
    assert user.allows_training_use is False
    assert user.training_consent_changed_at > first_change

    entries = AuditEntry.objects.filter(action="user.training_consent_changed", object_id=str(user.pk))
    assert [e.data["after"]["allows_training_use"] for e in entries.order_by("id")] == [True, False]
    assert all(e.actor == user and e.actor_repr == f"User #{user.pk}" for e in entries)


def test_saving_the_same_choice_again_changes_nothing(parent_client, user):
    parent_client.post(SETTINGS_URL, {})
    user.refresh_from_db()
    assert user.training_consent_changed_at is None
    assert not AuditEntry.objects.exists()


def test_the_choice_is_shown_in_the_admin(staff_client, user, staff_user):
    user.allows_training_use = True
    user.save()
    html = staff_client.get(reverse("admin:accounts_user_changelist")).content.decode()
    rows = {row.split("</th>")[0]: row for row in html.split('<th class="field-email">')[1:]}
    parent_row = next(row for key, row in rows.items() if user.email in key)
    staff_row = next(row for key, row in rows.items() if staff_user.email in key)
    assert 'class="field-allows_training_use"><img src="/static/admin/img/icon-yes.svg"' in parent_row
    assert 'class="field-allows_training_use"><img src="/static/admin/img/icon-no.svg"' in staff_row


def test_the_page_needs_a_login(client):
    response = client.get(SETTINGS_URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_the_navbar_links_to_the_settings(parent_client):
    html = parent_client.get(reverse("babies:dashboard")).content.decode()
    assert f'href="{SETTINGS_URL}">Account settings</a>' in html


def test_one_parent_cannot_change_anothers_consent(parent_client, user):
    other = UserFactory()
    # The POST names the other parent every way a careless view might read it.
    response = parent_client.post(
        SETTINGS_URL, {"allows_training_use": "on", "user": other.pk, "id": other.pk, "email": other.email}
    )

    assert response.status_code == 302
    user.refresh_from_db()
    other.refresh_from_db()
    assert (user.allows_training_use, user.training_consent_changed_at is not None) == (True, True)
    assert (other.allows_training_use, other.training_consent_changed_at) == (False, None)
    entries = AuditEntry.objects.filter(action="user.training_consent_changed")
    assert [(entry.object_id, entry.actor) for entry in entries] == [(str(user.pk), user)]
