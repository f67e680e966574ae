"""Coverage and accuracy on the answered babies for a grid of "cannot tell" settings.

Runs a model version's ``.tflite`` (the active one, or ``--version``) with LiteRT on the test
split of a data folder (a manifest, e.g. the demo's synthetic data), then applies the one shared
rule (``ml.abstention``, after gating by gestational week) for every margin and
disagreement threshold, and prints coverage / accuracy on answered babies for each. This is the
table to choose ``PREDICTION_ABSTAIN_MARGIN`` and ``PREDICTION_DISAGREEMENT_THRESHOLD`` from;
train_model records the row for the configured values.

    DATABASE_URL=sqlite:////tmp/demo8/db.sqlite3 MEDIA_ROOT=/tmp/demo8/media \\
        .venv/bin/python bench/abstention.py --data /tmp/demo8/demo-data

``--smoke`` needs no database or model of yours: in a throwaway database and folder (see
``bench/benchsetup.py``) it trains a tiny demo model (60/20/20 synthetic babies, 1 epoch, in a
child process with ``manage.py train_model``) and prints the table for it on that data's test
split. It only checks that the script runs end to end (under a minute); the figures mean little.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.benchsetup import configure_django, train_small_demo_model  # noqa: E402

MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25)
THRESHOLDS = (None, 0.4, 0.3, 0.2)
SMOKE_BABIES = {"train": 60, "val": 20, "test": 20}
SMOKE_EVALUATION_BABIES = 60


def _percent(value: float | None) -> str:
    """A share as a percentage; "n/a" when no baby was answered."""
    return "n/a" if value is None else f"{value:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, help="Folder with manifest.csv (its test split).")
    parser.add_argument("--version", type=int, help="Model version id (default: the active one).")
    parser.add_argument("--min-week", type=int, help="Default: PREDICTION_MIN_GESTATIONAL_WEEK.")
    parser.add_argument("--smoke", action="store_true", help="A tiny model in a throwaway database.")
    args = parser.parse_args()
    if args.smoke:
        with tempfile.TemporaryDirectory(prefix="bench-abstention-") as tmp:
            workdir = Path(tmp)
            os.environ["MODEL_EVALUATION_BABIES"] = str(SMOKE_EVALUATION_BABIES)
            configure_django(workdir)
            version = train_small_demo_model(
                workdir, babies=SMOKE_BABIES, epochs=1, name="Synthetic model (abstention smoke)"
            )
            table(workdir / "demo-data", version.pk, args.min_week)
        return
    if args.data is None:
        parser.error("--data is required (or --smoke)")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "instagender.settings")
    import django

    django.setup()
    table(args.data, args.version, args.min_week)


def table(data: Path, version_id: int | None, min_week: int | None) -> None:
    import numpy as np
    from django.conf import settings

    from ml import metrics
    from ml.litert import LiteRTModel
    from ml.preprocessing import preprocess_batch
    from ml.records import read_manifest
    from predictions.models import ModelVersion

    min_week = settings.PREDICTION_MIN_GESTATIONAL_WEEK if min_week is None else min_week
    versions = ModelVersion.objects.all()
    version = versions.get(pk=version_id) if version_id else versions.active().get()
    records = [record for record in read_manifest(data) if record.split == "test"]
    spec = version.get_input_spec()
    with version.tflite_file.open("rb") as handle:
        runner = LiteRTModel(handle.read(), num_threads=settings.INFERENCE_NUM_THREADS)
    logits = np.concatenate(
        [
            runner.logits(preprocess_batch([r.source() for r in records[start : start + 256]], spec))
            for start in range(0, len(records), 256)
        ]
    )
    calibrated = logits.astype(np.float64) / version.temperature
    labels = np.array([record.label for record in records])
    keys = [record.baby_key for record in records]
    weeks = [record.gestational_week for record in records]
    babies = len(set(keys))
    print(f"{version} on {babies} test babies of {data} (scans before week {min_week} left out).")
    print("coverage / accuracy on answered babies; rows: disagreement threshold, columns: margin")
    print(" " * 14 + "".join(f"{margin:>16.2f}" for margin in MARGINS))
    for threshold in THRESHOLDS:
        report = metrics.abstention_report(
            labels=labels,
            calibrated_logits=calibrated,
            baby_keys=keys,
            weeks=weeks,
            min_gestational_week=min_week,
            margin=MARGINS[0],
            stricter_margin=MARGINS[-1],
            disagreement_threshold=threshold,
            margins=MARGINS,
        )
        cells = "".join(
            f"{row['coverage']:>8.1%} / {_percent(row['accuracy_answered']):>5}"
            for row in report["by_margin"]
        )
        label = "off" if threshold is None else f"{threshold:.2f}"
        disagree = report["by_margin"][0]["cannot_tell_scans_disagree"]
        forced = report["by_margin"][0]["accuracy_if_forced_on_cannot_tell"]
        print(f"  d = {label:<8}{cells}")
        if threshold is not None:
            right = "n/a" if forced is None else f"{forced:.0%}"
            print(f"{'':14}(disagreement alone declines {disagree} babies; forced, {right} of them right)")


if __name__ == "__main__":
    main()
