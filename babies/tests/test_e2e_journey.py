"""A parent's whole journey in Chromium, on a desktop and on a phone (issue 14).

Sign up, confirm (which logs the parent in), add babies, crop and upload scans (one refused, one
cancelled mid-way on a slow connection, one dated by its EXIF date), predict, confirm a born
baby's sex, delete a scan and a baby, export the data, log out. On every page state: axe-core
finds no WCAG 2.0/2.1 A or AA violation, the page is no wider than the screen, and nothing is
logged to the console (a CSP violation would be).
"""

import datetime
import io
import re
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from PIL import Image
from playwright.sync_api import expect

from babies.models import Baby, Scan
from babies.tests.test_scan_week_from_photo import jpeg_taken_on
from predictions.models import Prediction
from predictions.tests.predict_support import tiny_model_version

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

AXE_SCRIPT = Path(settings.BASE_DIR) / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "Journey-test-Passphrase-58"
# Which elements stick out (for the failure message only).
WIDER_THAN_THE_SCREEN = """(width) => [...document.querySelectorAll('body *')]
  .filter((element) => element.getBoundingClientRect().right > width)
  .slice(0, 5).map((element) => `${element.tagName}.${element.className}`)"""
RUN_AXE = """async () => {
  const result = await axe.run(document, {
    runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
  });
  return result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}"""


class Journey:
    """The page, plus the checks every page state must pass."""

    def __init__(self, page, live_server, width, height):
        self.page = page
        self.live_server = live_server
        self.width = width
        self.height = height
        self.states = []
        self.console_errors = []
        page.on("console", lambda msg: msg.type == "error" and self.console_errors.append(msg.text))
        page.on("pageerror", lambda error: self.console_errors.append(str(error)))

    def url(self, name, *args):
        return self.live_server.url + reverse(name, args=args)

    def check(self, state: str) -> None:
        """axe-core at 0 violations, no sideways scrolling, no console error."""
        self.page.wait_for_load_state("load")
        # Let Bootstrap's transitions (button colours, fades: 0.15-0.3 s) finish, so axe measures
        # the colours a parent sees, not a frame half-way through one.
        self.page.wait_for_timeout(400)
        violations = self.page.evaluate(RUN_AXE)
        assert violations == [], f"{state}: {violations}"
        document_width = self.page.evaluate("document.documentElement.scrollWidth")
        wide = self.page.evaluate(WIDER_THAN_THE_SCREEN, self.width)
        assert document_width <= self.width, f"{state}: the page is {document_width}px wide: {wide}"
        assert self.console_errors == [], f"{state}: {self.console_errors}"
        self.states.append(state)

    def forgive(self, text: str) -> None:
        """Drop the console line Chromium writes for a response the test provoked on purpose."""
        matching = [line for line in self.console_errors if text in line]
        assert len(matching) == 1, self.console_errors
        self.console_errors.remove(matching[0])

    def primary_button_in_view(self, button) -> None:
        """The button is on screen and the page behind the modal was not scrolled to reach it."""
        box = button.bounding_box()
        assert box is not None
        assert box["y"] >= 0 and box["y"] + box["height"] <= self.height, box
        assert box["x"] >= 0 and box["x"] + box["width"] <= self.width, box
        assert self.page.evaluate("window.scrollY") == 0


def noisy_jpeg(size=(900, 700)) -> bytes:
    """A JPEG that does not compress well: big enough to watch it upload on a slow connection."""
    pixels = np.random.default_rng(14).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


@pytest.mark.parametrize("viewport", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
def test_the_parents_journey(browser, live_server, mailoutbox, tmp_path, viewport):
    width, height = viewport
    is_phone = width < 768
    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    context.add_init_script(path=str(AXE_SCRIPT))
    page = context.new_page()
    journey = Journey(page, live_server, width, height)
    tiny_model_version()
    today = timezone.localdate()
    due = today + datetime.timedelta(days=70)  # week 30 today
    email = f"journey.{width}.a.long.address.for.a.parent@example-family-mailbox.co.uk"

    # --- Sign up, and the confirmation link logs the parent in ------------------------------
    page.goto(live_server.url)
    journey.check("home")
    page.get_by_role("main").get_by_role("link", name="Sign up").click()
    expect(page.get_by_role("heading", name="Sign up")).to_be_visible()
    journey.check("sign-up form")
    page.get_by_label("E-mail").fill(email)
    page.locator("#id_password1").fill(PASSWORD)
    page.locator("#id_password2").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()
    journey.check("check your e-mail")
    link = re.search(r"https?://\S+", mailoutbox[0].body).group(0)
    page.goto(link)
    journey.check("confirm address")
    page.get_by_role("button", name="Confirm my address").click()
    expect(page.get_by_role("heading", name="Your babies")).to_be_visible()
    expect(page.get_by_test_id("signed-in-user")).to_have_text(email)
    journey.check("empty dashboard, logged in by confirming")

    if is_phone:
        page.get_by_role("button", name="Toggle navigation").click()
        page.locator("#account-menu").click()
        expect(page.get_by_role("link", name="Account settings")).to_be_visible()
        journey.check("phone: account menu open")
        page.get_by_role("button", name="Toggle navigation").click()
        expect(page.locator("#account-menu")).to_be_hidden()

    # --- Add two babies ---------------------------------------------------------------------
    page.get_by_role("link", name="Add a baby").first.click()
    journey.check("add a baby form")
    page.get_by_label("Due date").fill(due.isoformat())
    page.get_by_role("button", name="Add baby").click()
    expect(page.get_by_text(f"Baby due {due.day} {due:%B %Y} was added.")).to_be_visible()
    journey.check("dashboard with a new baby")
    baby = Baby.objects.get()
    card = page.locator(f"#baby-{baby.pk}")
    expect(card).to_contain_text(f"Ask whether your baby due on {due.day} {due:%B %Y} is a girl or a boy")

    # --- The upload modal: the refused file ---------------------------------------------------
    modal = page.locator("#upload-modal")
    upload_button = modal.get_by_role("button", name="Upload", exact=True)
    file_input = modal.get_by_label("Picture of the scan")
    card.get_by_role("button", name=re.compile("Upload a scan")).click()
    expect(file_input).to_be_focused()
    journey.primary_button_in_view(upload_button)
    journey.check("upload modal open")
    not_a_picture = tmp_path / "scan.png"
    not_a_picture.write_bytes(b"this is not a picture at all " * 50)
    file_input.set_input_files(str(not_a_picture))
    expect(modal.locator("[data-no-preview]")).to_be_visible()
    upload_button.click()
    error = modal.locator("[data-upload-error]")
    expect(error).to_contain_text("not a picture we can read")
    expect(modal.locator("[data-no-preview]")).to_be_hidden()  # "the whole picture will be uploaded"
    expect(modal.locator("[data-crop-wrapper]")).to_be_hidden()
    expect(upload_button).to_be_disabled()
    journey.forgive("status of 400 (Bad Request)")  # the refused upload's answer, and only it
    journey.check("upload refused")

    # --- A photo with an EXIF date: the week comes from that date -----------------------------
    taken_on = today - datetime.timedelta(weeks=10)  # week 20 on the day the photo was taken
    dated_photo = tmp_path / "dated-scan.jpg"
    dated_photo.write_bytes(jpeg_taken_on(taken_on, size=(1200, 900)))
    file_input.set_input_files(str(dated_photo))
    expect(error).to_be_hidden()
    expect(modal.locator(".cropper-container")).to_be_visible()
    expect(modal.get_by_test_id("week-summary")).to_have_text(
        f"Week 20 will be recorded, from the photo's date ({taken_on.day} {taken_on:%B %Y})."
    )
    expect(upload_button).to_be_enabled()
    journey.primary_button_in_view(upload_button)
    journey.check("scan chosen, crop shown")
    upload_url = journey.url("babies:scan_upload", baby.pk)
    upload_button.click()
    expect(modal).to_be_hidden()
    expect(page.locator("[data-upload-status]")).to_contain_text("The scan was added to your baby due on")
    # The "… was added." message of the previous page made way for the new one.
    expect(page.locator("[data-flash-messages] .alert")).to_have_count(0)
    assert Scan.objects.get().gestational_week == 20
    journey.check("scan uploaded")

    # --- A slow connection: progress, then Cancel really aborts -------------------------------
    big_scan = tmp_path / "big-scan.jpg"
    big_scan.write_bytes(noisy_jpeg())
    card.get_by_role("button", name=re.compile("Upload a scan")).click()
    expect(file_input).to_be_focused()
    file_input.set_input_files(str(big_scan))
    expect(modal.locator(".cropper-container")).to_be_visible()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 50, "downloadThroughput": -1, "uploadThroughput": 40_000},
    )
    failed = []
    page.on("requestfailed", lambda request: request.url == upload_url and failed.append(request.failure))
    upload_button.click()
    bar = modal.get_by_role("progressbar", name="Upload progress")
    expect(bar).to_be_visible()
    page.wait_for_function(
        "() => Number(document.querySelector('[data-progress-bar]').getAttribute('aria-valuenow')) > 0"
    )
    expect(modal.locator("[data-progress-text]")).to_contain_text("Sending:")
    expect(upload_button).to_be_disabled()
    journey.check("uploading, progress shown")
    modal.get_by_role("button", name="Cancel").click()
    expect(error).to_contain_text("The upload was cancelled")
    expect(bar).to_be_hidden()
    page.wait_for_timeout(300)  # let the failed request's event arrive
    assert failed and "ABORTED" in failed[0].upper()
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    assert Scan.objects.count() == 1
    expect(upload_button).to_be_enabled()  # a cancelled upload can be sent again
    journey.check("upload cancelled")

    # A too-early scan (week typed), uploaded by keyboard: the modal works without a mouse.
    early_scan = tmp_path / "early-scan.png"
    early_scan.write_bytes(jpeg_taken_on(today, size=(640, 480)))
    file_input.set_input_files(str(early_scan))
    expect(modal.locator(".cropper-container")).to_be_visible()
    week_input = modal.get_by_label(re.compile("Week of pregnancy"))
    week_input.fill("10")
    summary = modal.get_by_test_id("week-summary")
    expect(summary).to_contain_text("Week 10 will be recorded. Predictions need week 12")
    week_input.press("Enter")
    expect(modal).to_be_hidden()
    expect(card.locator("img.scan-thumb")).to_have_count(2)
    expect(card.get_by_test_id("scan-too-early")).to_have_count(1)
    journey.check("two scans on the dashboard")

    # --- Predict ------------------------------------------------------------------------------
    card.get_by_role("button", name=re.compile(r"^Predict the sex of")).click()
    expect(card.get_by_test_id("prediction-result")).to_be_visible()
    expect(card.get_by_test_id("prediction-left-out")).to_contain_text("Scan 2 was taken at week 10")
    assert Prediction.objects.count() == 1
    journey.check("prediction shown")

    # --- A born baby whose sex the parent confirms --------------------------------------------
    page.goto(journey.url("babies:baby_create"))
    born_on = today - datetime.timedelta(days=30)
    page.get_by_label("Birth date").fill(born_on.isoformat())
    page.get_by_role("button", name="Add baby").click()
    born = Baby.objects.get(birth_date=born_on)
    born_card = page.locator(f"#baby-{born.pk}")
    born_card.get_by_role("radio", name="Girl").check()
    born_card.get_by_role("button", name=re.compile("^Confirm")).click()
    born_card = page.locator(f"#baby-{born.pk}")
    born_label = f"your baby born on {born_on.day} {born_on:%B %Y}"
    expect(born_card).to_contain_text(f"You told us {born_label} is a girl.")
    expect(born_card).to_contain_text("You already know")
    expect(born_card).not_to_contain_text("Upload a scan first")
    journey.check("born baby confirmed")

    # --- The baby's page: numbered tiles, a scan deleted --------------------------------------
    page.goto(journey.url("babies:baby_detail", baby.pk))
    expect(page.locator(".scan-grid figcaption").nth(1)).to_contain_text("Scan 2")
    expect(page.locator(".scan-grid").get_by_test_id("scan-too-early")).to_have_count(1)
    journey.check("baby page")
    page.locator(".scan-grid").get_by_role("link", name=re.compile("Delete")).nth(1).click()
    journey.check("delete a scan?")
    page.get_by_role("button", name=re.compile("Delete")).click()
    expect(page.get_by_text("The scan was deleted")).to_be_visible()
    assert Scan.objects.count() == 1
    journey.check("scan deleted")

    # --- Delete the born baby -----------------------------------------------------------------
    page.goto(journey.url("babies:baby_delete", born.pk))
    journey.check("delete a baby?")
    page.get_by_role("button", name=re.compile("^Delete")).click()
    expect(page.get_by_role("heading", name="Your babies")).to_be_visible()
    assert Baby.all_objects.get(pk=born.pk).deleted_at is not None
    journey.check("baby deleted")

    # --- Export the data, log out -------------------------------------------------------------
    page.goto(journey.url("account_settings"))
    journey.check("account settings")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download my data (ZIP)").click()
    assert download.value.suggested_filename.startswith("instagender-data-")
    if is_phone:
        page.get_by_role("button", name="Toggle navigation").click()
    page.locator("#account-menu").click()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("link", name="Log in").first).to_be_attached()
    journey.check("logged out")

    assert len(journey.states) >= 15
    context.close()
