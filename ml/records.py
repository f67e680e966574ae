"""Training records: what ``train_model`` reads, whatever the data came from.

A folder with a ``manifest.csv`` (the synthetic generator's output, or a curated TrainingSet
exported to a folder) becomes a list of :class:`TrainingRecord`. A record loads its image lazily
(a path, or a callable returning the JPEG's bytes, e.g. from a Django storage), so a data source
that is not a folder only needs to build records.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

SEX_LABELS = {"female": 0, "male": 1}
LABEL_SEXES = {label: sex for sex, label in SEX_LABELS.items()}
# "eval": the fixed evaluation set, which training refuses (it is only ever evaluated on).
SPLITS = ("train", "val", "test", "eval")
MANIFEST_NAME = "manifest.csv"
# path, label (or sex) and baby_key are required; the rest are optional.
MANIFEST_FIELDS = [
    "path",
    "split",
    "sex",
    "label",
    "baby_key",
    "scan_index",
    "gestational_week",
    "latent_angle",
    "measured_angle",
    # Synthetic data only: the overlays burned in ("text", "calipers", "text+calipers" or empty).
    "markers",
    "sha256",
]


class ManifestError(ValueError):
    """A manifest that cannot be trained on; the message names the row."""


@dataclass(frozen=True)
class TrainingRecord:
    """One labelled scan. ``label`` is 1 for male, 0 for female (the network's convention)."""

    image: str | os.PathLike | Callable[[], bytes]
    label: int
    baby_key: str
    gestational_week: int | None = None
    split: str | None = None
    # Synthetic data only: the angle the scan shows, so evaluation can run the Bayes rule.
    measured_angle: float | None = None

    def source(self):
        """Something :func:`ml.preprocessing.preprocess_image` accepts."""
        return self.image() if callable(self.image) else self.image

    def read_bytes(self) -> bytes:
        source = self.source()
        if isinstance(source, bytes):
            return source
        return Path(source).read_bytes()


def _optional_int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def _optional_float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def read_manifest(root: str | os.PathLike) -> list[TrainingRecord]:
    """Read ``root/manifest.csv``; paths in it are relative to ``root`` and may not leave it."""
    root = Path(root).resolve()
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        raise ManifestError(f"No {MANIFEST_NAME} in {root}.")
    records = []
    with manifest.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "baby_key"} - set(reader.fieldnames or [])
        if missing or not ({"label", "sex"} & set(reader.fieldnames or [])):
            raise ManifestError(f"{MANIFEST_NAME} needs the columns path, baby_key and label or sex.")
        for line, row in enumerate(reader, start=2):
            path = (root / row["path"]).resolve()
            if not path.is_relative_to(root):
                raise ManifestError(f"Line {line}: the path {row['path']!r} leaves the data folder.")
            if not path.is_file():
                raise ManifestError(f"Line {line}: {row['path']} does not exist.")
            label = _label(row, line)
            split = row.get("split") or None
            if split is not None and split not in SPLITS:
                raise ManifestError(f"Line {line}: unknown split {split!r}.")
            if not row["baby_key"]:
                raise ManifestError(f"Line {line}: baby_key is empty.")
            records.append(
                TrainingRecord(
                    image=path,
                    label=label,
                    baby_key=row["baby_key"],
                    gestational_week=_optional_int(row.get("gestational_week")),
                    split=split,
                    measured_angle=_optional_float(row.get("measured_angle")),
                )
            )
    if not records:
        raise ManifestError(f"{MANIFEST_NAME} lists no scans.")
    return records


def _label(row: dict, line: int) -> int:
    if row.get("label") not in (None, ""):
        if row["label"] not in ("0", "1"):
            raise ManifestError(f"Line {line}: label must be 0 (female) or 1 (male).")
        label = int(row["label"])
        if row.get("sex") and SEX_LABELS.get(row["sex"]) != label:
            raise ManifestError(f"Line {line}: label and sex disagree.")
        return label
    if row.get("sex") not in SEX_LABELS:
        raise ManifestError(f"Line {line}: sex must be 'female' or 'male'.")
    return SEX_LABELS[row["sex"]]


def records_digest(records: Iterable[TrainingRecord]) -> str:
    """A SHA-256 over every scan's bytes, label, baby and split: names the data a model saw."""
    digest = hashlib.sha256()
    entries = []
    for record in records:
        content = hashlib.sha256(record.read_bytes()).hexdigest()
        entries.append(f"{content}:{record.label}:{record.baby_key}:{record.split or ''}")
    for entry in sorted(entries):
        digest.update(entry.encode())
        digest.update(b"\n")
    return digest.hexdigest()
