"""Train a model on a folder of scans, evaluate it on held-out babies, export and record it.

The folder holds ``manifest.csv`` (path, label or sex, baby_key, optionally split and
gestational_week): the synthetic generator writes one, and a curated TrainingSet exported to a
folder does too. Babies are split (or the manifest's splits kept) so that no baby is in two
splits; the model is trained with early stopping on validation loss, a temperature is fitted on
validation, metrics are computed on test, and the ``.keras`` and ``.tflite`` files must agree on
every test scan. The result is a new, inactive ModelVersion (``--activate`` to use it at once).

    manage.py train_model --data var/synthetic --max-minutes 8 --activate
    manage.py train_model --training-set 3      # a frozen curation TrainingSet, by id

A training set is exported to a temporary folder with curation's exporter (the same files and
manifest ``export_training_set`` writes), trained on like any folder, and linked to the version.

TensorFlow is imported only when the command runs.
"""

import tempfile
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ml.records import ManifestError
from predictions.services import ModelGateError, model_version_activate
from predictions.training.runs import TrainingData, load_folder, summary_line, train_and_record


class Command(BaseCommand):
    help = "Train, evaluate on held-out babies, export .keras + .tflite, and record a ModelVersion."

    def add_arguments(self, parser):
        parser.add_argument("--data", type=Path, help="Folder with manifest.csv.")
        parser.add_argument(
            "--training-set", type=int, help="Train on this frozen curation TrainingSet (its id) instead."
        )
        parser.add_argument("--name", default="", help="The version's name (default: architecture + date).")
        parser.add_argument("--architecture", default="small_cnn")
        parser.add_argument(
            "--image-size", type=int, help="Input size in pixels (default: the architecture's)."
        )
        parser.add_argument("--weights", help="Local backbone weights file (nothing is ever downloaded).")
        parser.add_argument("--epochs", type=int, default=12)
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--learning-rate", type=float, default=2e-3, help="The peak, after warm-up.")
        parser.add_argument("--warmup-epochs", type=int, default=1)
        parser.add_argument(
            "--patience",
            type=int,
            default=4,
            help="Epochs without a better val loss, counted once the model beats chance.",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--max-minutes", type=float, help="Stop fitting after this long (best weights kept)."
        )
        parser.add_argument("--val-fraction", type=float, default=0.15)
        parser.add_argument("--test-fraction", type=float, default=0.2)
        parser.add_argument("--no-augment", action="store_true")
        parser.add_argument("--output-dir", type=Path, help="Also keep the files here (default: a temp dir).")
        parser.add_argument("--activate", action="store_true", help="Activate the new version.")

    def load_training_data(self, options) -> TrainingData:
        if (options["data"] is None) == (options.get("training_set") is None):
            raise CommandError("Give either --data FOLDER or --training-set ID.")
        try:
            if options.get("training_set") is not None:
                return self.load_training_set(options["training_set"])
            return load_folder(options["data"])
        except ManifestError as exc:
            raise CommandError(str(exc)) from exc

    def load_training_set(self, training_set_id: int) -> TrainingData:
        """Export a frozen TrainingSet to a temporary folder (removed when the command ends)."""
        from curation.models import TrainingSet
        from curation.services import training_set_export

        self.training_set = TrainingSet.objects.filter(pk=training_set_id).first()
        if self.training_set is None:
            raise CommandError(f"There is no training set {training_set_id}.")
        exported = training_set_export(training_set=self.training_set, directory=self.export_dir)
        data = load_folder(self.export_dir)
        erased = f", {exported.erased} erased at parents' request" if exported.erased else ""
        babies = len({record.baby_key for record in data.records})
        scans = f"{exported.exported} scans of {babies} babies{erased}"
        synthetic_items = self.training_set.items.filter(is_synthetic=True).count()
        data.has_synthetic_images = synthetic_items > 0
        synthetic = f"; {synthetic_items} synthetic images" if synthetic_items else ""
        data.description = f"curated training set {self.training_set.pk}: {scans}{synthetic}"
        return data

    def handle(self, *args, **options):
        self.training_set = None
        # A training set is exported in here; the folder lives until training has finished.
        with tempfile.TemporaryDirectory(prefix="instagender-training-set-") as export_dir:
            self.export_dir = Path(export_dir)
            self._handle(**options)

    def _handle(self, **options):
        started = time.monotonic()
        data = self.load_training_data(options)
        self.stdout.write(f"Training data: {data.description} (digest {data.digest[:12]}…).")
        version = train_and_record(
            data,
            options=options,
            log=self.stdout.write,
            name=options["name"],
        )
        if self.training_set is not None:
            version.training_set = self.training_set
            version.save(update_fields=["training_set"])
        refused = None
        if options["activate"]:
            try:
                version = model_version_activate(
                    model_version=version, reason="manage.py train_model --activate"
                )
            except ModelGateError as exc:
                refused = exc
        self.stdout.write(self.style.SUCCESS(summary_line(version, time.monotonic() - started)))
        if refused is not None:
            raise CommandError(
                f"Version #{version.pk} was recorded but {refused} "
                f"(`manage.py activate_model {version.pk} --override-gate --reason ...` overrides it)."
            )
