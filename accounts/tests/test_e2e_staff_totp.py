"""Staff two-factor sign-in in a real headless Chromium: the admin's login is allauth's, then the
authenticator app's code (computed here from the secret, RFC 6238), then the admin."""

import os
import re

import pytest
from allauth.mfa.models import Authenticator
from playwright.sync_api import expect

from accounts.tests.factories import DEFAULT_PASSWORD, StaffFactory, UserFactory, totp_code
from audit.models import AuditEntry

SCREENSHOT_DIR = os.environ.get("E2E_SCREENSHOT_DIR", "")


def _screenshot(page, name: str) -> None:
    """Screenshots for a person to look at, only when E2E_SCREENSHOT_DIR is set."""
    if SCREENSHOT_DIR:
        page.screenshot(path=os.path.join(SCREENSHOT_DIR, f"{name}.png"), full_page=True)


def _password_step(page, email: str) -> None:
    page.get_by_label("E-mail").fill(email)
    page.locator("#id_password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Log in").click()


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_staff_sign_in_with_password_and_totp_code_reaches_the_admin(page, live_server):
    staff = StaffFactory()

    page.goto(f"{live_server.url}/admin/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=%2Fadmin%2F"))
    _password_step(page, staff.email)

    expect(page).to_have_url(re.compile(r"/accounts/2fa/authenticate/"))
    _screenshot(page, "mfa-authenticate")
    page.locator("#id_code").fill(totp_code())
    page.locator("#id_code").press("Enter")

    expect(page).to_have_url(f"{live_server.url}/admin/")
    expect(page.get_by_role("heading", name="Curation")).to_be_visible()
    entry = AuditEntry.objects.get(action="staff.signed_in")
    assert entry.actor == staff and entry.data["methods"] == ["password", "mfa"] and entry.data["ip"]


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_new_staff_set_up_an_authenticator_app_before_the_admin_opens(page, live_server):
    staff = UserFactory(is_staff=True, is_superuser=True, mfa=False)

    page.goto(f"{live_server.url}/admin/")
    _password_step(page, staff.email)
    # Signed in, but the admin sends staff without a second factor to set one up (allauth asks
    # for the password once more before any change to two-factor sign-in).
    expect(page).to_have_url(re.compile(r"/accounts/reauthenticate/"))
    page.locator("#id_password").fill(DEFAULT_PASSWORD)
    page.locator("#id_password").press("Enter")

    expect(page).to_have_url(re.compile(r"/accounts/2fa/totp/activate/"))
    _screenshot(page, "mfa-activate")
    secret = page.locator("#authenticator_secret").input_value()
    page.locator("#id_code").fill(totp_code(secret))
    page.locator("#id_code").press("Enter")

    assert Authenticator.objects.filter(user=staff, type=Authenticator.Type.TOTP).exists()
    page.goto(f"{live_server.url}/admin/")
    expect(page.get_by_role("heading", name="Curation")).to_be_visible()
