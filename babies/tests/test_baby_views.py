"""Adding, editing, deleting a baby and confirming its sex through the parent's pages."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factories import UserFactory
from babies.models import Baby
from babies.services import baby_soft_delete
from babies.tests.factories import BabyFactory, create_scan

pytestmark = pytest.mark.django_db


def test_add_an_unborn_baby_without_a_name(parent_client, user):
    due = timezone.localdate() + datetime.timedelta(days=100)
    response = parent_client.post(reverse("babies:baby_create"), {"name": "", "due_date": due.isoformat()})

    baby = Baby.objects.get()
    assert response.status_code == 302
    assert response["Location"].endswith(f"#baby-{baby.pk}")
    assert (baby.owner, baby.due_date, baby.birth_date) == (user, due, None)


def test_add_form_explains_a_missing_date(parent_client):
    response = parent_client.post(reverse("babies:baby_create"), {"name": "Sam"})
    assert response.status_code == 200
    content = response.content.decode()
    assert content.count("Please give a due date, or a birth date") == 1
    assert "Constraint" not in content
    assert not Baby.all_objects.exists()


def test_due_date_years_ahead_is_a_typo(parent_client):
    due = timezone.localdate() + datetime.timedelta(days=400)
    response = parent_client.post(reverse("babies:baby_create"), {"due_date": due.isoformat()})
    assert "Please check the year" in response.content.decode()
    assert not Baby.all_objects.exists()


def test_birth_date_in_the_future_is_refused(parent_client):
    tomorrow = timezone.localdate() + datetime.timedelta(days=1)
    response = parent_client.post(reverse("babies:baby_create"), {"birth_date": tomorrow.isoformat()})
    assert "in the future" in response.content.decode()
    assert not Baby.all_objects.exists()


def test_edit_a_baby(parent_client, baby):
    birth = timezone.localdate() - datetime.timedelta(days=3)
    response = parent_client.post(
        reverse("babies:baby_update", args=[baby.pk]),
        {"name": "Alex", "due_date": baby.due_date.isoformat(), "birth_date": birth.isoformat()},
    )
    assert response.status_code == 302
    baby.refresh_from_db()
    assert (baby.name, baby.birth_date) == ("Alex", birth)


def test_delete_asks_first_and_then_only_flags(parent_client, baby):
    url = reverse("babies:baby_delete", args=[baby.pk])
    create_scan(baby)

    page = parent_client.get(url)
    assert page.status_code == 200
    assert "1 scan will disappear" in page.content.decode()
    baby.refresh_from_db()
    assert baby.deleted_at is None

    response = parent_client.post(url)

    assert response.status_code == 302
    baby.refresh_from_db()
    assert baby.deleted_at is not None
    assert baby.scans.count() == 1
    assert parent_client.get(reverse("babies:baby_detail", args=[baby.pk])).status_code == 404


def test_confirm_sex_of_a_born_baby(parent_client, born_baby):
    response = parent_client.post(reverse("babies:baby_confirm_sex", args=[born_baby.pk]), {"sex": "male"})
    assert response.status_code == 302
    born_baby.refresh_from_db()
    assert (born_baby.confirmed_sex, born_baby.confirmed_sex_source) == ("male", "dashboard")
    assert "is a <strong>boy</strong>" in parent_client.get(reverse("babies:dashboard")).content.decode()


def test_confirm_sex_of_an_unborn_baby_is_explained(parent_client, baby):
    response = parent_client.post(reverse("babies:baby_confirm_sex", args=[baby.pk]), {"sex": "male"})
    assert response.status_code == 200
    assert "once your baby is born" in response.content.decode()
    baby.refresh_from_db()
    assert baby.confirmed_sex == ""


def test_confirm_sex_without_a_choice(parent_client, born_baby):
    response = parent_client.post(reverse("babies:baby_confirm_sex", args=[born_baby.pk]), {})
    assert "Please choose girl or boy" in response.content.decode()


def test_baby_detail_shows_scans_and_upload(parent_client, baby):
    scan = create_scan(baby, gestational_week=21)
    content = parent_client.get(reverse("babies:baby_detail", args=[baby.pk])).content.decode()
    assert reverse("babies:scan_thumbnail", args=[scan.pk]) in content
    assert "Week 21" in content
    assert reverse("babies:scan_upload", args=[baby.pk]) in content
    assert reverse("babies:scan_delete", args=[scan.pk]) in content


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("babies:baby_detail", "get"),
        ("babies:baby_update", "get"),
        ("babies:baby_update", "post"),
        ("babies:baby_delete", "get"),
        ("babies:baby_delete", "post"),
        ("babies:baby_confirm_sex", "post"),
    ],
)
def test_another_parents_baby_is_404(client, other_user, born_baby, name, method):
    client.force_login(other_user)
    response = getattr(client, method)(reverse(name, args=[born_baby.pk]), {"sex": "female", "name": "Mine"})
    assert response.status_code == 404
    born_baby.refresh_from_db()
    assert (born_baby.deleted_at, born_baby.confirmed_sex, born_baby.name) == (None, "", "")


def test_staff_see_a_deleted_baby_but_cannot_change_it(staff_client, baby):
    baby_soft_delete(baby=baby)
    response = staff_client.get(reverse("babies:baby_detail", args=[baby.pk]))
    assert response.status_code == 200
    assert "Deleted by the parent" in response.content.decode()
    assert reverse("babies:scan_upload", args=[baby.pk]) not in response.content.decode()
    assert staff_client.get(reverse("babies:baby_update", args=[baby.pk])).status_code == 404


def test_staff_without_the_permission_to_view_babies_get_404_for_a_parents_baby(client, baby):
    client.force_login(UserFactory(is_staff=True))
    assert client.get(reverse("babies:baby_detail", args=[baby.pk])).status_code == 404


def test_scan_delete_asks_then_deletes(parent_client, baby, django_capture_on_commit_callbacks):
    scan = create_scan(baby)
    url = reverse("babies:scan_delete", args=[scan.pk])
    assert parent_client.get(url).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = parent_client.post(url)
    assert response.status_code == 302
    assert not baby.scans.exists()


def test_scan_delete_of_another_parent_is_404(client, other_user, scan):
    client.force_login(other_user)
    assert client.post(reverse("babies:scan_delete", args=[scan.pk])).status_code == 404
    assert BabyFactory._meta.model.objects.get().scans.count() == 1
