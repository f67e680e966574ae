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
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ml.evaluation import risk_coverage_row
from ml.records import ManifestError, TrainingRecord, read_manifest, records_digest
from ml.synthetic import DATASET_INFO_NAME
from predictions.evaluation_set import fixed_evaluation_set
from predictions.services import ModelGateError, model_version_activate, model_version_create


@dataclass
class TrainingData:
    records: list[TrainingRecord]
    description: str
    digest: str
    synthetic_info: dict | None
    # Generated images (a synthetic folder, or a training set whose scans are synthetic): the
    # version is recorded and shown as synthetic, and measured on the fixed synthetic set.
    has_synthetic_images: bool = False


def load_folder(folder: Path) -> TrainingData:
    """Records from ``folder/manifest.csv``; synthetic if the generator's info file is there."""
    import json

    records = read_manifest(folder)
    info_path = folder / DATASET_INFO_NAME
    synthetic_info = json.loads(info_path.read_text()) if info_path.is_file() else None
    babies = len({record.baby_key for record in records})
    kind = "synthetic " if synthetic_info else ""
    return TrainingData(
        records=records,
        description=f"{kind}folder {folder.resolve()}: {len(records)} scans of {babies} babies",
        digest=records_digest(records),
        synthetic_info=synthetic_info,
        has_synthetic_images=synthetic_info is not None,
    )


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


def train_and_record(
    data: TrainingData, *, options: dict, log, name: str = "", is_synthetic: bool | None = None
):
    """Run the training pipeline and store its result as a ModelVersion (shared with the demo)."""
    from predictions.training.export import ParityError
    from predictions.training.pipeline import TrainingError, TrainingOptions, train_and_export

    training_options = TrainingOptions(
        architecture=options["architecture"],
        image_size=options.get("image_size"),
        epochs=options["epochs"],
        batch_size=options["batch_size"],
        learning_rate=options["learning_rate"],
        warmup_epochs=options.get("warmup_epochs", 1),
        patience=options["patience"],
        seed=options["seed"],
        max_minutes=options.get("max_minutes"),
        val_fraction=options["val_fraction"],
        test_fraction=options["test_fraction"],
        weights_path=options.get("weights"),
        augment=not options.get("no_augment", False),
        # The rule parents get, so the recorded coverage and accuracy describe it.
        min_gestational_week=settings.PREDICTION_MIN_GESTATIONAL_WEEK,
        abstain_margin=settings.PREDICTION_ABSTAIN_MARGIN,
        disagreement_threshold=settings.PREDICTION_DISAGREEMENT_THRESHOLD,
    )
    synthetic = data.has_synthetic_images if is_synthetic is None else is_synthetic
    with tempfile.TemporaryDirectory(prefix="instagender-train-") as temporary:
        output_dir = options.get("output_dir") or Path(temporary)
        try:
            outcome = train_and_export(
                data.records,
                options=training_options,
                output_dir=output_dir,
                synthetic_info=data.synthetic_info,
                # Synthetic images are measured on the fixed synthetic set; real ones on their
                # own held-out test babies until a curated evaluation set exists.
                evaluation_set=fixed_evaluation_set() if synthetic else None,
                log=log,
            )
        except (TrainingError, ParityError) as exc:
            raise CommandError(str(exc)) from exc
        log(report_lines(outcome.metrics))
        stamp = time.strftime("%Y-%m-%d %H:%M")
        return model_version_create(
            name=name or f"{'Synthetic ' if synthetic else ''}{training_options.architecture} {stamp}",
            architecture=training_options.architecture,
            input_spec=outcome.input_spec,
            temperature=outcome.temperature,
            baby_calibration=outcome.baby_calibration.to_dict(),
            keras_path=outcome.keras_path,
            tflite_path=outcome.tflite_path,
            plot_paths=outcome.plot_paths,
            metrics=outcome.metrics,
            training_parameters=outcome.parameters,
            training_data_digest=data.digest,
            training_data_description=data.description,
            is_synthetic=synthetic,
        )


def _percent(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def report_lines(report: dict) -> str:
    scan, baby = report["calibrated"]["per_scan"], report["calibrated"]["per_baby"]
    lines = [
        f"Held-out test: {scan['count']} scans of {baby['count']} babies.",
        f"  per scan: accuracy {_percent(scan['accuracy'])} "
        f"(95% CI {_percent(scan['accuracy_ci95'][0])}–{_percent(scan['accuracy_ci95'][1])}), "
        f"AUC {scan['roc_auc']:.3f}, Brier {scan['brier']:.4f}",
        f"  per baby: accuracy {_percent(baby['accuracy'])} "
        f"(95% CI {_percent(baby['accuracy_ci95'][0])}–{_percent(baby['accuracy_ci95'][1])}), "
        f"AUC {baby['roc_auc']:.3f}, Brier {baby['brier']:.4f}",
        f"  calibration: T = {report['temperature']:.3f}, ECE {report['ece_before_calibration']:.4f} before, "
        f"{report['ece_after_calibration']:.4f} after",
        f"  confusion (rows truth female/male, columns predicted): {scan['confusion_matrix']}",
    ]
    if "per_scan_accuracy_by_week" in report["calibrated"]:
        weeks = report["calibrated"]["per_scan_accuracy_by_week"]
        lines.append(
            "  by gestational week: " + ", ".join(f"{w}: {_percent(v['accuracy'])}" for w, v in weeks.items())
        )
    lines.extend(_abstention_lines(report))
    lines.extend(_week_band_lines(report))
    lines.extend(evaluation_lines(report.get("evaluation")))
    if "bayes" in report:
        bayes = report["bayes"]
        line = (
            f"  Bayes ceiling: {_percent(bayes['ceiling_per_scan'])} per scan, "
            f"{_percent(bayes['ceiling_per_baby'])} per baby ({bayes['scans_per_baby']} scans)"
        )
        if "ceiling_per_baby_equal_weights" in bayes:
            line += f", {_percent(bayes['ceiling_per_baby_equal_weights'])} with equal weights (no week)"
        if "oracle_on_test" in bayes:
            oracle = bayes["oracle_on_test"]
            line += (
                f"; the Bayes rule on these test babies: {_percent(oracle['per_scan_accuracy'])} per scan, "
                f"{_percent(oracle['per_baby_accuracy'])} per baby"
            )
        lines.append(line)
    parity = report["parity"]
    lines.append(
        f"  .keras vs .tflite on {parity['scans']} test scans: "
        f"max |Δp| = {parity['max_probability_difference']:.2e} (allowed {parity['tolerance']:.0e})"
    )
    return "\n".join(lines)


def _abstention_lines(report: dict) -> list[str]:
    """Coverage and accuracy on the answered babies: what parents actually get."""
    abstention = report.get("abstention")
    if not abstention:
        return []
    threshold = abstention["disagreement_threshold"]
    disagreement = "" if threshold is None else f", scans disagreeing at ±{threshold:.2f}"
    lines = [
        f"  answers per baby (scans before week {abstention['min_gestational_week']} left out"
        f"{disagreement}; "
        f"{abstention['babies_considered']} babies, {abstention['babies_without_usable_scans']} too early), "
        f"accuracy if always answered {_percent(abstention['accuracy_if_always_answered'])}:"
    ]
    for key in ("at_margin", "at_stricter_margin"):
        row = abstention[key]
        low, high = row["accuracy_answered_ci95"]
        interval = f" (95% CI {_percent(low)}–{_percent(high)})" if row["answered"] else ""
        lines.append(
            f"    cannot-tell margin {row['margin']:.2f}: coverage {_percent(row['coverage'])}, "
            f"accuracy on answered {_percent(row['accuracy_answered'])}{interval}; "
            f"cannot tell: {row['cannot_tell_uncertain']} uncertain, "
            f"{row['cannot_tell_scans_disagree']} scans disagree"
        )
    lines.append(
        "    by margin: "
        + ", ".join(
            f"{row['margin']:.2f} → {_percent(row['coverage'])} / {_percent(row['accuracy_answered'])}"
            for row in abstention["by_margin"]
        )
        + " (coverage / accuracy on answered)"
    )
    return lines


def _interval(values) -> str:
    return f" (95% CI {_percent(values[0])}–{_percent(values[1])})" if values else ""


def _ece_interval(values) -> str:
    return f" (95% CI {values[0]:.4f}–{values[1]:.4f})" if values else ""


def evaluation_lines(evaluation: dict | None) -> list[str]:
    """The headline: per baby on the evaluation babies, with bootstrap intervals over babies."""
    if not evaluation:
        return []
    baby, scan = evaluation["per_baby"], evaluation["per_scan"]
    identity = evaluation.get("set") or {}
    seed = f", seed {identity['seed']}" if "seed" in identity else ""
    lines = [
        f"  evaluation on the {identity.get('name', 'evaluation babies')}{seed}: {baby['count']} babies "
        f"({evaluation['babies_without_usable_scans']} with only early scans left out), "
        f"{scan['count']} scans",
        f"    per baby: accuracy {_percent(baby['accuracy'])}{_interval(baby['accuracy_ci95'])}, "
        f"AUC {baby['roc_auc']:.3f}, ECE {baby['ece']:.4f}{_ece_interval(baby.get('ece_ci95'))}, "
        f"ECE of the plain mean {baby['ece_plain_mean']:.4f}",
        f"    per scan: accuracy {_percent(scan['accuracy'])}{_interval(scan['accuracy_ci95'])} "
        "(interval over babies)",
    ]
    rows = (evaluation.get("abstention") or {}).get("by_margin") or []
    shown = [row for row in rows if round(row["margin"] * 100) % 5 == 0]
    lines.append(
        "    risk–coverage (margin → coverage / right when answered / right when declined): "
        + ", ".join(
            f"{row['margin']:.2f} → {_percent(row['coverage'])} / {_percent(row['accuracy_answered'])} / "
            f"{_percent(row['accuracy_if_forced_on_cannot_tell'])}"
            for row in shown
        )
    )
    return lines


def _week_band_lines(report: dict) -> list[str]:
    week_bands = report.get("week_bands")
    if not week_bands or not week_bands["bands"]:
        return []
    ceilings = report.get("bayes", {}).get("ceiling_per_scan_by_week_band", {})
    parts = []
    for name, band in week_bands["bands"].items():
        ceiling = f", ceiling {_percent(ceilings[name])}" if name in ceilings else ""
        usable = band["usable_share"]
        used = "" if usable == 1 else f", used for predictions {_percent(usable)}"
        parts.append(
            f"    {name:>7}: {band['count']} scans, accuracy {_percent(band['accuracy'])}{ceiling}, "
            f"ECE {band['ece']:.3f}, confidence {_percent(band['mean_confidence'])}, "
            f"coverage {_percent(band['coverage'])}{used}"
        )
    return [f"  by gestational-week band (per scan, coverage at margin {week_bands['margin']:.2f}):", *parts]


def summary_line(version, seconds: float) -> str:
    """One line a person reads after `make run`: the headline figures on the evaluation babies."""
    state = "active" if version.is_active else "inactive"
    evaluation = version.metrics.get("evaluation") or {}
    baby = evaluation.get("per_baby") or version.metrics["calibrated"]["per_baby"]
    low, high = baby.get("accuracy_ci95") or [None, None]
    where = (evaluation.get("set") or {}).get("name", "held-out test set")
    ece = baby.get("ece")
    answered = risk_coverage_row(evaluation, settings.PREDICTION_ABSTAIN_MARGIN) if evaluation else None
    answers = (
        f"; answers {_percent(answered['coverage'])} of babies, {_percent(answered['accuracy_answered'])} "
        f"right, the declined ones {_percent(answered['accuracy_if_forced_on_cannot_tell'])} "
        f"(margin {answered['margin']:.2f})"
        if answered
        else ""
    )
    interval = f" (95% CI {_percent(low)}–{_percent(high)})" if low is not None else ""
    ceiling = (version.metrics.get("bayes") or {}).get("ceiling_per_baby")
    ceiling_text = f", ceiling {_percent(ceiling)}" if ceiling else ""
    ece_text = f", per-baby ECE {ece:.3f}" if ece is not None else ""
    return (
        f"Model version #{version.pk} {version.name!r} recorded ({state}"
        f"{', SYNTHETIC data' if version.is_synthetic else ''}): per-baby accuracy "
        f"{_percent(baby.get('accuracy'))}{interval} on {baby.get('count')} babies of the {where}"
        f"{ceiling_text}"
        f"{ece_text}{answers}; {seconds:.0f} s in all."
    )
