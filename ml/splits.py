"""Splitting by baby: no baby's scans may be in two splits.

Scans of one baby share its latent anatomy, so a scan-level split would let a model be graded
on near-copies of what it trained on and overstate its accuracy.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ml.records import SPLITS, TrainingRecord


class SplitLeakError(ValueError):
    """A baby whose scans sit in more than one split."""


def split_by_baby(
    records: list[TrainingRecord],
    *,
    seed: int,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
) -> dict[str, list[TrainingRecord]]:
    """Assign whole babies to train/val/test, stratified by sex, reproducibly for a seed.

    Records that already carry a split (a generated data set, an exported TrainingSet) keep it;
    the rest are assigned here. Either way the result is checked for leaks.
    """
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError("The validation and test fractions must add up to less than 1.")
    if any(record.split == "eval" for record in records):
        raise ValueError("These scans belong to the fixed evaluation set, which is never trained on.")
    by_baby: dict[str, list[TrainingRecord]] = defaultdict(list)
    for record in records:
        by_baby[record.baby_key].append(record)

    assigned: dict[str, str] = {}
    unassigned: dict[int, list[str]] = defaultdict(list)
    for baby_key, scans in by_baby.items():
        given = {scan.split for scan in scans}
        if given == {None}:
            # Majority label: babies' scans share one label, but a curated set may disagree.
            label = round(sum(scan.label for scan in scans) / len(scans))
            unassigned[label].append(baby_key)
        elif None in given or len(given) > 1:
            raise SplitLeakError(f"Baby {baby_key!r} has scans in more than one split.")
        else:
            assigned[baby_key] = given.pop()

    rng = np.random.default_rng(seed)
    for label in sorted(unassigned):
        keys = sorted(unassigned[label])
        rng.shuffle(keys)
        n_test = round(len(keys) * test_fraction)
        n_val = round(len(keys) * val_fraction)
        for position, key in enumerate(keys):
            assigned[key] = "test" if position < n_test else "val" if position < n_test + n_val else "train"

    splits: dict[str, list[TrainingRecord]] = {name: [] for name in SPLITS}
    for record in records:
        splits[assigned[record.baby_key]].append(record)
    check_no_leak(splits)
    return splits


def check_no_leak(splits: dict[str, list[TrainingRecord]]) -> None:
    seen: dict[str, str] = {}
    for name, records in splits.items():
        for record in records:
            other = seen.setdefault(record.baby_key, name)
            if other != name:
                raise SplitLeakError(f"Baby {record.baby_key!r} is in both {other} and {name}.")
