"""In Chromium: an upload over the per-account limit shows its sentence in the upload dialog."""

import re

import pytest
from playwright.sync_api import expect

from babies.models import Scan
from babies.tests.factories import BabyFactory, image_bytes
from babies.tests.test_e2e_upload import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def upload_through_the_dialog(page, path):
    page.locator("[data-testid=baby-card]").get_by_role("button", name=re.compile("Upload a scan")).click()
    modal = page.locator("#upload-modal")
    file_input = modal.get_by_label("Picture of the scan")
    expect(file_input).to_be_focused()
    file_input.set_input_files(str(path))
    expect(modal.locator(".cropper-container")).to_be_visible()
    modal.get_by_role("button", name="Upload", exact=True).click()
    return modal


def test_the_upload_dialog_shows_the_limits_sentence(page, live_server, user, password, tmp_path, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "scan_upload": "1/h/user"}
    BabyFactory(owner=user)
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    first.write_bytes(image_bytes("PNG", (320, 240)))
    second.write_bytes(image_bytes("PNG", (320, 240)))
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, live_server, user.email, password)

    modal = upload_through_the_dialog(page, first)
    expect(modal).to_be_hidden()
    modal = upload_through_the_dialog(page, second)

    expect(modal.get_by_role("alert")).to_contain_text(
        "You have uploaded a lot of scans in a short time: each account can upload 1 scan an hour."
    )
    modal.get_by_role("alert").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "limit-390.png"))
    assert Scan.objects.count() == 1
