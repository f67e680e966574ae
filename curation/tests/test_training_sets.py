"""Freezing a training set: what it copies, how it splits, and that nothing later changes it."""

import hashlib
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditEntry
from babies import services as baby_services
from babies.models import LabelSource
from curation import services
from curation.models import TrainingSet, TrainingSetItem, training_storage
from curation.tests.factories import distinct_image, labelled_baby, reviewed_scan
from ml.records import read_manifest, records_digest

pytestmark = pytest.mark.django_db


def frozen_state(training_set: TrainingSet) -> list[tuple]:
    """Everything an item says, and the bytes of its copy."""
    rows = []
    for item in training_set.items.order_by("id"):
        with training_storage().open(item.image.name, "rb") as handle:
            content = handle.read()
        rows.append(
            (
                item.baby_key,
                item.scan_key,
                item.sex,
                item.label_source,
                item.labelled_at,
                item.split,
                item.image_sha256,
                hashlib.sha256(content).hexdigest(),
            )
        )
    return rows


def test_a_set_freezes_each_eligible_scan_with_its_label_and_counts(staff_user, eligible_scans):
    ineligible = reviewed_scan(labelled_baby(consent=False), reviewer=staff_user)

    training_set = services.training_set_create(created_by=staff_user, note="First curated set", split_seed=7)

    items = list(training_set.items.select_related("scan__baby"))
    assert {item.scan_id for item in items} == {scan.pk for scan in eligible_scans}
    assert ineligible.pk not in {item.scan_id for item in items}
    for item in items:
        baby = item.scan.baby
        assert (item.sex, item.label_source, item.labelled_at) == (
            baby.confirmed_sex,
            baby.confirmed_sex_source,
            baby.confirmed_sex_at,
        )
        assert item.baby_key == f"baby-{baby.pk}"
        with training_storage().open(item.image.name, "rb") as copy, item.scan.image.open("rb") as live:
            assert copy.read() == live.read()
    assert training_set.item_count == 8
    assert training_set.baby_count == 4
    assert training_set.class_counts == {"female": 4, "male": 4}
    assert sum(c["female"] + c["male"] for c in training_set.split_counts.values()) == 8
    assert training_set.note == "First curated set"
    assert training_set.label_sources == sorted(LabelSource.values)


def test_no_baby_is_in_two_splits(staff_user):
    for index in range(12):
        baby = labelled_baby(sex="female" if index % 2 else "male")
        for _ in range(3):
            reviewed_scan(baby, reviewer=staff_user)

    training_set = services.training_set_create(created_by=staff_user, split_seed=3)

    splits_of_baby = {}
    for item in training_set.items.all():
        splits_of_baby.setdefault(item.baby_key, set()).add(item.split)
    assert all(len(splits) == 1 for splits in splits_of_baby.values())
    assert {split for splits in splits_of_baby.values() for split in splits} == {"train", "val", "test"}


def test_babies_sharing_a_near_duplicate_scan_share_a_split(staff_user):
    picture = distinct_image(424242)
    twins = [labelled_baby(sex="female"), labelled_baby(sex="female")]
    for baby in twins:
        reviewed_scan(
            baby, reviewer=staff_user, data=picture if baby is twins[0] else distinct_image(424242, (97, 73))
        )
    for index in range(10):
        reviewed_scan(labelled_baby(sex="male" if index % 2 else "female"), reviewer=staff_user)

    for seed in range(5):
        training_set = services.training_set_create(created_by=staff_user, split_seed=seed)
        twin_splits = {
            item.split for item in training_set.items.filter(baby_key__in=[f"baby-{b.pk}" for b in twins])
        }
        assert len(twin_splits) == 1


def test_the_same_seed_gives_the_same_split(staff_user, eligible_scans):
    first = services.training_set_create(created_by=staff_user, split_seed=11)
    second = services.training_set_create(created_by=staff_user, split_seed=11)
    assert first.split_counts == second.split_counts
    assert first.content_digest == second.content_digest


def test_identical_content_is_stored_once(staff_user, eligible_scans):
    first = services.training_set_create(created_by=staff_user)
    second = services.training_set_create(created_by=staff_user)
    assert sorted(first.items.values_list("image", flat=True)) == sorted(
        second.items.values_list("image", flat=True)
    )
    names = {item.image.name for item in TrainingSetItem.objects.all()}
    assert len(names) == len(eligible_scans)


def test_a_frozen_set_is_unchanged_by_later_edits(staff_user, eligible_scans):
    training_set = services.training_set_create(created_by=staff_user, split_seed=5)
    before = frozen_state(training_set)
    digest = training_set.content_digest

    first, second = eligible_scans[0], eligible_scans[2]
    baby_services.baby_confirm_sex(baby=first.baby, sex="male", source=LabelSource.STAFF, actor=staff_user)
    services.scan_review_update(
        scan=second, reviewer=staff_user, state="rejected", flags={"is_unfocused": True}
    )
    owner = eligible_scans[4].baby.owner
    owner.allows_training_use = False
    owner.save()
    baby_services.scan_delete(scan=eligible_scans[6])
    baby_services.baby_purge(baby=eligible_scans[3].baby, actor=staff_user)

    training_set.refresh_from_db()
    assert frozen_state(training_set) == before
    assert training_set.content_digest == digest
    assert training_set.item_count == 8


def test_purging_a_baby_keeps_the_frozen_copy_and_logs_it(
    staff_user, eligible_scans, django_capture_on_commit_callbacks
):
    training_set = services.training_set_create(created_by=staff_user)
    baby = eligible_scans[0].baby
    scan_files = [eligible_scans[0].image.name, eligible_scans[1].image.name]

    with django_capture_on_commit_callbacks(execute=True):
        baby_services.baby_purge(baby=baby, actor=staff_user)

    items = training_set.items.filter(baby_key=f"baby-{baby.pk}")
    assert items.count() == 2
    for item in items:
        assert item.scan_id is None
        assert training_storage().exists(item.image.name)
    for name in scan_files:
        assert not eligible_scans[0].image.storage.exists(name)
    entry = AuditEntry.objects.get(action="baby.purged")
    assert entry.data["training_set_items_kept"] == 2
    assert entry.object_repr == f"Baby #{baby.pk} (owner #{baby.owner_id})"


def test_the_digest_is_the_one_train_model_computes_from_the_export(staff_user, eligible_scans, tmp_path):
    training_set = services.training_set_create(created_by=staff_user)
    services.training_set_export(training_set=training_set, directory=tmp_path / "export")
    assert records_digest(read_manifest(tmp_path / "export")) == training_set.content_digest


def test_creating_a_set_is_audited(staff_user, eligible_scans):
    training_set = services.training_set_create(created_by=staff_user, note="why")
    entry = AuditEntry.objects.get(action="training_set.created")
    assert entry.actor == staff_user
    assert entry.object_id == str(training_set.pk)
    assert entry.data["after"]["item_count"] == 8
    assert entry.data["after"]["content_digest"] == training_set.content_digest
    # The items are the record of which scans: one per eligible scan.
    assert sorted(training_set.items.values_list("scan_id", flat=True)) == sorted(
        s.pk for s in eligible_scans
    )


def test_a_missing_jpeg_is_refused_and_leaves_no_copies(staff_user, eligible_scans):
    broken = eligible_scans[-1]
    broken.image.storage.delete(broken.image.name)

    with pytest.raises(ValidationError, match=f"scan {broken.pk} is missing"):
        services.training_set_create(created_by=staff_user)

    assert TrainingSet.objects.count() == 0
    copies = Path(training_storage().path(services.TRAINING_COPY_PREFIX))
    assert not copies.exists() or not [path for path in copies.rglob("*") if path.is_file()]


def test_unknown_label_sources_are_refused(staff_user, eligible_scans):
    with pytest.raises(ValidationError, match="label source"):
        services.training_set_create(created_by=staff_user, label_sources=["hearsay"])
    with pytest.raises(ValidationError, match="label source"):
        services.training_set_create(created_by=staff_user, label_sources=[])
