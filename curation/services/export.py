"""Exporting a frozen training set to a folder in the layout and manifest ``train_model`` reads."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError

from curation.models import TrainingSet, training_storage
from ml.records import MANIFEST_NAME, SEX_LABELS

MANIFEST_COLUMNS = [
    "path",
    "split",
    "sex",
    "label",
    "baby_key",
    "scan_index",
    "gestational_week",
    "sha256",
    "label_source",
    "scan_key",
    "item_id",
]


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    manifest: Path
    exported: int
    erased: int


def training_set_export(*, training_set: TrainingSet, directory: str | Path) -> ExportResult:
    """Write ``<directory>/<split>/<sex>/<baby_key>_<scan_key>.jpg`` and ``manifest.csv``.

    The manifest is the format ``train_model`` reads (``ml.records``), paths
    relative to ``directory``. The folder must be new or empty, so an export never mixes
    with an older one. Items erased at a parent's request are left out and counted.
    """
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ValidationError(f"{directory} is not an empty folder; choose a new one.", code="not_empty")
    directory.mkdir(parents=True, exist_ok=True)
    storage = training_storage()
    rows = []
    erased = 0
    scan_index: Counter[str] = Counter()
    for item in training_set.items.order_by("split", "baby_key", "id"):
        if item.erased_at is not None or not item.image:
            erased += 1
            continue
        relative = Path(item.split) / item.sex / f"{item.baby_key}_{item.scan_key}.jpg"
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with storage.open(item.image.name, "rb") as source, target.open("wb") as destination:
            shutil.copyfileobj(source, destination)
        rows.append(
            {
                "path": relative.as_posix(),
                "split": item.split,
                "sex": item.sex,
                "label": SEX_LABELS[item.sex],
                "baby_key": item.baby_key,
                "scan_index": scan_index[item.baby_key],
                "gestational_week": "" if item.gestational_week is None else item.gestational_week,
                "sha256": item.image_sha256,
                "label_source": item.label_source,
                "scan_key": item.scan_key,
                "item_id": item.pk,
            }
        )
        scan_index[item.baby_key] += 1
    manifest = directory / MANIFEST_NAME
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (directory / "training_set.json").write_text(
        json.dumps(
            {
                "training_set": training_set.pk,
                "created_at": training_set.created_at.isoformat(),
                "note": training_set.note,
                "label_sources": training_set.label_sources,
                "split_seed": training_set.split_seed,
                "content_digest": training_set.content_digest,
                "class_counts": training_set.class_counts,
                "split_counts": training_set.split_counts,
                "exported_items": len(rows),
                "erased_items": erased,
                "data_card": training_set.data_card,
            },
            indent=2,
        )
    )
    return ExportResult(directory=directory, manifest=manifest, exported=len(rows), erased=erased)
