"""``manage.py send_outcome_emails``: who gets one, exactly once, dry runs, failures and races."""

import datetime
import re
import smtplib
import threading
import time
from io import StringIO

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.utils import timezone

from accounts.tests.factories import UserFactory
from audit.models import AuditEntry
from babies.models import LabelSource
from babies.services import baby_confirm_sex, baby_soft_delete
from babies.tests.factories import BabyFactory
from predictions import selectors
from predictions.models import OutcomeAnswer, OutcomeRequest
from predictions.services import outcome_request_claim, outcome_request_retry, prediction_create
from predictions.tests.predict_support import grey_scan, tiny_model_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def model_version(db):
    return tiny_model_version()


def days_ago(days: int) -> datetime.date:
    return timezone.localdate() - datetime.timedelta(days=days)


def predicted_baby(owner=None, *, due_days_ago: int = 10, value: int = 40, **fields):
    baby = BabyFactory(owner=owner or UserFactory(), due_date=days_ago(due_days_ago), **fields)
    grey_scan(baby, value)
    prediction_create(baby=baby)
    return baby


def run(*args) -> str:
    out = StringIO()
    call_command("send_outcome_emails", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_selection_rules(model_version, settings):
    settings.OUTCOME_EMAIL_DELAY_DAYS = 7
    due = predicted_baby(due_days_ago=10)
    due_exactly_a_week_ago = predicted_baby(due_days_ago=7)
    predicted_baby(due_days_ago=6)  # too early
    BabyFactory(due_date=days_ago(30))  # no prediction
    deleted = predicted_baby()
    baby_soft_delete(baby=deleted)
    confirmed = predicted_baby()
    baby_confirm_sex(baby=confirmed, sex="female", source=LabelSource.STAFF)
    unverified = predicted_baby(owner=UserFactory(verified=False))
    inactive = predicted_baby(owner=UserFactory(is_active=False))
    changed_address = predicted_baby()  # the verified address is not the account's address any more
    EmailAddress.objects.filter(user=changed_address.owner).update(email="previous@example.com")
    born_without_due_date = BabyFactory(born=True)
    grey_scan(born_without_due_date, 40)
    prediction_create(baby=born_without_due_date)

    output = run()

    assert sorted(message.to[0] for message in mail.outbox) == sorted(
        [due.owner.email, due_exactly_a_week_ago.owner.email]
    )
    assert "Outcome e-mails: 2 sent, 0 failed, 0 skipped" in output
    assert set(OutcomeRequest.objects.values_list("baby", flat=True)) == {due.pk, due_exactly_a_week_ago.pk}
    assert unverified.owner.email not in output and inactive.owner.email not in output


def test_the_email_shows_the_prediction_and_two_signed_absolute_links(client, model_version, settings):
    settings.SITE_DOMAIN = "instagender.example"
    settings.ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https"
    baby = predicted_baby(name="Robin", value=40)  # a "girl" prediction
    prediction = baby.predictions.get()

    run()

    (message,) = mail.outbox
    assert message.to == [baby.owner.email]
    assert message.subject == "[Instagender] Was our prediction for Robin right?"
    assert f"Girl — {prediction.confidence_percent} % likely" in message.body
    assert "demo model trained on synthetic images" in message.body
    assert "not medical advice" in message.body
    assert "Each link can be answered once." in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert "Girl — " in html and "Yes, a girl" in html and "No, a boy" in html
    links = re.findall(r"https://instagender\.example/outcome/[^/\s\"]+/\?oc=(?:True|False)", message.body)
    assert [link.rsplit("=", 1)[1] for link in links] == ["True", "False"]
    assert set(links) <= set(re.findall(r'href="([^"]+)"', html))
    assert "example.com" not in message.body.replace("instagender.example", "")

    # The "no" link asks with "no" pre-selected and writes nothing until the button is pressed.
    path = links[1].removeprefix("https://instagender.example")
    page = client.get(path).content.decode()
    assert re.search(r'value="False"[^>]*checked', page)
    assert not OutcomeAnswer.objects.exists()
    client.post(path, {"prediction_was_right": "False"})
    baby.refresh_from_db()
    assert (baby.confirmed_sex, baby.confirmed_sex_source) == ("male", LabelSource.EMAIL)


def test_a_real_models_email_has_no_synthetic_note(settings):
    tiny_model_version(is_synthetic=False)
    predicted_baby()
    run()
    assert "synthetic" not in mail.outbox[0].body


def test_sent_once_then_never_again(model_version):
    baby = predicted_baby()
    run()
    output = run()
    prediction_create(baby=baby)  # a newer prediction does not ask again
    run()

    assert len(mail.outbox) == 1
    assert "Outcome e-mails: 0 sent, 0 failed, 0 skipped" in output
    request = OutcomeRequest.objects.get()
    assert request.sent_at is not None and request.attempts == 0
    assert request.email == baby.owner.email


def test_dry_run_lists_and_sends_nothing(model_version):
    baby = predicted_baby()

    output = run("--dry-run")

    assert f"would send: baby {baby.pk}" in output and f"to user {baby.owner_id}" in output
    assert baby.owner.email not in output
    assert "Dry run: 1 outcome e-mail(s) would be sent; nothing was sent." in output
    assert mail.outbox == []
    assert not OutcomeRequest.objects.exists()
    run()
    assert len(mail.outbox) == 1


def run_failing(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("send_outcome_emails", *args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue(), str(raised.value)


def test_a_server_failure_stops_the_run_counts_nothing_and_is_retried_next_run(model_version, monkeypatch):
    babies = [predicted_baby() for _ in range(3)]
    original_send = EmailMultiAlternatives.send
    tried = []

    def disconnect(self, fail_silently=False):
        tried.append(self.to)
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    monkeypatch.setattr(EmailMultiAlternatives, "send", disconnect)
    _, message = run_failing()

    assert len(tried) == 1  # the run stopped at the first failure instead of trying everyone
    assert "could not take mail: SMTPServerDisconnected" in message
    assert "Stopped after 0 sent; 3 waiting e-mail(s) were not sent" in message
    request = OutcomeRequest.objects.get()
    assert request.sent_at is None and request.claimed_at is None and request.attempts == 0
    assert "SMTPServerDisconnected" in request.last_error

    monkeypatch.setattr(EmailMultiAlternatives, "send", original_send)
    assert "3 sent, 0 failed" in run()
    assert sorted(message.to[0] for message in mail.outbox) == sorted(baby.owner.email for baby in babies)
    assert set(OutcomeRequest.objects.values_list("attempts", "last_error")) == {(0, "")}


def refuse_recipient(self, fail_silently=False):
    address = self.to[0]
    raise smtplib.SMTPRecipientsRefused(
        {address: (550, f"5.1.1 <{address}>: Recipient address rejected".encode())}
    )


def test_a_refused_address_counts_against_that_baby_only_and_logs_no_address(model_version, monkeypatch):
    refused, fine = predicted_baby(), predicted_baby()
    original_send = EmailMultiAlternatives.send

    def refuse_one(self, fail_silently=False):
        if self.to == [refused.owner.email]:
            return refuse_recipient(self)
        return original_send(self, fail_silently=fail_silently)

    monkeypatch.setattr(EmailMultiAlternatives, "send", refuse_one)
    output, message = run_failing()

    assert [message.to for message in mail.outbox] == [[fine.owner.email]]
    assert "1 sent, 1 failed" in message
    assert f"refused: baby {refused.pk} (user {refused.owner_id})" in output
    assert "550 5.1.1 <<address>>: Recipient address rejected (4 attempt(s) left)" in output
    assert refused.owner.email not in output + message
    request = OutcomeRequest.objects.get(baby=refused)
    assert (request.attempts, request.sent_at) == (1, None)
    assert request.last_error.startswith("SMTPRecipientsRefused: 550")
    assert refused.owner.email not in request.last_error


def test_gives_up_after_the_maximum_refusals_and_staff_can_retry(model_version, monkeypatch, staff_user):
    baby = predicted_baby()
    original_send = EmailMultiAlternatives.send
    monkeypatch.setattr(EmailMultiAlternatives, "send", refuse_recipient)
    for _ in range(OutcomeRequest.MAX_ATTEMPTS):
        run_failing()
    assert "0 sent, 0 failed, 0 skipped" in run()
    assert OutcomeRequest.objects.get().attempts == OutcomeRequest.MAX_ATTEMPTS
    dry = run("--dry-run")
    assert f"baby {baby.pk}" not in dry
    assert "Not listed: 1 outcome e-mail(s) given up after 5 refusals" in dry

    assert outcome_request_retry(baby=baby, actor=staff_user) is True
    assert outcome_request_retry(baby=baby, actor=staff_user) is False  # nothing left to reset
    assert f"would send: baby {baby.pk}" in run("--dry-run")
    monkeypatch.setattr(EmailMultiAlternatives, "send", original_send)
    assert "1 sent, 0 failed" in run()
    assert [message.to for message in mail.outbox] == [[baby.owner.email]]
    entry = AuditEntry.objects.get(action="outcome_request.retried")
    assert entry.data["before"]["attempts"] == OutcomeRequest.MAX_ATTEMPTS
    assert entry.actor == staff_user


def test_a_sent_email_is_never_reset_for_retry(model_version, staff_user):
    baby = predicted_baby()
    run()
    assert outcome_request_retry(baby=baby, actor=staff_user) is False
    assert "0 sent" in run()
    assert len(mail.outbox) == 1


def test_an_email_that_cannot_be_built_counts_nothing_and_the_run_goes_on(model_version, monkeypatch):
    broken, fine = predicted_baby(), predicted_baby()
    from predictions.management.commands import send_outcome_emails

    original_build = send_outcome_emails.outcome_email_build

    def build(*, baby, prediction, email):
        if baby.pk == broken.pk:
            raise RuntimeError(f"template bug for {email}")
        return original_build(baby=baby, prediction=prediction, email=email)

    monkeypatch.setattr(send_outcome_emails, "outcome_email_build", build)
    output, message = run_failing()
    assert [message.to for message in mail.outbox] == [[fine.owner.email]]
    assert "1 could not be built" in message
    assert (
        f"failed: baby {broken.pk}: could not build the e-mail: RuntimeError: template bug for <address>"
        in output
    )
    assert OutcomeRequest.objects.get(baby=broken).attempts == 0


def test_a_claim_left_by_a_crash_blocks_until_it_expires(model_version):
    baby = predicted_baby()
    # A run claimed the baby and died before sending.
    assert outcome_request_claim(baby=baby, prediction=baby.predictions.get(), email=baby.owner.email)

    assert "0 sent, 0 failed, 1 skipped" in run()
    assert mail.outbox == []

    OutcomeRequest.objects.update(
        claimed_at=timezone.now() - OutcomeRequest.CLAIM_EXPIRY - datetime.timedelta(1)
    )
    assert "1 sent, 0 failed, 0 skipped" in run()
    assert len(mail.outbox) == 1


def test_a_claim_is_taken_once(model_version):
    baby = predicted_baby()
    prediction = baby.predictions.get()
    first = outcome_request_claim(baby=baby, prediction=prediction, email=baby.owner.email)
    second = outcome_request_claim(baby=baby, prediction=prediction, email=baby.owner.email)
    assert first is not None and second is None


def test_a_sent_request_whose_claim_expired_is_not_claimed_again(model_version):
    baby = predicted_baby()
    prediction = baby.predictions.get()
    run()
    long_ago = timezone.now() - OutcomeRequest.CLAIM_EXPIRY - datetime.timedelta(days=1)
    OutcomeRequest.objects.update(claimed_at=long_ago)  # sent, and its claim is long expired
    sent = OutcomeRequest.objects.get()

    assert outcome_request_claim(baby=baby, prediction=prediction, email="someone@example.com") is None

    after = OutcomeRequest.objects.get()
    assert (after.sent_at, after.claimed_at, after.claim_id, after.attempts, after.email) == (
        sent.sent_at,
        long_ago,
        sent.claim_id,
        0,
        baby.owner.email,
    )


def test_a_run_that_listed_a_baby_before_another_run_sent_it_does_not_send_again(model_version, monkeypatch):
    """A slow run lists the baby, another run sends it, and the claim expires before the slow run
    reaches it: only "not sent yet" in the claim stops the second e-mail."""
    baby = predicted_baby()
    stale_listing = list(selectors.babies_due_outcome_email())
    run()
    OutcomeRequest.objects.update(
        claimed_at=timezone.now() - OutcomeRequest.CLAIM_EXPIRY - datetime.timedelta(days=1)
    )
    monkeypatch.setattr(selectors, "babies_due_outcome_email", lambda **kwargs: stale_listing)

    output = run()

    assert "0 sent, 0 failed, 1 skipped" in output
    assert [message.to for message in mail.outbox] == [[baby.owner.email]]
    assert OutcomeRequest.objects.get().attempts == 0


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_send_each_email_once(model_version, monkeypatch):
    """Two copies of the command, each with its own PostgreSQL connection, racing over ten babies."""
    if connection.vendor != "postgresql":
        pytest.skip("Row claims under concurrency need PostgreSQL (CI runs it there).")
    babies = [predicted_baby() for _ in range(10)]
    original_send = EmailMultiAlternatives.send

    def slow_send(self, fail_silently=False):
        time.sleep(0.02)  # keep both runs inside the loop at the same time
        return original_send(self, fail_silently=fail_silently)

    monkeypatch.setattr(EmailMultiAlternatives, "send", slow_send)
    # Both runs list the ten babies before either claims one, so they race for every row.
    original_select = selectors.babies_due_outcome_email
    listed = threading.Barrier(2)

    def select_then_wait(**kwargs):
        babies = list(original_select(**kwargs))
        listed.wait(timeout=30)
        return babies

    monkeypatch.setattr(selectors, "babies_due_outcome_email", select_then_wait)
    start = threading.Barrier(2)
    outputs, errors = [], []

    def one_run():
        try:
            start.wait()
            outputs.append(run())
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    recipients = sorted(message.to[0] for message in mail.outbox)
    assert recipients == sorted(baby.owner.email for baby in babies)
    sent = [int(re.search(r"(\d+) sent", output).group(1)) for output in outputs]
    skipped = [int(re.search(r"(\d+) skipped", output).group(1)) for output in outputs]
    assert sum(sent) == 10
    # Each run saw all ten babies; whatever one sent, the other skipped.
    assert sent[0] + skipped[0] == 10 and sent[1] + skipped[1] == 10
    assert OutcomeRequest.objects.filter(sent_at__isnull=False).count() == 10
