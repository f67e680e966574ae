"""Compare every file storage with the rows, both ways; run it from cron (``--dry-run`` lists only).

* **Files without rows** (a caller's transaction rolled back after the files were written, a file
  left by a bug or by hand): deleted through the ledger of file deletions once they are older than
  ``--grace-hours`` (24), so a file whose row is still being committed is never touched. Files the
  ledger already knows (an upload's reservation, a deletion being retried) are left to
  ``finish_file_deletions``.
* **Rows without files**: nothing can bring such a file back from here, so each is logged as an
  error and recorded for staff (admin: "Missing files"); the record closes itself once the file
  is restored or the row deleted. The command exits non-zero while any exist, so cron shows it.

Every ``FileField`` of every installed model is covered, found through the app registry. Safe to
run twice and concurrently (a deletion is claimed before it runs, and a file a row uses is never
deleted).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from babies import files


class Command(BaseCommand):
    help = (
        "Reconcile the file storages with the rows: delete old files without rows, report rows without files."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Report only; change nothing.")
        parser.add_argument(
            "--grace-hours",
            type=float,
            default=files.ORPHAN_GRACE_SECONDS / 3600,
            help="Only files without rows older than this are deleted (default: %(default)s).",
        )

    def handle(self, *args, dry_run: bool = False, grace_hours: float = 24, **options):
        report = files.reconcile(dry_run=dry_run, grace_seconds=int(grace_hours * 3600))
        verb = "would delete" if dry_run else "deleted"
        for alias, name in report.orphans:
            self.stdout.write(f"file without row, {verb}: {alias}/{name}")
        for item in report.missing:
            self.stdout.write(
                f"row without file: {item.model} {item.object_id} field {item.field}"
                f" -> {item.storage}/{item.name}"
            )
        prefix = "Dry run: " if dry_run else ""
        self.stdout.write(
            f"{prefix}{len(report.orphans)} file(s) without rows {verb}"
            + ("" if dry_run else f" ({report.deletions.failed} failed)")
            + f", {report.young_orphans} younger than the grace period left alone, "
            f"{len(report.missing)} row(s) without their file."
        )
        problems = []
        if report.missing and not dry_run:
            problems.append(f"{len(report.missing)} row(s) have lost their file (admin: Missing files)")
        if report.deletions.failed:
            problems.append(f"{report.deletions.failed} file(s) without rows could not be deleted")
        if problems:
            raise CommandError("; ".join(problems) + ".")
