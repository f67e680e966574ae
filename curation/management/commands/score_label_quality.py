"""Score every labelled baby by how strongly the active model disagrees with its label.

Confident learning's starting point: a baby the model, calibrated, is sure is of the other sex
(all its scans combined, as its prediction combines them) is more likely to carry a wrong label
(a parent's slip, a swapped upload) than one it agrees with. The scores are stored
(``curation.LabelQualityScore``, on every scan) and the review queue shows the likely label
errors first, a baby's scans together. Run it after activating a model or after a batch of new outcomes;
running it again just refreshes the scores, and two runs at once write the same values.
"""

from django.core.management.base import BaseCommand, CommandError

from curation.services import label_quality_score
from predictions.inference import ModelLoadError, NoActiveModelError


class Command(BaseCommand):
    help = "Score labelled scans by the active model's disagreement with their label."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=64, help="Scans per model call (default 64).")
        parser.add_argument("--dry-run", action="store_true", help="Run the model but store nothing.")

    def handle(self, *args, batch_size: int, dry_run: bool, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        try:
            result = label_quality_score(batch_size=batch_size, dry_run=dry_run)
        except NoActiveModelError:
            raise CommandError(
                "No model version is active: activate one first (manage.py activate_model)."
            ) from None
        except ModelLoadError as error:
            raise CommandError(str(error)) from error
        versions = ", ".join(f"#{pk}" for pk in sorted(result.model_versions)) or "none"
        prefix = "Dry run: would have scored" if dry_run else "Scored"
        self.stdout.write(
            f"{prefix} {result.scored} labelled scans of {result.babies} babies with model version "
            f"{versions}: {result.likely_errors} likely label errors (babies), {result.failed} unreadable, "
            f"{result.removed} stale scores {'to remove' if dry_run else 'removed'}."
        )
        if result.failed and not result.scored:
            raise CommandError("No scan could be read.")
