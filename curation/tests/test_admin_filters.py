"""The yes/no list filters of the babies admin and the review queue."""

import pytest
from django.urls import reverse

from babies import services as baby_services
from curation.tests.factories import labelled_baby, reviewed_scan

pytestmark = pytest.mark.django_db

BABIES_URL = reverse("admin:babies_baby_changelist")
QUEUE_URL = reverse("admin:curation_reviewqueuescan_changelist")


def listed_ids(response) -> set[int]:
    return {obj.pk for obj in response.context["cl"].result_list}


def test_deleted_filter_on_babies(staff_client):
    kept, deleted = labelled_baby(), labelled_baby()
    baby_services.baby_soft_delete(baby=deleted)
    assert listed_ids(staff_client.get(BABIES_URL, {"deleted": "yes"})) == {deleted.pk}
    assert listed_ids(staff_client.get(BABIES_URL, {"deleted": "no"})) == {kept.pk}
    assert listed_ids(staff_client.get(BABIES_URL)) == {kept.pk, deleted.pk}


def test_baby_deleted_and_consent_filters_on_the_review_queue(staff_client, staff_user):
    consented = reviewed_scan(labelled_baby(), reviewer=staff_user)
    no_consent = reviewed_scan(labelled_baby(consent=False), reviewer=staff_user)
    deleted_baby = labelled_baby()
    of_deleted = reviewed_scan(deleted_baby, reviewer=staff_user)
    baby_services.baby_soft_delete(baby=deleted_baby)

    assert listed_ids(staff_client.get(QUEUE_URL, {"baby_deleted": "yes"})) == {of_deleted.pk}
    assert listed_ids(staff_client.get(QUEUE_URL, {"baby_deleted": "no"})) == {consented.pk, no_consent.pk}
    assert listed_ids(staff_client.get(QUEUE_URL, {"consent": "yes"})) == {consented.pk, of_deleted.pk}
    assert listed_ids(staff_client.get(QUEUE_URL, {"consent": "no"})) == {no_consent.pk}
