"""In Chromium at a phone's width: a long e-mail address in the account menu never widens the page."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from accounts.tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LONG_ADDRESS = "a.rather.long.name.for.a.parent@example-family-mailbox.co.uk"


def _page_width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_a_long_address_wraps_in_the_phone_menu_instead_of_scrolling_sideways(browser, live_server, password):
    user = UserFactory(email=LONG_ADDRESS)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(live_server.url + reverse("account_login"))
    page.locator("input[name=login]").fill(user.email)
    page.locator("input[name=password]").fill(password)
    page.locator("main form button[type=submit]").click()
    expect(page.get_by_role("heading", name="Your babies")).to_be_visible()
    assert _page_width(page) <= 390

    page.get_by_role("button", name="Toggle navigation").click()
    menu = page.locator("#account-menu")
    expect(menu).to_be_visible()
    menu.click()
    expect(page.get_by_test_id("signed-in-user")).to_have_text(LONG_ADDRESS)
    # The whole address is on screen, and the page is as wide as the phone.
    box = page.get_by_test_id("signed-in-user").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert _page_width(page) <= 390
    context.close()
