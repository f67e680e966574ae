"""One training run, recorded: what ``train_model`` and ``ensure_demo_model`` share.

``load_folder`` reads a folder with ``manifest.csv`` (the generator's or an exported training
set's); ``train_and_record`` runs the pipeline (``predictions.training.pipeline``) and stores the
result as an inactive ModelVersion; ``report_lines`` and ``summary_line`` are what the commands
print. Like the rest of this package it is imported by training commands and benchmarks only.
"""

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError

from ml.evaluation import risk_coverage_row
from ml.records import TrainingRecord, read_manifest, records_digest
from ml.synthetic import DATASET_INFO_NAME
from predictions.evaluation_set import fixed_evaluation_set
from predictions.services import model_version_create


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
    measured = version.measured
    baby = measured.headline
    low, high = baby.get("accuracy_ci95") or [None, None]
    # Just measured under the rule in force (the training command passes the settings).
    row = risk_coverage_row(measured.evaluation or {}, settings.PREDICTION_ABSTAIN_MARGIN)
    answers = (
        f"; answers {_percent(row['coverage'])} of babies, {_percent(row['accuracy_answered'])} "
        f"right, the declined ones {_percent(row['accuracy_if_forced_on_cannot_tell'])} "
        f"(margin {row['margin']:.2f})"
        if row
        else ""
    )
    interval = f" (95% CI {_percent(low)}–{_percent(high)})" if low is not None else ""
    ceiling = measured.bayes_ceiling_per_baby
    ceiling_text = f", ceiling {_percent(ceiling)}" if ceiling else ""
    ece = baby.get("ece")
    ece_text = f", per-baby ECE {ece:.3f}" if ece is not None else ""
    return (
        f"Model version #{version.pk} {version.name!r} recorded ({state}"
        f"{', SYNTHETIC data' if version.is_synthetic else ''}): per-baby accuracy "
        f"{_percent(baby.get('accuracy'))}{interval} on {baby.get('count')} babies of the "
        f"{measured.evaluation_set_name}{ceiling_text}{ece_text}{answers}; {seconds:.0f} s in all."
    )
