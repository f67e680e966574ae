"""In Chromium: answer the outcome e-mail's link with the keyboard, then open the link again."""

import os
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from babies.models import LabelSource
from predictions.models import OutcomeAnswer
from predictions.outcome_links import outcome_token_make
from predictions.services import prediction_create
from predictions.tests.predict_support import grey_scan, tiny_model_version

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Set to a folder to keep the screenshots (1280x800 and 390x844) for a look.
SCREENSHOTS = os.environ.get("OUTCOME_SCREENSHOTS_DIR")


def shoot(page, name: str) -> None:
    if not SCREENSHOTS:
        return
    for width, height in ((1280, 800), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})


def test_a_link_answers_once_in_the_browser(page, live_server, baby, user):
    tiny_model_version()
    grey_scan(baby, 230)  # a "boy" prediction
    prediction = prediction_create(baby=baby)
    token = outcome_token_make(baby=baby, prediction=prediction, email=user.email)
    link = live_server.url + reverse("predictions:outcome", args=[token]) + "?oc=True"

    page.goto(link)
    expect(page).to_have_title("Was our prediction right? · Instagender")
    expect(page.get_by_role("radio", name="Yes, a boy: the prediction was right")).to_be_checked()
    shoot(page, "outcome-question")
    page.get_by_role("radio", name="Yes, a boy: the prediction was right").focus()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # "Save my answer", reached with the keyboard
    expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
    expect(page.get_by_test_id("outcome-answer")).to_contain_text("is a boy: our prediction was right.")
    shoot(page, "outcome-thanks")

    # The same link again, with the other answer pre-selected: the answer stands.
    page.goto(link.replace("oc=True", "oc=False"))
    expect(page.get_by_role("heading", name="This link has already been answered")).to_be_visible()
    expect(page.get_by_test_id("outcome-answer")).to_contain_text("is a boy")
    expect(page.get_by_role("button", name="Save my answer")).to_have_count(0)
    shoot(page, "outcome-answered")
    baby.refresh_from_db()
    assert (baby.confirmed_sex, baby.confirmed_sex_source) == ("male", LabelSource.EMAIL)
    assert OutcomeAnswer.objects.count() == 1
