"""Write the model-ready derivative (``Scan.model_input``) of every scan stored before it existed.

A prediction reads each scan's small greyscale derivative instead of decoding the full JPEG (on
12 MP phone photos that decoding was nine tenths of a Predict request). Scans uploaded since the
derivative exists have one; older ones fall back to the JPEG, correct but slow, until this runs
once after the upgrade. Idempotent and safe to run concurrently (``scan_model_input_create``
claims each row); a scan whose JPEG is missing or unreadable is reported and makes the command
exit non-zero, the others are still done.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from babies.models import Scan
from babies.services import scan_model_input_create
from ml.preprocessing import PreprocessingError


class Command(BaseCommand):
    help = "Write the model-ready derivative of scans that have none (--dry-run counts them)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count the scans; write nothing.")

    def handle(self, *args, dry_run: bool = False, **options):
        pending = Scan.objects.filter(model_input="").order_by("pk")
        if dry_run:
            self.stdout.write(f"Dry run: {pending.count()} scan(s) have no model input; nothing was written.")
            return
        written = skipped = failed = 0
        for scan in pending.only("pk", "image", "model_input").iterator(chunk_size=200):
            try:
                if scan_model_input_create(scan=scan):
                    written += 1
                else:
                    skipped += 1
            except (OSError, PreprocessingError) as exc:
                failed += 1
                self.stderr.write(f"scan {scan.pk}: {scan.image.name} could not be read ({exc})")
        self.stdout.write(f"{written} model input(s) written, {skipped} already done, {failed} failed.")
        if failed:
            raise CommandError(f"{failed} scan(s) could not be given a model input; see above.")
