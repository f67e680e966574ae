"""Splits by baby (no leaks) and manifests that name their rows when they are wrong."""

import csv

import pytest

from ml.records import ManifestError, TrainingRecord, read_manifest, records_digest
from ml.splits import SplitLeakError, check_no_leak, split_by_baby


def _records(babies=60, scans=3, split=None):
    return [
        TrainingRecord(image=b"x", label=index % 2, baby_key=f"b{index}", split=split)
        for index in range(babies)
        for _ in range(scans)
    ]


def _babies(records):
    return {record.baby_key for record in records}


def test_no_baby_is_in_two_splits_and_every_scan_is_placed():
    splits = split_by_baby(_records(), seed=1, val_fraction=0.2, test_fraction=0.2)
    train, val, test = (_babies(splits[name]) for name in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert sum(len(records) for records in splits.values()) == 180
    assert (len(train), len(val), len(test)) == (36, 12, 12)


def test_split_is_stratified_by_sex_and_reproducible():
    splits = split_by_baby(_records(), seed=1, val_fraction=0.2, test_fraction=0.2)
    test_labels = [record.label for record in splits["test"]]
    assert test_labels.count(1) == test_labels.count(0)
    again = split_by_baby(_records(), seed=1, val_fraction=0.2, test_fraction=0.2)
    assert _babies(again["test"]) == _babies(splits["test"])
    other = split_by_baby(_records(), seed=2, val_fraction=0.2, test_fraction=0.2)
    assert _babies(other["test"]) != _babies(splits["test"])


def test_given_splits_are_kept():
    records = _records(4, split="val") + [TrainingRecord(image=b"x", label=0, baby_key="z", split="test")]
    splits = split_by_baby(records, seed=0)
    assert _babies(splits["val"]) == {"b0", "b1", "b2", "b3"} and _babies(splits["test"]) == {"z"}


def test_a_baby_given_two_splits_is_a_leak():
    records = [
        TrainingRecord(image=b"x", label=1, baby_key="b", split="train"),
        TrainingRecord(image=b"x", label=1, baby_key="b", split="test"),
    ]
    with pytest.raises(SplitLeakError, match="'b'"):
        split_by_baby(records, seed=0)
    with pytest.raises(SplitLeakError):
        check_no_leak({"train": records[:1], "test": records[1:]})


def test_fractions_must_leave_room_for_training():
    with pytest.raises(ValueError):
        split_by_baby(_records(), seed=0, val_fraction=0.5, test_fraction=0.5)


def _write_manifest(root, rows, fields=("path", "label", "baby_key", "split")):
    with (root / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def test_manifest_reads_records_with_optional_columns(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"a")
    _write_manifest(
        tmp_path,
        [{"path": "a.jpg", "sex": "male", "baby_key": "b1", "gestational_week": "14"}],
        fields=("path", "sex", "baby_key", "gestational_week"),
    )
    [record] = read_manifest(tmp_path)
    assert (record.label, record.baby_key, record.gestational_week, record.split) == (1, "b1", 14, None)
    assert record.read_bytes() == b"a"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"path": "../outside.jpg", "label": "1", "baby_key": "b"}, "leaves the data folder"),
        ({"path": "missing.jpg", "label": "1", "baby_key": "b"}, "does not exist"),
        ({"path": "a.jpg", "label": "2", "baby_key": "b"}, "label must be"),
        ({"path": "a.jpg", "label": "1", "baby_key": ""}, "baby_key is empty"),
        ({"path": "a.jpg", "label": "1", "baby_key": "b", "split": "holdout"}, "unknown split"),
    ],
)
def test_bad_manifest_rows_are_named(tmp_path, row, message):
    root = tmp_path / "data"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"a")
    (tmp_path / "outside.jpg").write_bytes(b"o")
    _write_manifest(root, [row])
    with pytest.raises(ManifestError, match=message):
        read_manifest(root)


def test_no_manifest_is_an_error(tmp_path):
    with pytest.raises(ManifestError, match=r"No manifest\.csv"):
        read_manifest(tmp_path)


def test_digest_changes_with_content_label_or_split():
    base = [TrainingRecord(image=b"a", label=1, baby_key="b", split="train")]
    digest = records_digest(base)
    assert digest == records_digest(list(base))
    assert digest != records_digest([TrainingRecord(image=b"A", label=1, baby_key="b", split="train")])
    assert digest != records_digest([TrainingRecord(image=b"a", label=0, baby_key="b", split="train")])
    assert digest != records_digest([TrainingRecord(image=b"a", label=1, baby_key="b", split="test")])
