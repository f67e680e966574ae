"""At upload: the gestational week defaulted from the due date, and text or caliper marks flagged."""

import datetime
import io
import re

import pytest
from django.urls import reverse
from django.utils import timezone
from PIL import Image, ImageDraw, ImageFont
from playwright.sync_api import expect

from babies import services
from babies.forms import ScanUploadForm
from babies.models import Scan
from babies.tests.factories import BabyFactory, create_scan, upload
from ml.synthetic import SyntheticConfig, generate_split

pytestmark = pytest.mark.django_db

MARKER_NOTICE = "This scan seems to have text or measurement marks on it; cropping them out helps."


def days_from_today(days: int) -> datetime.date:
    return timezone.localdate() + datetime.timedelta(days=days)


def synthetic_scan_png(*, with_text: bool) -> bytes:
    """A generated ultrasound-like scan, with "GA 12w3d" printed in its black corner if asked."""
    (scan,) = generate_split(
        seed=33, split="test", babies=1, scans_per_baby=1, config=SyntheticConfig(image_size=128)
    )
    image = Image.open(io.BytesIO(scan.jpeg)).convert("RGB")
    if with_text:
        ImageDraw.Draw(image).text(
            (2, 2), "GA 12w3d", fill=(255, 255, 255), font=ImageFont.load_default_imagefont()
        )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


# --- The gestational week -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("due_in_days", "expected_week"),
    [
        (0, 40),
        (196, 12),
        (197, 11),
        (120, 22),
        (280 - 4 * 7, 4),
        (280 - 4 * 7 + 1, None),
        (-20, 42),
        (-21, None),
    ],
)
def test_an_empty_week_is_counted_from_the_due_date_and_today(due_in_days, expected_week):
    baby = BabyFactory(due_date=days_from_today(due_in_days))
    assert create_scan(baby).gestational_week == expected_week


def test_the_week_the_parent_typed_wins():
    baby = BabyFactory(due_date=days_from_today(120))  # week 22 today
    assert create_scan(baby, gestational_week=13).gestational_week == 13


def test_a_born_baby_gets_no_default_week():
    assert create_scan(BabyFactory(born=True)).gestational_week is None


def test_the_form_says_how_an_empty_week_is_filled_in(settings):
    settings.PREDICTION_MIN_GESTATIONAL_WEEK = 14
    help_text = ScanUploadForm().fields["gestational_week"].help_text
    assert "due date" in help_text and "week 14 on" in help_text


def test_the_upload_modal_shows_the_help_text(parent_client, baby):
    page = parent_client.get(reverse("babies:dashboard")).content.decode()
    assert 'aria-describedby="upload-week-summary upload-week-help"' in page
    assert "we count it from the due date and the day the photo was taken" in page


def test_the_upload_answer_gives_the_week_and_says_when_it_is_too_early(parent_client, baby):
    url = reverse("babies:scan_upload", args=[baby.pk])

    early = parent_client.post(
        url, {"file": upload(synthetic_scan_png(with_text=False)), "gestational_week": 10}
    )
    defaulted = parent_client.post(url, {"file": upload(synthetic_scan_png(with_text=True))})

    assert early.status_code == 201
    assert early.json()["gestational_week"] == 10
    assert early.json()["notices"] == [
        "This scan was taken at week 10; predictions need week 12 or later, "
        "so it is kept but not used for a prediction."
    ]
    assert defaulted.status_code == 201
    assert defaulted.json()["gestational_week"] == 22  # the factory's baby is due in 120 days
    assert defaulted.json()["notices"] == [MARKER_NOTICE]
    assert Scan.objects.get(pk=early.json()["id"]).gestational_week == 10


# --- Text and caliper marks -----------------------------------------------------------------
def test_a_scan_with_burned_in_text_is_flagged_and_a_clean_one_is_not(baby):
    marked = create_scan(baby, data=synthetic_scan_png(with_text=True))
    clean = create_scan(BabyFactory(), data=synthetic_scan_png(with_text=False))

    assert marked.has_markers is True and marked.marker_score >= 0.5
    assert clean.has_markers is False and clean.marker_score < 0.5
    assert marked.notices == [MARKER_NOTICE] and clean.notices == []


def test_cropping_the_text_away_clears_the_flag(baby):
    # The text sits in the top-left corner; the crop keeps the fan below it.
    scan = create_scan(
        baby, data=synthetic_scan_png(with_text=True), crop_box={"x": 0, "y": 20, "width": 128, "height": 108}
    )
    assert scan.has_markers is False


def test_a_failing_detector_never_costs_the_upload(baby, monkeypatch, caplog):
    def broken(source):
        raise RuntimeError("heuristic bug")

    monkeypatch.setattr(services, "detect_markers", broken)
    scan = create_scan(baby)
    assert (scan.has_markers, scan.marker_score) == (False, None)
    assert "marker detection failed" in caplog.text


def test_the_dashboard_shows_the_marker_notice(parent_client, baby):
    create_scan(baby, data=synthetic_scan_png(with_text=True))
    create_scan(baby)
    page = parent_client.get(reverse("babies:dashboard")).content.decode()
    assert f"Scan 1: {MARKER_NOTICE}" in page
    assert "Scan 2:" not in page


def test_curators_can_filter_the_review_queue_on_marks(staff_client):
    marked = create_scan(BabyFactory(), data=synthetic_scan_png(with_text=True))
    clean = create_scan(BabyFactory())
    url = reverse("admin:curation_reviewqueuescan_changelist")

    response = staff_client.get(url, {"has_markers__exact": "1"})

    assert response.status_code == 200
    shown = {scan.pk for scan in response.context["cl"].result_list}
    assert marked.pk in shown and clean.pk not in shown


def test_the_thumbnails_carry_a_short_flag_and_say_it_in_their_alt_text(parent_client, baby):
    create_scan(baby, data=synthetic_scan_png(with_text=True), gestational_week=10)
    create_scan(baby, gestational_week=20)
    page = parent_client.get(reverse("babies:dashboard")).content.decode()
    assert page.count('data-testid="scan-too-early"') == 1
    assert page.count('data-testid="scan-has-markers"') == 1
    assert "at week 10, uploaded" in page and "too early to predict from, with text or marks on it" in page


@pytest.mark.e2e
@pytest.mark.slow
def test_in_the_browser_the_upload_says_why_a_scan_will_not_count(
    page, live_server, user, password, tmp_path
):
    baby = BabyFactory(owner=user, name="Uma")
    scan_file = tmp_path / "marked.png"
    scan_file.write_bytes(synthetic_scan_png(with_text=True))
    page.goto(live_server.url + reverse("account_login"))
    page.locator("input[name=login]").fill(user.email)
    page.locator("input[name=password]").fill(password)
    page.locator("main form button[type=submit]").click()
    expect(page.get_by_role("heading", name="Your babies")).to_be_visible()

    page.locator(f"[data-baby-id='{baby.pk}'][data-upload-url]").click()
    modal = page.locator("#upload-modal")
    modal.get_by_label("Picture of the scan").set_input_files(str(scan_file))
    expect(modal.locator(".cropper-container")).to_be_visible()
    week = modal.get_by_label("Week of pregnancy at the scan")
    expect(week).to_have_accessible_description(re.compile("count it from the due date"))
    week.fill("10")
    modal.get_by_role("button", name="Upload", exact=True).click()

    expect(modal).to_be_hidden()
    expect(page.locator("[data-upload-status] .alert-warning")).to_contain_text(
        "The scan was added to Uma. This scan was taken at week 10; predictions need week 12 or later"
    )
    expect(page.locator("[data-upload-status] .alert-warning")).to_contain_text(MARKER_NOTICE)
