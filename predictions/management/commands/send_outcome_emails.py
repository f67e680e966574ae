"""Ask parents, a week after the due date, whether the prediction was right.

The original Flask app did this in ``scheduled()``.

Run it from cron, e.g. every hour. Each baby that is not deleted, has no confirmed sex, has a
prediction, was due at least ``OUTCOME_EMAIL_DELAY_DAYS`` ago and whose parent's address is
verified gets one e-mail with two signed links ("yes, it was right" / "no").

Exactly once: before sending, a run claims the baby's ``OutcomeRequest`` with one conditional
UPDATE and only the run whose UPDATE touched the row sends, so two copies running at once never
send twice, and a re-run skips what was sent.

Failures are sorted by whose they are, so that a day of SMTP outage loses nothing:

- the recipient's server refused the address (``SMTPRecipientsRefused``): the claim is released
  and one attempt counts against the baby; after ``OutcomeRequest.MAX_ATTEMPTS`` it is given up
  on (staff can reset it: the babies admin's "retry outcome e-mail" action);
- our SMTP server refuses connections, hangs (``EMAIL_TIMEOUT`` bounds every SMTP operation),
  drops the connection or answers with an error: nothing counts against anyone, the claim is
  released and the run stops at once (the other babies would fail the same way);
- the e-mail cannot be built (a bug): the claim is released, nothing counts, the run goes on.

Any failure makes the command exit non-zero with a message on stderr, so cron reports it. Output
names babies and users by id, never by address: it ends up in log files.

The trade-off: sending and recording cannot be one transaction with an SMTP server. A run that
dies *after* the server accepted the message but *before* it recorded ``sent_at`` leaves a claim,
and that claim expires after ``OutcomeRequest.CLAIM_EXPIRY`` (an hour) so the baby is retried:
that one crash, in a window of milliseconds, can mean a second e-mail. The alternative (marking
it sent before sending) would lose the e-mail for good on every crash or SMTP failure instead.
Concurrency and re-runs, the common cases, never send twice; a live run never loses its claim,
because one send takes seconds and the claim lasts an hour.
"""

from __future__ import annotations

import re
import smtplib

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from predictions import selectors, services
from predictions.emails import outcome_email_build
from predictions.models import OutcomeRequest

ADDRESS = re.compile(r"[^\s<>()\[\]'\",;:@]+@[^\s<>()\[\]'\",;:@]+")


def describe(error: BaseException) -> str:
    """The error's type and message with every e-mail address replaced: this goes to logs.

    ``SMTPRecipientsRefused`` holds ``{address: (code, message)}``; only the codes and messages
    are kept.
    """
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        text = "; ".join(
            f"{code} {message.decode(errors='replace') if isinstance(message, bytes) else message}"
            for code, message in error.recipients.values()
        )
    else:
        text = str(error)
    return f"{type(error).__name__}: {ADDRESS.sub('<address>', text)}".strip()


class SMTPUnavailable(Exception):
    """Our SMTP server cannot take mail now: the run stops, nobody is counted against."""


class Command(BaseCommand):
    help = "Send the outcome e-mails that are due (safe to run concurrently; --dry-run lists them)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="List what would be sent; send nothing.")

    def handle(self, *args, dry_run: bool = False, **options):
        babies = list(selectors.babies_due_outcome_email())
        if dry_run:
            self._dry_run(babies)
            return
        if not babies:
            self.stdout.write("Outcome e-mails: 0 sent, 0 failed, 0 skipped (claimed by another run).")
            return

        sent = refused = failed = skipped = 0
        try:
            waiting = len(babies)
            for baby in babies:
                prediction = selectors.prediction_latest_for_baby(baby=baby)
                email = baby.owner.email
                claim = services.outcome_request_claim(baby=baby, prediction=prediction, email=email)
                waiting -= 1
                if claim is None:
                    # Another run holds it or sent it between our query and our claim.
                    skipped += 1
                    continue
                try:
                    message = outcome_email_build(baby=baby, prediction=prediction, email=email)
                except Exception as error:  # a bug for this baby; the others may be fine
                    failed += 1
                    services.outcome_request_release(outcome_request=claim, error=describe(error))
                    self.stderr.write(
                        f"failed: baby {baby.pk}: could not build the e-mail: {describe(error)}"
                    )
                    continue
                try:
                    # A connection per message: a server that drops long connections or caps
                    # messages per connection cannot stop the batch half-way.
                    message.send(fail_silently=False)
                except smtplib.SMTPRecipientsRefused as error:
                    refused += 1
                    services.outcome_request_release(
                        outcome_request=claim, error=describe(error), recipient_refused=True
                    )
                    left = max(OutcomeRequest.MAX_ATTEMPTS - claim.attempts - 1, 0)
                    self.stderr.write(
                        f"refused: baby {baby.pk} (user {baby.owner_id}): the recipient's server refused "
                        f"the address: {describe(error)} ({left} attempt(s) left)"
                    )
                    continue
                except Exception as error:  # OSError (refused, timeout, reset) and SMTPException
                    services.outcome_request_release(outcome_request=claim, error=describe(error))
                    reason = describe(error)
                    if isinstance(error, TimeoutError) or "timed out" in reason:
                        reason += f" (no answer within EMAIL_TIMEOUT, {settings.EMAIL_TIMEOUT:g} s)"
                    raise SMTPUnavailable(reason) from error
                services.outcome_request_mark_sent(outcome_request=claim)
                sent += 1
                if options["verbosity"] >= 2:
                    self.stdout.write(f"sent: baby {baby.pk} (user {baby.owner_id})")
        except SMTPUnavailable as error:
            raise CommandError(
                f"The SMTP server ({settings.EMAIL_HOST}:{settings.EMAIL_PORT}) could not take mail: "
                f"{error}. "
                f"Stopped after {sent} sent; {waiting + 1} waiting e-mail(s) were not sent and are "
                "tried on the next run. No attempt was counted against their recipients."
            ) from error

        summary = (
            f"Outcome e-mails: {sent} sent, {refused + failed} failed, "
            f"{skipped} skipped (claimed by another run)."
        )
        if refused or failed:
            raise CommandError(
                summary + f" {refused} refused by the recipient's server, {failed} could not be built; "
                "both are retried on the next run."
            )
        self.stdout.write(summary)

    def _dry_run(self, babies) -> None:
        for baby in babies:
            prediction = selectors.prediction_latest_for_baby(baby=baby)
            self.stdout.write(
                f"would send: baby {baby.pk}, due {baby.due_date:%Y-%m-%d}, to user {baby.owner_id}, "
                f"prediction {prediction.pk}"
            )
        given_up = OutcomeRequest.objects.filter(
            sent_at__isnull=True, attempts__gte=OutcomeRequest.MAX_ATTEMPTS
        ).count()
        if given_up:
            self.stdout.write(
                f"Not listed: {given_up} outcome e-mail(s) given up after {OutcomeRequest.MAX_ATTEMPTS} "
                "refusals of the address; staff can retry them from the babies admin."
            )
        self.stdout.write(f"Dry run: {len(babies)} outcome e-mail(s) would be sent; nothing was sent.")
