"""Near-duplicates across babies on the training-set create page: staff choose the copy to keep."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from audit.models import AuditEntry
from curation import services
from curation.models import TrainingSet
from curation.tests.factories import distinct_image, labelled_baby, reviewed_scan

pytestmark = pytest.mark.django_db

CREATE_URL = reverse("admin:curation_trainingset_create")
ALL_SOURCES = ["dashboard", "email", "staff"]


@pytest.fixture
def copies(staff_user, eligible_scans):
    """The same picture uploaded by two parents for two babies, next to eight distinct scans."""
    picture = distinct_image(7)
    first = reviewed_scan(labelled_baby(sex="female"), reviewer=staff_user, data=picture)
    second = reviewed_scan(labelled_baby(sex="male"), reviewer=staff_user, data=picture)
    return first, second


def test_the_page_lists_the_copies_with_a_choice(staff_client, copies):
    first, second = copies
    html = staff_client.get(CREATE_URL).text

    assert "Near-duplicates across babies" in html
    assert f'name="keep-{first.pk}" value="all" checked' in html
    assert f'name="keep-{first.pk}" value="{second.pk}"' in html
    assert "2 parents" in html


def test_keeping_one_copy_leaves_the_other_out_and_records_why(staff_client, staff_user, copies):
    first, second = copies
    response = staff_client.post(
        CREATE_URL, {"note": "", "label_sources": ALL_SOURCES, f"keep-{first.pk}": str(second.pk)}
    )

    assert response.status_code == 302
    training_set = TrainingSet.objects.get()
    scans = set(training_set.items.values_list("scan_id", flat=True))
    assert second.pk in scans and first.pk not in scans and len(scans) == 9
    excluded = training_set.data_card["excluded"]
    assert excluded["by_reason"]["duplicate"] == 1
    assert excluded["duplicates"] == [{"scan": first.pk, "kept": second.pk}]
    entry = AuditEntry.objects.get(action="training_set.created")
    assert entry.data["excluded_duplicates"] == [{"scan": first.pk, "kept": second.pk}]
    assert entry.actor == staff_user


def test_keeping_every_copy_is_the_default(staff_client, copies):
    staff_client.post(CREATE_URL, {"note": "", "label_sources": ALL_SOURCES})
    training_set = TrainingSet.objects.get()
    assert training_set.item_count == 10
    assert training_set.data_card["excluded"]["by_reason"]["duplicate"] == 0


def test_a_choice_outside_the_group_is_ignored(staff_client, copies, eligible_scans):
    first, _ = copies
    staff_client.post(
        CREATE_URL, {"label_sources": ALL_SOURCES, f"keep-{first.pk}": str(eligible_scans[0].pk)}
    )
    assert TrainingSet.objects.get().item_count == 10


def test_the_service_refuses_a_kept_copy_that_is_also_left_out(staff_user, copies):
    first, second = copies
    with pytest.raises(ValidationError, match="both kept and left out"):
        services.training_set_create(
            created_by=staff_user, excluded_duplicates={first.pk: second.pk, second.pk: first.pk}
        )
    with pytest.raises(ValidationError, match="no longer eligible"):
        services.training_set_create(created_by=staff_user, excluded_duplicates={first.pk: 999_999})
    assert not TrainingSet.objects.exists()
