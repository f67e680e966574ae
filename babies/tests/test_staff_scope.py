"""Staff scope by permission: ``is_staff`` alone opens the admin, not parents' babies and scans.

A staff account without ``babies.view_baby`` gets exactly the 404 a stranger gets, on every baby
page and scan file, for live and deleted babies alike (``babies.models.user_may_view_every_baby``).
"""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from accounts.tests.factories import UserFactory
from babies.services import baby_soft_delete
from babies.tests.factories import create_scan

pytestmark = pytest.mark.django_db


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _main(response) -> str:
    html = response.content.decode()
    return html[html.index("<main") : html.index("</main>")]


def _urls(scan) -> list[str]:
    return [
        reverse("babies:baby_detail", args=[scan.baby_id]),
        reverse("babies:scan_image", args=[scan.pk]),
        reverse("babies:scan_thumbnail", args=[scan.pk]),
    ]


@pytest.mark.parametrize("deleted", [False, True], ids=["live baby", "deleted baby"])
def test_staff_without_the_permission_get_the_same_404_as_a_stranger(baby, deleted):
    scan = create_scan(baby)
    if deleted:
        baby_soft_delete(baby=baby)
    stranger = _client_for(UserFactory())
    staff = _client_for(UserFactory(is_staff=True))  # no permissions at all

    for url in _urls(scan):
        strangers_answer = stranger.get(url)
        staffs_answer = staff.get(url)
        assert strangers_answer.status_code == staffs_answer.status_code == 404, url
        # The same page (the menus differ: the e-mail shown, the staff's link to the admin).
        assert _main(staffs_answer) == _main(strangers_answer), url


@pytest.mark.parametrize("deleted", [False, True], ids=["live baby", "deleted baby"])
def test_the_view_baby_permission_is_what_opens_them(baby, deleted):
    scan = create_scan(baby)
    if deleted:
        baby_soft_delete(baby=baby)
    curator = UserFactory(is_staff=True)
    curator.user_permissions.add(Permission.objects.get(codename="view_baby"))

    client = _client_for(curator)
    assert [client.get(url).status_code for url in _urls(scan)] == [200, 200, 200]
