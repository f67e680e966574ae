"""In Chromium: add a baby, crop and upload a PNG, see its thumbnail; another parent sees nothing."""

import datetime
import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from babies.models import Baby, Scan
from babies.tests.factories import image_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def log_in(page, live_server, email, password):
    page.goto(live_server.url + reverse("account_login"))
    page.locator("input[name=login]").fill(email)
    page.locator("input[name=password]").fill(password)
    page.locator("main form button[type=submit]").click()
    expect(page.get_by_role("heading", name="Your babies")).to_be_visible()


def test_add_baby_crop_upload_and_privacy(page, live_server, user, other_user, password, tmp_path, browser):
    scan_file = tmp_path / "scan.png"
    scan_file.write_bytes(image_bytes("PNG", (640, 480)))
    due = datetime.date.today() + datetime.timedelta(days=90)

    log_in(page, live_server, user.email, password)
    expect(page.get_by_text("Add your first baby")).to_be_visible()
    page.get_by_role("link", name="Add a baby").first.click()
    page.get_by_label("Due date").fill(due.isoformat())
    page.get_by_role("button", name="Add baby").click()

    card = page.locator("[data-testid=baby-card]")
    expect(card).to_contain_text(f"Baby due {due.day} {due:%B %Y}")
    expect(card).to_contain_text("No scans yet")

    card.get_by_role("button", name=re.compile("Upload a scan")).click()
    modal = page.locator("#upload-modal")
    file_input = modal.get_by_label("Picture of the scan")
    # The page focuses the file input once the modal has finished opening (no more movement).
    expect(file_input).to_be_focused()
    file_input.set_input_files(str(scan_file))
    expect(modal.locator(".cropper-container")).to_be_visible()
    # Shrink the frame with cropper's own corner handle, so a real crop box is sent.
    handle = modal.locator(".cropper-point.point-se").bounding_box()
    frame = modal.locator(".cropper-crop-box").bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(frame["x"] + frame["width"] * 0.6, frame["y"] + frame["height"] * 0.7, steps=5)
    page.mouse.up()
    modal.get_by_label(re.compile("Week of pregnancy")).fill("20")
    modal.get_by_role("button", name="Upload", exact=True).click()

    thumbnail = card.locator("img.scan-thumb")
    expect(thumbnail).to_have_count(1)
    expect(modal).to_be_hidden()
    expect(card.get_by_text("No scans yet")).to_be_hidden()
    expect(card).to_contain_text("1 scan")
    expect(page.locator("[data-upload-status]")).to_contain_text("The scan was added")
    # The thumbnail really loads: decode() rejects for a broken image (e.g. a 404).
    assert thumbnail.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0

    scan = Scan.objects.get()
    baby = Baby.objects.get()
    assert scan.gestational_week == 20
    assert scan.crop_box is not None and scan.width < 640 and scan.height < 480
    scan_url = live_server.url + reverse("babies:scan_image", args=[scan.pk])
    baby_url = live_server.url + reverse("babies:baby_detail", args=[baby.pk])
    assert page.request.get(scan_url).status == 200

    stranger = browser.new_context().new_page()
    log_in(stranger, live_server, other_user.email, password)
    assert stranger.goto(scan_url).status == 404
    assert stranger.goto(baby_url).status == 404
    stranger.context.close()
