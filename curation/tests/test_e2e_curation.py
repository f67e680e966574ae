"""A curator's afternoon in a real headless Chromium: review two scans, freeze a training set."""

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import DEFAULT_PASSWORD, StaffFactory, totp_code
from curation.models import ScanReview, TrainingSet
from curation.tests.factories import labelled_baby, reviewed_scan


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_staff_review_two_scans_and_create_a_training_set(page, live_server):
    curator = StaffFactory()
    girl_scan = reviewed_scan(labelled_baby(sex="female"), reviewer=curator, state="pending")
    boy_scan = reviewed_scan(labelled_baby(sex="male"), reviewer=curator, state="pending")

    # The admin's sign-in is allauth's: password, then the authenticator app's code.
    page.goto(f"{live_server.url}/admin/")
    page.get_by_label("E-mail").fill(curator.email)
    page.locator("#id_password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.locator("#id_code").fill(totp_code())
    page.locator("#id_code").press("Enter")

    page.get_by_role("link", name="Review queue").first.click()
    expect(page.get_by_role("heading", name="Review queue", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Likely label errors first")).to_be_visible()
    page.get_by_role("link", name=f"Scan {girl_scan.pk}", exact=False).first.click()

    # The first scan: accept it and go straight to the next labelled one.
    expect(page.get_by_role("img", name=f"Scan {girl_scan.pk} of baby {girl_scan.baby_id}")).to_be_visible()
    page.get_by_label("Accepted").check()
    page.get_by_role("button", name="Save and review next").click()
    expect(page.get_by_role("heading", name=f"Review scan {boy_scan.pk}")).to_be_visible()
    page.get_by_label("Accepted").check()
    page.get_by_role("button", name="Save and review next").click()
    expect(page.get_by_text("No labelled scans are waiting for review.")).to_be_visible()

    page.get_by_role("link", name="Training sets").first.click()
    page.get_by_role("link", name="Create training set").click()
    expect(page.get_by_test_id("eligible-count")).to_contain_text("2 (1 girls', 1 boys') of 2 babies")
    page.get_by_label("Note").fill("Browser test set")
    page.get_by_role("button", name="Freeze training set").click()

    expect(page.get_by_text("2 scans of 2 babies (1 girls' scans, 1 boys')")).to_be_visible()
    expect(page.get_by_test_id("count-female")).to_have_text("1")
    expect(page.get_by_test_id("count-male")).to_have_text("1")
    expect(page.get_by_test_id("count-all")).to_contain_text("2 scans of 2 babies")

    assert set(ScanReview.objects.values_list("state", flat=True)) == {"accepted"}
    training_set = TrainingSet.objects.get()
    assert (training_set.note, training_set.created_by) == ("Browser test set", curator)
