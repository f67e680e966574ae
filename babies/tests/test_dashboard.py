"""The dashboard: empty state, babies with their scans, and a query count that does not grow."""

import datetime

import pytest
from django.urls import reverse

from babies.services import baby_soft_delete
from babies.tests.factories import BabyFactory, create_scan

pytestmark = pytest.mark.django_db


def test_login_required(client):
    response = client.get(reverse("babies:dashboard"))
    assert response.status_code == 302
    assert reverse("account_login") in response["Location"]


def test_empty_state_tells_a_new_parent_what_to_do(parent_client):
    response = parent_client.get(reverse("babies:dashboard"))

    content = response.content.decode()
    assert "<h1" in content and "Your babies" in content
    assert "Add your first baby" in content
    assert reverse("babies:baby_create") in content


def test_babies_with_scans_and_unnamed_babies(parent_client, user):
    unnamed = BabyFactory(owner=user, due_date=datetime.date(2027, 5, 3))
    named = BabyFactory(owner=user, name="Robin", born=True)
    scan = create_scan(unnamed)

    content = parent_client.get(reverse("babies:dashboard")).content.decode()

    assert "Baby due 3 May 2027" in content
    assert "Robin" in content
    assert reverse("babies:scan_thumbnail", args=[scan.pk]) in content
    assert reverse("babies:scan_upload", args=[unnamed.pk]) in content
    # Only the born baby gets the form to confirm the sex.
    assert content.count('name="sex"') == 2
    assert reverse("babies:baby_confirm_sex", args=[named.pk]) in content
    assert reverse("babies:baby_confirm_sex", args=[unnamed.pk]) not in content
    assert "No scans yet" in content
    assert "Add your first baby" not in content


def test_other_parents_and_deleted_babies_are_not_shown(parent_client, user, other_user):
    BabyFactory(owner=other_user, name="Not yours")
    gone = BabyFactory(owner=user, name="Deleted one")
    baby_soft_delete(baby=gone)

    content = parent_client.get(reverse("babies:dashboard")).content.decode()

    assert "Not yours" not in content
    assert "Deleted one" not in content
    assert "Add your first baby" in content


def test_expected_babies_first_then_born_ones_youngest_first(parent_client, user):
    today = datetime.date.today()
    BabyFactory(owner=user, name="Older", born=True, birth_date=today - datetime.timedelta(days=900))
    BabyFactory(owner=user, name="Later", due_date=today + datetime.timedelta(days=200))
    BabyFactory(owner=user, name="Younger", born=True, birth_date=today - datetime.timedelta(days=10))
    BabyFactory(owner=user, name="Sooner", due_date=today + datetime.timedelta(days=20))

    content = parent_client.get(reverse("babies:dashboard")).content.decode()

    positions = [content.index(name) for name in ("Sooner", "Later", "Younger", "Older")]
    assert positions == sorted(positions)


def _fill(user, babies, scans_each):
    for _ in range(babies):
        baby = BabyFactory(owner=user)
        for _ in range(scans_each):
            create_scan(baby)


def test_query_count_does_not_depend_on_babies_or_scans(parent_client, user, django_assert_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _fill(user, 1, 1)
    with CaptureQueriesContext(connection) as one_baby:
        parent_client.get(reverse("babies:dashboard"))
    # Session, user, babies, scans, latest predictions: nothing per baby or per scan.
    assert len(one_baby) <= 5

    _fill(user, 3, 3)
    with django_assert_num_queries(len(one_baby)):
        response = parent_client.get(reverse("babies:dashboard"))
    assert response.content.decode().count('class="scan-thumb"') == 1 + 3 * 3


def test_many_scans_are_summarised_with_a_link(parent_client, user):
    _fill(user, 1, 10)
    content = parent_client.get(reverse("babies:dashboard")).content.decode()
    assert content.count('class="scan-thumb"') == 8
    assert "+2 more" in content
