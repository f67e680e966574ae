"""Write a frozen training set to a folder that ``train_model`` (or anyone) can read.

Layout: ``<dir>/<split>/<sex>/<baby_key>_<scan_key>.jpg``, ``<dir>/manifest.csv`` (the format
``ml.records.read_manifest`` reads) and ``<dir>/training_set.json`` (the set's
note, counts and content digest). The folder must be new or empty. Reading a set never
changes it, so running this twice into two folders gives identical copies.
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from curation.models import TrainingSet
from curation.services import training_set_export


class Command(BaseCommand):
    help = "Export a frozen training set as <split>/<sex>/*.jpg plus manifest.csv."

    def add_arguments(self, parser):
        parser.add_argument("training_set", type=int, help="The training set's id (see the admin).")
        parser.add_argument("directory", help="A new or empty folder to write into.")

    def handle(self, *args, training_set: int, directory: str, **options):
        try:
            frozen = TrainingSet.objects.get(pk=training_set)
        except TrainingSet.DoesNotExist:
            raise CommandError(f"There is no training set {training_set}.") from None
        try:
            result = training_set_export(training_set=frozen, directory=directory)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        erased = f"; {result.erased} erased at their parents' request were left out" if result.erased else ""
        self.stdout.write(
            f"Exported {result.exported} scans of {frozen} to {result.directory} "
            f"(manifest {result.manifest.name}){erased}."
        )
