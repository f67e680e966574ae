"""Ask parents, a week after the due date, whether the prediction was right.

The original Flask app did this in ``scheduled()``.

Run it from cron, e.g. every hour. Each baby that is not deleted, has no confirmed sex, has a
prediction, was due at least ``OUTCOME_EMAIL_DELAY_DAYS`` ago and whose parent's address is
verified gets one e-mail with two signed links ("yes, it was right" / "no").

Exactly once: before sending, a run claims the baby's ``OutcomeRequest`` with one conditional
UPDATE and only the run whose UPDATE touched the row sends, so two copies running at once never
send twice, and a re-run skips what was sent. A failed send gives the claim back and the next run
retries (up to ``OutcomeRequest.MAX_ATTEMPTS`` times); the command then exits non-zero, so cron
reports it.

The trade-off: sending and recording cannot be one transaction with an SMTP server. A run that
dies *after* the server accepted the message but *before* it recorded ``sent_at`` leaves a claim,
and that claim expires after ``OutcomeRequest.CLAIM_EXPIRY`` (an hour) so the baby is retried:
that one crash, in a window of milliseconds, can mean a second e-mail. The alternative (marking
it sent before sending) would lose the e-mail for good on every crash or SMTP failure instead.
Concurrency and re-runs, the common cases, never send twice; a live run never loses its claim,
because one send takes seconds and the claim lasts an hour.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from predictions import selectors, services
from predictions.emails import outcome_email_build
from predictions.models import OutcomeRequest


class Command(BaseCommand):
    help = "Send the outcome e-mails that are due (safe to run concurrently; --dry-run lists them)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="List what would be sent; send nothing.")

    def handle(self, *args, dry_run: bool = False, **options):
        babies = list(selectors.babies_due_outcome_email())
        if dry_run:
            for baby in babies:
                prediction = selectors.prediction_latest_for_baby(baby=baby)
                self.stdout.write(
                    f"would send: baby {baby.pk} ({baby.display_name}), due {baby.due_date:%Y-%m-%d}, "
                    f"to {baby.owner.email}, prediction {prediction.pk}"
                )
            self.stdout.write(f"Dry run: {len(babies)} outcome e-mail(s) would be sent; nothing was sent.")
            return

        sent = failed = skipped = 0
        for baby in babies:
            prediction = selectors.prediction_latest_for_baby(baby=baby)
            email = baby.owner.email
            claim = services.outcome_request_claim(baby=baby, prediction=prediction, email=email)
            if claim is None:
                # Another run holds it or sent it between our query and our claim.
                skipped += 1
                continue
            try:
                message = outcome_email_build(baby=baby, prediction=prediction, email=email)
                message.send(fail_silently=False)
            except Exception as exc:  # SMTP errors are many kinds of OSError and smtplib errors
                failed += 1
                services.outcome_request_release(outcome_request=claim, error=f"{type(exc).__name__}: {exc}")
                attempts_left = OutcomeRequest.MAX_ATTEMPTS - claim.attempts
                self.stderr.write(
                    f"failed: baby {baby.pk} to {email}: {type(exc).__name__}: {exc} "
                    f"({attempts_left} attempt(s) left)"
                )
                continue
            services.outcome_request_mark_sent(outcome_request=claim)
            sent += 1
            if options["verbosity"] >= 2:
                self.stdout.write(f"sent: baby {baby.pk} to {email}")

        summary = (
            f"Outcome e-mails: {sent} sent, {failed} failed, {skipped} skipped (claimed by another run)."
        )
        if failed:
            raise CommandError(summary + " Failed ones are retried on the next run.")
        self.stdout.write(summary)
