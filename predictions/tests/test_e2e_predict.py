"""In Chromium: press Predict on the dashboard and read the calibrated probability it shows."""

import math
import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from predictions.models import Prediction
from predictions.tests.predict_support import expected_logit, grey_png, grey_scan, tiny_model_version

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_predict_on_the_dashboard_shows_the_probability(page, live_server, user, baby, password, tmp_path):
    page_errors = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and page_errors.append(message.text))
    tiny_model_version(temperature=1.5)
    for value in (190, 210, 150):  # agreeing scans: an answer, not "cannot tell yet"
        grey_scan(baby, value)

    page.goto(live_server.url + reverse("account_login"))
    page.locator("input[name=login]").fill(user.email)
    page.locator("input[name=password]").fill(password)
    page.locator("main form button[type=submit]").click()
    expect(page.get_by_role("heading", name="Your babies")).to_be_visible()

    panel = page.locator(f"#prediction-{baby.pk}")
    expect(panel).to_contain_text("Ask whether your baby due on")
    panel.get_by_role("button", name=re.compile(r"^Predict the sex of")).click()

    result = panel.get_by_test_id("prediction-result")
    expect(result).to_be_visible()
    # Worked out by hand, not read back from the stored row: the mean of the three calibrated
    # logits (w * v / 255 + b) / 1.5, through the sigmoid: 81 % boy.
    mean_logit = sum(expected_logit(value) / 1.5 for value in (190, 210, 150)) / 3
    assert round(100 / (1 + math.exp(-mean_logit))) == 81
    expect(result).to_have_text("Boy — 81\u00a0% likely")
    assert Prediction.objects.get().probability_male == pytest.approx(
        1 / (1 + math.exp(-mean_logit)), abs=1e-4
    )
    expect(panel).to_contain_text("From 3 scans")
    expect(panel.get_by_test_id("synthetic-banner")).to_be_visible()
    expect(panel.get_by_test_id("prediction-stale")).to_be_hidden()
    expect(panel.get_by_role("button", name=re.compile(r"^Predict again"))).to_be_enabled()
    assert page.url.endswith(f"#prediction-{baby.pk}")

    # A scan uploaded without a page load makes the shown prediction out of date at once.
    scan_file = tmp_path / "new-scan.png"
    scan_file.write_bytes(grey_png(120))
    page.locator(f"[data-baby-id='{baby.pk}'][data-upload-url]").click()
    modal = page.locator("#upload-modal")
    modal.get_by_label("Picture of the scan").set_input_files(str(scan_file))
    expect(modal.locator(".cropper-container")).to_be_visible()
    modal.get_by_role("button", name="Upload", exact=True).click()
    expect(modal).to_be_hidden()
    expect(panel.get_by_test_id("prediction-stale")).to_be_visible()
    assert page_errors == []
