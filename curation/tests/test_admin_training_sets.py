"""Creating and viewing training sets in the admin."""

import pytest
from django.urls import reverse

from audit.models import AuditEntry
from curation.models import TrainingSet
from curation.tests.factories import labelled_baby, reviewed_scan

pytestmark = pytest.mark.django_db

CREATE_URL = reverse("admin:curation_trainingset_create")
LIST_URL = reverse("admin:curation_trainingset_changelist")


def test_the_list_links_to_the_create_page(staff_client):
    assert CREATE_URL in staff_client.get(LIST_URL).content.decode()


def test_the_create_page_previews_what_is_eligible(staff_client, staff_user, eligible_scans):
    reviewed_scan(labelled_baby(consent=False), reviewer=staff_user)
    html = staff_client.get(CREATE_URL).content.decode()
    assert "8 (4 girls', 4 boys') of 4 babies" in html
    assert "has not agreed to training use</th><td>1</td>" in html


def test_creating_a_set_shows_its_counts(staff_client, staff_user, eligible_scans):
    response = staff_client.post(
        CREATE_URL, {"note": "Spring review", "label_sources": ["dashboard", "email", "staff"]}, follow=True
    )
    training_set = TrainingSet.objects.get()
    assert response.redirect_chain[-1][0] == reverse(
        "admin:curation_trainingset_change", args=[training_set.pk]
    )
    html = response.content.decode()
    assert "8 scans of 4 babies (4 girls&#x27; scans, 4 boys&#x27;)" in html
    assert 'data-testid="count-female">4<' in html
    assert 'data-testid="count-male">4<' in html
    assert "Spring review" in html
    assert "training_set.created" in html
    assert training_set.created_by == staff_user


def test_label_sources_chosen_on_the_form_are_applied(staff_client, staff_user, eligible_scans):
    from babies.models import LabelSource

    reviewed_scan(labelled_baby(source=LabelSource.EMAIL), reviewer=staff_user)
    staff_client.post(CREATE_URL, {"label_sources": ["email"]})
    training_set = TrainingSet.objects.get()
    assert training_set.item_count == 1
    assert training_set.label_sources == ["email"]


def test_nothing_eligible_is_said_on_the_page(staff_client, staff_user):
    reviewed_scan(labelled_baby(), reviewer=staff_user, state="pending")
    response = staff_client.post(CREATE_URL, {"label_sources": ["dashboard"]})
    assert response.status_code == 200
    assert "No scans are eligible for a training set yet" in response.content.decode()
    assert not TrainingSet.objects.exists()
    assert not AuditEntry.objects.filter(action="training_set.created").exists()


def test_no_label_source_is_a_form_error(staff_client, eligible_scans):
    response = staff_client.post(CREATE_URL, {"note": "x"})
    assert "Choose at least one label source." in response.content.decode()
    assert not TrainingSet.objects.exists()


def test_a_frozen_set_cannot_be_edited_or_deleted(staff_client, staff_user, eligible_scans):
    staff_client.post(CREATE_URL, {"label_sources": ["dashboard"]})
    training_set = TrainingSet.objects.get()
    change_url = reverse("admin:curation_trainingset_change", args=[training_set.pk])
    assert staff_client.post(change_url, {"note": "rewritten"}).status_code == 403
    assert (
        staff_client.get(reverse("admin:curation_trainingset_delete", args=[training_set.pk])).status_code
        == 403
    )
    assert staff_client.get(reverse("admin:curation_trainingset_add")).status_code == 403
    item = training_set.items.first()
    assert (
        staff_client.post(reverse("admin:curation_trainingsetitem_change", args=[item.pk]), {}).status_code
        == 403
    )
    training_set.refresh_from_db()
    assert training_set.note == ""
