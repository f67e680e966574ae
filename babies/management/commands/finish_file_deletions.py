"""Finish the file deletions the ledger still holds (``babies.FileDeletion``); run it from cron.

A deleted scan, baby or account records its files in the ledger in the same transaction and
removes them at once; this command is for the ones the storage refused at that moment (read-only,
full, unreachable) and for uploads whose row never committed (a killed worker), once their
reservation is an hour old. A file that a row still uses is never deleted (a reservation whose
row did commit just closes). Safe to run twice and concurrently: each entry is claimed before
it is worked on. Exits non-zero while a deletion keeps failing, so cron shows it.
"""

from __future__ import annotations

import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from babies import files
from babies.models import FileDeletion

KEEP_FINISHED = datetime.timedelta(days=90)


class Command(BaseCommand):
    help = "Delete the files the ledger of file deletions still holds (retries; --dry-run lists them)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="List what is due; delete nothing.")

    def handle(self, *args, dry_run: bool = False, **options):
        due = FileDeletion.objects.filter(done_at__isnull=True, due_at__lte=timezone.now())
        if dry_run:
            for entry in due:
                error = f", last error: {entry.last_error}" if entry.last_error else ""
                self.stdout.write(
                    f"would delete: {entry.storage}/{entry.name} ({entry.get_reason_display()}, "
                    f"{entry.attempts} attempt(s){error})"
                )
            self.stdout.write(f"Dry run: {due.count()} file deletion(s) due; nothing was deleted.")
            return
        result = files.deletions_process()
        now = timezone.now()
        waiting = FileDeletion.objects.filter(done_at__isnull=True, due_at__gt=now).count()
        # Finished entries are kept a while for staff to look back on, then dropped.
        pruned, _ = FileDeletion.objects.filter(done_at__lt=now - KEEP_FINISHED).delete()
        self.stdout.write(
            f"File deletions: {result.removed} removed, {result.kept} kept (a row uses them), "
            f"{result.failed} failed (retried next run), {waiting} upload reservation(s) not due yet, "
            f"{pruned} finished entr(ies) older than {KEEP_FINISHED.days} days dropped."
        )
        if result.failed:
            raise CommandError(f"{result.failed} file(s) could not be deleted; see the ledger in the admin.")
