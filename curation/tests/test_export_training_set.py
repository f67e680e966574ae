"""manage.py export_training_set: the folder layout, the manifest, and refusals."""

import csv
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from accounts.services import user_delete
from curation import services
from ml.records import read_manifest

pytestmark = pytest.mark.django_db


@pytest.fixture
def training_set(staff_user, eligible_scans):
    return services.training_set_create(created_by=staff_user, note="export me", split_seed=1)


def jpegs_under(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*.jpg"))


def test_export_writes_split_sex_folders_and_a_manifest(training_set, tmp_path, capsys):
    target = tmp_path / "out"
    call_command("export_training_set", str(training_set.pk), str(target))

    items = {item.pk: item for item in training_set.items.all()}
    with (target / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8
    assert jpegs_under(target) == sorted(row["path"] for row in rows)
    for row in rows:
        item = items[int(row["item_id"])]
        assert row["path"] == f"{item.split}/{item.sex}/{item.baby_key}_{item.scan_key}.jpg"
        assert (row["split"], row["sex"], row["baby_key"], row["label_source"]) == (
            item.split,
            item.sex,
            item.baby_key,
            item.label_source,
        )
        assert row["label"] == ("1" if item.sex == "male" else "0")
        assert (target / row["path"]).read_bytes() == item.image.open("rb").read()
    # Scans of one baby are numbered 0, 1, ...
    assert sorted(row["scan_index"] for row in rows if row["baby_key"] == rows[0]["baby_key"]) == ["0", "1"]

    metadata = json.loads((target / "training_set.json").read_text())
    assert metadata["training_set"] == training_set.pk
    assert metadata["content_digest"] == training_set.content_digest
    assert metadata["class_counts"] == {"female": 4, "male": 4}
    assert "Exported 8 scans" in capsys.readouterr().out


def test_train_model_can_read_the_export(training_set, tmp_path):
    services.training_set_export(training_set=training_set, directory=tmp_path / "out")
    records = read_manifest(tmp_path / "out")
    assert len(records) == 8
    assert {record.split for record in records} <= {"train", "val", "test"}
    assert sorted(record.label for record in records) == [0, 0, 0, 0, 1, 1, 1, 1]


def test_two_exports_are_identical(training_set, tmp_path):
    services.training_set_export(training_set=training_set, directory=tmp_path / "a")
    services.training_set_export(training_set=training_set, directory=tmp_path / "b")
    assert jpegs_under(tmp_path / "a") == jpegs_under(tmp_path / "b")
    assert (tmp_path / "a" / "manifest.csv").read_text() == (tmp_path / "b" / "manifest.csv").read_text()


def test_a_non_empty_folder_is_refused(training_set, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("keep me")
    with pytest.raises(CommandError, match="not an empty folder"):
        call_command("export_training_set", str(training_set.pk), str(tmp_path / "out"))
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["old.txt"]


def test_an_unknown_set_is_a_clear_error(db, tmp_path):
    with pytest.raises(CommandError, match="no training set 999"):
        call_command("export_training_set", "999", str(tmp_path / "out"))


def test_items_erased_at_a_parents_request_are_left_out(
    training_set, eligible_scans, tmp_path, capsys, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        user_delete(user=eligible_scans[0].baby.owner)

    call_command("export_training_set", str(training_set.pk), str(tmp_path / "out"))

    assert len(jpegs_under(tmp_path / "out")) == 6
    assert "2 erased at their parents' request were left out" in capsys.readouterr().out


def test_a_set_of_synthetic_images_trains_a_version_recorded_as_synthetic(training_set, tmp_path):
    """Its data card marks items made by the generator; the version must say so too (banner)."""
    from predictions.management.commands.train_model import Command

    command = Command()
    command.export_dir = tmp_path / "real"
    assert not command.load_training_set(training_set.pk).has_synthetic_images
    training_set.items.filter(pk=training_set.items.first().pk).update(is_synthetic=True)
    command.export_dir = tmp_path / "synthetic"
    data = command.load_training_set(training_set.pk)
    assert data.has_synthetic_images and "1 synthetic images" in data.description
