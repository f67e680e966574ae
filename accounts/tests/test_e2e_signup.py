"""The newcomer's first minutes, in a real headless Chromium against the live server."""

import re

import pytest
from playwright.sync_api import expect

PASSWORD = "Browser-test-Passphrase-31"


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_sign_up_confirm_by_email_log_in_and_see_the_dashboard(page, live_server, mailoutbox):
    page.goto(live_server.url)
    expect(page).to_have_title(re.compile("Instagender"))
    page.get_by_role("link", name="Sign up").first.click()

    page.get_by_label("E-mail").fill("browser.parent@example.com")
    page.locator("#id_password1").fill(PASSWORD)
    page.locator("#id_password2").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()

    assert len(mailoutbox) == 1
    link = re.search(r"https?://\S+", mailoutbox[0].body).group(0)
    assert link.startswith(live_server.url)
    page.goto(link)
    page.get_by_role("button", name="Confirm my address").click()

    # Confirming in the browser that signed up logs the parent in: no second typing of the address.
    expect(page.get_by_role("heading", name="Your babies")).to_be_visible()
    expect(page.get_by_test_id("signed-in-user")).to_have_text("browser.parent@example.com")


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_pages_load_no_blocked_resources(page, live_server):
    """The CSP forbids inline scripts: a page that broke it would log a violation here."""
    problems = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    for path in ["/", "/accounts/signup/", "/accounts/login/", "/accounts/password/reset/"]:
        # Wait until every request (the favicon too) has finished: leaving a page earlier would
        # abort its requests and report them as failed.
        page.goto(live_server.url + path, wait_until="networkidle")
        expect(page.locator("html")).to_have_attribute("lang", "en")
    assert problems == []
