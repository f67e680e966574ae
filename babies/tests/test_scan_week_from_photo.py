"""The week of pregnancy recorded for an upload comes from the photo's own date when it has one."""

import datetime
import io

import pytest
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from babies import exif
from babies.models import Scan
from babies.tests.factories import BabyFactory, image_bytes, upload

pytestmark = pytest.mark.django_db


def jpeg_taken_on(day: datetime.date, *, tag: int = exif.DATE_TIME_ORIGINAL, size=(64, 48)) -> bytes:
    image = Image.open(io.BytesIO(image_bytes("JPEG", size)))
    metadata = Image.Exif()
    metadata.get_ifd(exif.EXIF_IFD_POINTER)[tag] = f"{day:%Y:%m:%d} 10:30:00"
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=metadata)
    return buffer.getvalue()


def _post(client, baby, data: bytes, **fields):
    url = reverse("babies:scan_upload", args=[baby.pk])
    return client.post(url, {"file": upload(data, "scan.jpg", "image/jpeg"), **fields})


def test_the_exif_date_of_a_photo_is_read_from_its_bytes():
    assert exif.photo_taken_on(jpeg_taken_on(datetime.date(2026, 5, 3))) == datetime.date(2026, 5, 3)


def test_the_digitised_date_stands_in_for_a_missing_original_date():
    data = jpeg_taken_on(datetime.date(2026, 5, 3), tag=exif.DATE_TIME_DIGITIZED)
    assert exif.photo_taken_on(data) == datetime.date(2026, 5, 3)


@pytest.mark.parametrize("data", [image_bytes("PNG"), image_bytes("JPEG"), b"not a picture", b""])
def test_a_file_without_a_date_has_none(data):
    assert exif.photo_taken_on(data) is None


def test_looking_for_a_date_never_decodes_a_pngs_pixels(monkeypatch):
    # Pillow would decode a whole PNG to look for an eXIf chunk after its pixels: for a 50 MP
    # bomb, 200 MB before the upload's own pixel cap refuses it.
    from PIL import ImageFile

    from babies.tests.factories import png_bomb

    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: decoded.append(image.size))
    assert exif.photo_taken_on(png_bomb(8000, 6000)) is None
    assert exif.photo_taken_on(image_bytes("PNG")) is None
    assert decoded == []


def test_a_png_with_its_exif_before_the_pixels_is_dated():
    image = Image.open(io.BytesIO(image_bytes("PNG", (64, 48))))
    metadata = Image.Exif()
    metadata.get_ifd(exif.EXIF_IFD_POINTER)[exif.DATE_TIME_ORIGINAL] = "2026:05:03 10:30:00"
    buffer = io.BytesIO()
    image.save(buffer, "PNG", exif=metadata.tobytes())  # an eXIf chunk before the pixels
    assert exif.photo_taken_on(buffer.getvalue()) == datetime.date(2026, 5, 3)


@pytest.mark.parametrize("value", ["0000:00:00 00:00:00", "", "garbage", None, "1970:01:01 00:00:00"])
def test_a_blank_or_broken_exif_date_is_no_date(value):
    assert exif.parse_exif_date(value) is None


def test_an_upload_without_a_typed_week_is_dated_by_the_photo_read_on_the_server(parent_client, user):
    today = timezone.localdate()
    baby = BabyFactory(owner=user, due_date=today + datetime.timedelta(days=70))  # week 30 today
    taken_on = today - datetime.timedelta(weeks=10)  # week 20 on the day of the scan
    response = _post(parent_client, baby, jpeg_taken_on(taken_on))
    assert response.status_code == 201, response.json()
    assert response.json()["gestational_week"] == 20
    assert response.json()["week_source"] == "photo_date"
    assert Scan.objects.get().gestational_week == 20


def test_the_date_the_browser_read_is_used_when_sent(parent_client, user):
    today = timezone.localdate()
    baby = BabyFactory(owner=user, due_date=today + datetime.timedelta(days=70))
    taken_on = today - datetime.timedelta(weeks=15)  # week 15
    response = _post(parent_client, baby, image_bytes("JPEG"), taken_on=taken_on.isoformat())
    assert response.json()["gestational_week"] == 15
    assert response.json()["week_source"] == "photo_date"


def test_a_typed_week_wins_over_the_photo_date(parent_client, user):
    today = timezone.localdate()
    baby = BabyFactory(owner=user, due_date=today + datetime.timedelta(days=70))
    data = jpeg_taken_on(today - datetime.timedelta(weeks=10))
    response = _post(parent_client, baby, data, gestational_week="24")
    assert response.json()["gestational_week"] == 24
    assert response.json()["week_source"] == "typed"


def test_without_a_photo_date_the_week_is_counted_from_today(parent_client, user):
    today = timezone.localdate()
    baby = BabyFactory(owner=user, due_date=today + datetime.timedelta(days=70))
    response = _post(parent_client, baby, image_bytes("JPEG"))
    assert response.json()["gestational_week"] == 30
    assert response.json()["week_source"] == "upload_date"


def test_a_photo_date_in_the_future_or_before_the_pregnancy_is_ignored(parent_client, user):
    today = timezone.localdate()
    baby = BabyFactory(owner=user, due_date=today + datetime.timedelta(days=70))
    future = (today + datetime.timedelta(days=5)).isoformat()
    assert _post(parent_client, baby, image_bytes("JPEG"), taken_on=future).json()["gestational_week"] == 30
    long_ago = jpeg_taken_on(today - datetime.timedelta(days=400))
    assert _post(parent_client, baby, long_ago).json()["week_source"] == "upload_date"


def test_a_born_baby_with_a_due_date_gets_the_week_from_the_photo(parent_client, user):
    today = timezone.localdate()
    due_date, birth_date = today - datetime.timedelta(days=20), today - datetime.timedelta(days=18)
    baby = BabyFactory(owner=user, due_date=due_date, birth_date=birth_date)
    taken_on = baby.due_date - datetime.timedelta(weeks=20)  # week 20
    response = _post(parent_client, baby, jpeg_taken_on(taken_on))
    assert response.json()["gestational_week"] == 20
