"""The crop-and-upload endpoint: good uploads, duplicates, and every kind of bad input."""

import io
import json

import pillow_heif
import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image

from babies.models import Scan
from babies.tests.factories import (
    ELF_EXECUTABLE,
    BabyFactory,
    image_bytes,
    jpeg_claiming_size,
    noisy_jpeg,
    png_bomb,
    stored_files,
    truncated,
)

pytestmark = pytest.mark.django_db

JSON = {"Accept": "application/json"}


def post_upload(client, baby, data=None, name="scan.png", **fields):
    payload = dict(fields)
    if data is not None:
        payload["file"] = _file(data, name)
    return client.post(reverse("babies:scan_upload", args=[baby.pk]), payload, headers=JSON)


def _file(data, name):
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def assert_refused(response, status, settings, *, words=()):
    """A JSON error with a sentence, and nothing stored."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error.endswith(".") and len(error.split()) >= 5, error
    for word in words:
        assert word.lower() in error.lower(), error
    assert Scan.objects.count() == 0
    assert stored_files(settings.MEDIA_ROOT) == []
    return error


# --- Good uploads ---------------------------------------------------------------------------
def test_png_upload_answers_id_and_owner_only_url(parent_client, baby, settings):
    response = post_upload(parent_client, baby, image_bytes("PNG", (120, 90)))

    assert response.status_code == 201
    body = response.json()
    scan = Scan.objects.get()
    assert body["id"] == scan.pk
    assert body["duplicate"] is False
    assert body["url"] == reverse("babies:scan_image", args=[scan.pk])
    assert (scan.width, scan.height, scan.crop_box) == (120, 90, None)
    assert scan.original_format == "PNG"
    assert len(scan.sha256) == 64 and len(scan.perceptual_hash) == 16
    image = parent_client.get(body["url"])
    assert image.status_code == 200
    assert Image.open(io.BytesIO(b"".join(image.streaming_content))).format == "JPEG"


def test_crop_box_and_week_are_applied(parent_client, baby):
    crop = json.dumps({"x": 10.4, "y": 5, "width": 60, "height": 40.2})
    data = image_bytes("PNG", (120, 90))
    response = post_upload(parent_client, baby, data, crop_box=crop, gestational_week=20)

    assert response.status_code == 201
    scan = Scan.objects.get()
    assert scan.crop_box == {"x": 10, "y": 5, "width": 60, "height": 40}
    assert (scan.width, scan.height) == (60, 40)
    assert scan.gestational_week == 20


def test_heic_upload(parent_client, baby):
    heif = pillow_heif.from_pillow(Image.new("RGB", (80, 64), (10, 200, 30)))
    buffer = io.BytesIO()
    heif.save(buffer, quality=90)

    response = post_upload(parent_client, baby, buffer.getvalue(), name="IMG_0001.HEIC")

    assert response.status_code == 201, response.json()
    scan = Scan.objects.get()
    assert scan.original_format == "HEIF"
    assert scan.original.name.endswith(".heic")
    assert (scan.width, scan.height) == (80, 64)


def test_file_names_are_random_not_the_parents(parent_client, baby):
    post_upload(parent_client, baby, image_bytes("PNG"), name="Emma 20 weeks.png")

    scan = Scan.objects.get()
    for name in (scan.original.name, scan.image.name, scan.thumbnail.name, scan.model_input.name):
        assert "Emma" not in name
        assert len(name.split(".")[0].removesuffix("_thumb").removesuffix("_model")) == 32


def test_same_original_twice_is_recognised_and_stored_once(parent_client, baby, settings):
    data = image_bytes("PNG")
    first = post_upload(parent_client, baby, data)
    files_after_first = stored_files(settings.MEDIA_ROOT)

    second = post_upload(parent_client, baby, data, name="again.png")

    assert second.status_code == 200
    assert second.json()["duplicate"] is True
    assert second.json()["id"] == first.json()["id"]
    assert "already uploaded" in second.json()["message"]
    assert Scan.objects.count() == 1
    assert stored_files(settings.MEDIA_ROOT) == files_after_first


def test_same_original_for_another_baby_is_a_new_scan(parent_client, user):
    data = image_bytes("PNG")
    first, second = BabyFactory(owner=user), BabyFactory(owner=user)

    assert post_upload(parent_client, first, data).status_code == 201
    assert post_upload(parent_client, second, data).status_code == 201
    assert Scan.objects.count() == 2


# --- Bad files ------------------------------------------------------------------------------
def test_not_an_image(parent_client, baby, settings):
    response = post_upload(parent_client, baby, b"Dear midwife, here are my notes.\n" * 20, name="notes.png")
    assert_refused(response, 400, settings, words=["not a picture"])


def test_truncated_image(parent_client, baby, settings):
    response = post_upload(parent_client, baby, truncated(noisy_jpeg()), name="scan.jpg")
    assert_refused(response, 400, settings, words=["damaged or incomplete"])


def test_renamed_executable(parent_client, baby, settings):
    response = post_upload(parent_client, baby, ELF_EXECUTABLE, name="scan.jpg")
    assert_refused(response, 400, settings, words=["not a picture"])


def test_zero_byte_file(parent_client, baby, settings):
    response = post_upload(parent_client, baby, b"", name="scan.jpg")
    assert_refused(response, 400, settings, words=["empty"])


def test_decompression_bomb(parent_client, baby, settings):
    bomb = png_bomb(20_000, 20_000)  # 400 megapixels in a few dozen kilobytes
    assert len(bomb) < 200_000

    response = post_upload(parent_client, baby, bomb, name="scan.png")

    assert_refused(response, 413, settings, words=["megapixels"])


def test_200_megapixel_image(parent_client, baby, settings):
    response = post_upload(parent_client, baby, jpeg_claiming_size(16_000, 12_500), name="scan.jpg")
    assert_refused(response, 413, settings, words=["megapixels"])


def test_image_over_the_pixel_setting(parent_client, baby, settings):
    settings.SCAN_MAX_PIXELS = 5_000
    response = post_upload(parent_client, baby, image_bytes("PNG", (100, 80)))
    error = assert_refused(response, 413, settings)
    assert "0.008 megapixels" in error


def test_image_over_the_byte_limit(parent_client, baby, settings):
    data = noisy_jpeg((200, 200))
    settings.SCAN_MAX_UPLOAD_BYTES = len(data) - 1
    response = post_upload(parent_client, baby, data, name="scan.jpg")
    assert_refused(response, 413, settings, words=["smaller image"])


def test_body_far_over_the_byte_limit_is_refused_from_its_length(parent_client, baby, settings):
    settings.SCAN_MAX_UPLOAD_BYTES = 1_000
    response = post_upload(parent_client, baby, noisy_jpeg((400, 400)), name="scan.jpg")
    assert_refused(response, 413, settings, words=["larger than"])


def test_unsupported_format(parent_client, baby, settings):
    response = post_upload(parent_client, baby, image_bytes("GIF"), name="scan.gif")
    assert_refused(response, 415, settings, words=["GIF files are not accepted"])


def test_format_left_out_of_the_setting_is_unsupported(parent_client, baby, settings):
    settings.SCAN_ALLOWED_FORMATS = ["JPEG", "PNG"]
    response = post_upload(parent_client, baby, image_bytes("BMP"), name="scan.bmp")
    assert_refused(response, 415, settings, words=["BMP files are not accepted", "JPEG or PNG"])


@pytest.mark.parametrize(
    ("crop", "words"),
    [
        ({"x": 100, "y": 0, "width": 100, "height": 50}, ["not inside the picture"]),
        ({"x": 0, "y": 0, "width": 121, "height": 91.6}, ["not inside the picture"]),
        ({"x": -5, "y": 0, "width": 50, "height": 50}, ["not inside the picture"]),
        ({"x": 0, "y": 0, "width": -50, "height": 50}, ["not inside the picture"]),
        ({"x": 0, "y": 0, "width": 3, "height": 3}, ["too small"]),
        ({"x": 0, "y": 0, "width": "50", "height": 50}, ["not valid"]),
        ({"x": 0, "y": 0, "width": 50}, ["not valid"]),
        ({"x": True, "y": 0, "width": 50, "height": 50}, ["not valid"]),
    ],
)
def test_bad_crop_box(parent_client, baby, settings, crop, words):
    response = post_upload(parent_client, baby, image_bytes("PNG", (120, 90)), crop_box=json.dumps(crop))
    assert_refused(response, 400, settings, words=words)


@pytest.mark.parametrize("raw", ['{"x": NaN, "y": 0, "width": 50, "height": 50}', '{"x": 0, "y": Infinity}'])
def test_crop_box_with_nan_or_infinity(parent_client, baby, settings, raw):
    response = post_upload(parent_client, baby, image_bytes("PNG", (120, 90)), crop_box=raw)
    assert_refused(response, 400, settings, words=["not valid"])


@pytest.mark.parametrize("raw", ["not json", "[1, 2, 3, 4]"])
def test_crop_box_that_is_not_a_box(parent_client, baby, settings, raw):
    response = post_upload(parent_client, baby, image_bytes("PNG", (120, 90)), crop_box=raw)
    assert_refused(response, 400, settings, words=["could not be read"])


@pytest.mark.parametrize("week", ["3", "43", "twenty"])
def test_bad_gestational_week(parent_client, baby, settings, week):
    response = post_upload(parent_client, baby, image_bytes("PNG"), gestational_week=week)
    assert_refused(response, 400, settings, words=["between 4 and 42"])


def test_missing_file_field(parent_client, baby, settings):
    response = post_upload(parent_client, baby, data=None, crop_box="")
    assert_refused(response, 400, settings, words=["choose a scan"])


# --- Who may upload -------------------------------------------------------------------------
def test_request_without_csrf_token(user, baby, settings):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = post_upload(client, baby, image_bytes("PNG"))

    assert_refused(response, 403, settings, words=["reload the page"])


def test_csrf_failure_on_a_page_is_a_friendly_page(user, baby):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = client.post(reverse("babies:baby_delete", args=[baby.pk]))

    assert response.status_code == 403
    assert b"This page has expired" in response.content
    baby.refresh_from_db()
    assert baby.deleted_at is None


def test_baby_of_another_parent(client, other_user, baby, settings):
    client.force_login(other_user)
    response = post_upload(client, baby, image_bytes("PNG"))
    assert_refused(response, 404, settings, words=["could not find this baby"])


def test_staff_cannot_upload_to_a_parents_baby(staff_client, baby, settings):
    response = post_upload(staff_client, baby, image_bytes("PNG"))
    assert_refused(response, 404, settings)


def test_soft_deleted_baby(parent_client, baby, settings):
    from babies.services import baby_soft_delete

    baby_soft_delete(baby=baby)
    response = post_upload(parent_client, baby, image_bytes("PNG"))
    assert_refused(response, 404, settings, words=["deleted"])


def test_logged_out_upload_answers_json_401(client, baby, settings):
    response = post_upload(client, baby, image_bytes("PNG"))
    assert_refused(response, 401, settings, words=["log in"])


def test_get_is_not_allowed(parent_client, baby):
    assert parent_client.get(reverse("babies:scan_upload", args=[baby.pk])).status_code == 405
