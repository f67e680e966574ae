"""Scan files: owner and staff only, and the three ways of serving them."""

import io

import pytest
from django.contrib.auth.models import Permission
from django.core.files.storage import storages
from django.http import Http404
from django.urls import reverse
from PIL import Image

from accounts.tests.factories import StaffFactory, UserFactory
from babies import selectors
from babies.services import baby_soft_delete
from babies.serving import private_file_response

pytestmark = pytest.mark.django_db


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.mark.parametrize("name", ["babies:scan_image", "babies:scan_thumbnail"])
def test_owner_gets_the_jpeg_streamed(parent_client, scan, name):
    response = parent_client.get(reverse(name, args=[scan.pk]))

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"] == "private, max-age=3600"
    assert Image.open(io.BytesIO(_body(response))).format == "JPEG"


def test_streamed_bytes_are_the_normalised_jpeg_not_the_original(parent_client, scan):
    body = _body(parent_client.get(reverse("babies:scan_image", args=[scan.pk])))
    with storages["scans"].open(scan.image.name) as handle:
        assert body == handle.read()
    with storages["originals"].open(scan.original.name) as handle:
        assert body != handle.read()


@pytest.mark.parametrize("name", ["babies:scan_image", "babies:scan_thumbnail"])
def test_another_parent_gets_404(client, other_user, scan, name):
    client.force_login(other_user)
    assert client.get(reverse(name, args=[scan.pk])).status_code == 404


def test_anonymous_is_sent_to_log_in(client, scan):
    response = client.get(reverse("babies:scan_image", args=[scan.pk]))
    assert response.status_code == 302
    assert reverse("account_login") in response["Location"]


def test_deleted_babys_scan_is_404_for_the_parent_not_for_staff(parent_client, staff_user, scan, client):
    baby_soft_delete(baby=scan.baby)
    assert parent_client.get(reverse("babies:scan_image", args=[scan.pk])).status_code == 404

    client.force_login(staff_user)
    assert client.get(reverse("babies:scan_image", args=[scan.pk])).status_code == 200


def test_staff_with_the_permission_to_view_babies_get_the_jpeg(client, scan):
    curator = UserFactory(is_staff=True)
    curator.user_permissions.add(Permission.objects.get(codename="view_baby"))
    client.force_login(curator)
    assert client.get(reverse("babies:scan_image", args=[scan.pk])).status_code == 200


@pytest.mark.parametrize("name", ["babies:scan_image", "babies:scan_thumbnail"])
def test_staff_without_the_permission_to_view_babies_get_404(client, scan, name):
    # is_staff opens the admin; it does not by itself open every parent's scans.
    client.force_login(UserFactory(is_staff=True))
    assert client.get(reverse(name, args=[scan.pk])).status_code == 404


def test_a_deactivated_staff_member_sees_no_other_parents_scan_or_baby(client, scan):
    former = StaffFactory(is_active=False)  # a superuser, deactivated

    # The session of a deactivated account is dropped, so the views see an anonymous visitor...
    client.force_login(former)
    response = client.get(reverse("babies:scan_image", args=[scan.pk]))
    assert response.status_code == 302 and reverse("account_login") in response["Location"]
    # ...and the lookups themselves refuse the account, whatever the authentication backend does.
    with pytest.raises(Http404):
        selectors.scan_get_for_viewer(user=former, scan_id=scan.pk)
    with pytest.raises(Http404):
        selectors.baby_get_for_owner(user=former, baby_id=scan.baby_id)


def test_x_accel_redirect_hands_the_file_to_nginx(parent_client, scan, settings):
    settings.PRIVATE_MEDIA_SERVING = "x-accel"
    settings.PRIVATE_MEDIA_ACCEL_PREFIX = "/protected/"

    response = parent_client.get(reverse("babies:scan_image", args=[scan.pk]))

    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == f"/protected/scans/{scan.image.name}"
    assert response["Content-Type"] == "image/jpeg"
    assert response.content == b""


def test_s3_redirects_to_a_presigned_url(parent_client, scan, settings, monkeypatch):
    settings.STORAGE_BACKEND = "s3"
    presigned = f"https://bucket.example/scans/{scan.image.name}?X-Amz-Expires=300&X-Amz-Signature=abc"
    monkeypatch.setattr(storages["scans"], "url", lambda name: presigned, raising=False)

    response = parent_client.get(reverse("babies:scan_image", args=[scan.pk]))

    assert response.status_code == 302
    assert response["Location"] == presigned
    assert response["Cache-Control"] == "private, no-store"


def test_missing_file_is_404_not_500(parent_client, scan):
    storages["scans"].delete(scan.image.name)
    assert parent_client.get(reverse("babies:scan_image", args=[scan.pk])).status_code == 404


def test_unknown_serving_mode_is_a_configuration_error(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.PRIVATE_MEDIA_SERVING = "public"
    with pytest.raises(ImproperlyConfigured):
        private_file_response(alias="scans", name="x.jpg")


def test_local_storages_have_no_url(scan):
    for alias in ("originals", "scans"):
        with pytest.raises(NotImplementedError):
            storages[alias].url(scan.image.name)
