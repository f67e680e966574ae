"""Make one model version the one predictions use (the previous one is deactivated).

manage.py activate_model 7 --reason "better per-baby accuracy"
manage.py activate_model 7 --override-gate --reason "rollback while #8 is investigated"

Only a version that passes the quality gate is switched on (``ml.gate``); the
refusal says why. ``--override-gate`` switches it on anyway and needs a ``--reason``, which the
audit log keeps with the gate's verdict.
"""

from django.core.management.base import BaseCommand, CommandError

from predictions.models import ModelVersion
from predictions.services import ModelGateError, model_version_activate


class Command(BaseCommand):
    help = "Activate a model version by id, if it passes the quality gate."

    def add_arguments(self, parser):
        parser.add_argument("model_version_id", type=int)
        parser.add_argument("--reason", default="", help="Recorded with the activation.")
        parser.add_argument(
            "--override-gate",
            action="store_true",
            help="Switch it on even if the quality gate refuses it (needs --reason; audited).",
        )

    def handle(self, *args, **options):
        version = ModelVersion.objects.filter(pk=options["model_version_id"]).first()
        if version is None:
            raise CommandError(f"There is no model version {options['model_version_id']}.")
        if options["override_gate"] and not options["reason"].strip():
            raise CommandError("--override-gate needs a --reason, which the audit log keeps.")
        previous = ModelVersion.objects.active().exclude(pk=version.pk).first()
        try:
            version = model_version_activate(
                model_version=version,
                reason=options["reason"] or "manage.py activate_model",
                override_gate=options["override_gate"],
            )
        except ModelGateError as exc:
            raise CommandError(f"{version}: {exc}") from exc
        replaced = f" (replacing {previous})" if previous else ""
        self.stdout.write(self.style.SUCCESS(f"Activated {version}{replaced}."))
