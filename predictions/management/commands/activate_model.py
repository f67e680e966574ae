"""Make one model version the one predictions use (the previous one is deactivated).

manage.py activate_model 7 --reason "better per-baby accuracy"
"""

from django.core.management.base import BaseCommand, CommandError

from predictions.models import ModelVersion
from predictions.services import model_version_activate


class Command(BaseCommand):
    help = "Activate a model version by id."

    def add_arguments(self, parser):
        parser.add_argument("model_version_id", type=int)
        parser.add_argument("--reason", default="", help="Recorded with the activation.")

    def handle(self, *args, **options):
        version = ModelVersion.objects.filter(pk=options["model_version_id"]).first()
        if version is None:
            raise CommandError(f"There is no model version {options['model_version_id']}.")
        previous = ModelVersion.objects.active().exclude(pk=version.pk).first()
        version = model_version_activate(
            model_version=version, reason=options["reason"] or "manage.py activate_model"
        )
        replaced = f" (replacing {previous})" if previous else ""
        self.stdout.write(self.style.SUCCESS(f"Activated {version}{replaced}."))
