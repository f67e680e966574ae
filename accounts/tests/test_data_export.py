"""A parent's data export: a ZIP of their babies, scans (JPEG and original) and predictions."""

import csv
import io
import json
import zipfile

import pytest
from django.urls import reverse

from babies import services as baby_services
from babies.tests.factories import BabyFactory, create_scan
from curation import services as curation_services
from curation.tests.factories import labelled_baby, reviewed_scan

pytestmark = pytest.mark.django_db

EXPORT_URL = reverse("account_export")


def download(client) -> zipfile.ZipFile:
    response = client.post(EXPORT_URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="instagender-data-')
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def test_the_zip_holds_every_baby_scan_and_file(parent_client, user):
    named = BabyFactory(owner=user, name="Ada")
    first, second = create_scan(named, gestational_week=20), create_scan(named)
    deleted = BabyFactory(owner=user)
    deleted_scan = create_scan(deleted)
    baby_services.baby_soft_delete(baby=deleted)
    someone_elses = create_scan(BabyFactory())

    archive = download(parent_client)

    names = set(archive.namelist())
    for scan, baby in [(first, named), (second, named), (deleted_scan, deleted)]:
        jpeg = f"scans/baby-{baby.pk}/scan-{scan.pk}.jpg"
        original = f"originals/baby-{baby.pk}/scan-{scan.pk}.png"
        assert archive.read(jpeg) == scan.image.open("rb").read()
        assert archive.read(original) == scan.original.open("rb").read()
        assert {jpeg, original} <= names
    assert not any(f"scan-{someone_elses.pk}." in name for name in names)

    babies = json.loads(archive.read("babies.json"))
    assert [b["id"] for b in babies] == [named.pk, deleted.pk]
    assert babies[0]["name"] == "Ada"
    assert babies[1]["deleted_at"] is not None
    # The second scan was uploaded without a week: it defaults from the due date and today.
    default_week = baby_services.scan_default_gestational_week(baby=named)
    assert [s["gestational_week"] for s in babies[0]["scans"]] == [20, default_week]
    assert babies[0]["predictions"] == []
    account = json.loads(archive.read("account.json"))
    assert account["email"] == user.email
    assert account["allows_training_use"] is False
    scans_csv = list(csv.DictReader(io.StringIO(archive.read("scans.csv").decode())))
    assert sorted(int(row["id"]) for row in scans_csv) == sorted([first.pk, second.pk, deleted_scan.pk])
    assert {"README.txt", "babies.csv", "predictions.csv", "training_sets.csv"} <= names


def test_training_set_memberships_are_listed(client, staff_user):
    baby = labelled_baby()
    scan = reviewed_scan(baby, reviewer=staff_user)
    training_set = curation_services.training_set_create(created_by=staff_user)
    client.force_login(baby.owner)

    rows = list(csv.DictReader(io.StringIO(download(client).read("training_sets.csv").decode())))
    assert [(row["training_set"], row["scan_id"]) for row in rows] == [(str(training_set.pk), str(scan.pk))]


def test_a_shared_training_set_lists_only_the_parents_own_items(client, staff_user):
    """Two parents' scans frozen in one training set: each export holds only its own parent's."""
    girl = labelled_baby(sex="female")
    girls_scan = reviewed_scan(girl, reviewer=staff_user)
    boy = labelled_baby(sex="male")
    boys_scan = reviewed_scan(boy, reviewer=staff_user)
    training_set = curation_services.training_set_create(created_by=staff_user)
    assert training_set.items.count() == 2  # both parents are in the same set
    client.force_login(girl.owner)

    archive = download(client)

    rows = list(csv.DictReader(io.StringIO(archive.read("training_sets.csv").decode())))
    assert [(row["training_set"], row["baby_id"], row["scan_id"], row["sex"]) for row in rows] == [
        (str(training_set.pk), str(girl.pk), str(girls_scan.pk), "female")
    ]
    assert not any(
        f"baby-{boy.pk}/" in name or f"scan-{boys_scan.pk}." in name for name in archive.namelist()
    )
    assert [baby["id"] for baby in json.loads(archive.read("babies.json"))] == [girl.pk]


def test_an_empty_account_still_exports(parent_client):
    archive = download(parent_client)
    assert json.loads(archive.read("babies.json")) == []


def test_export_needs_a_login_and_a_post(client, parent_client):
    assert parent_client.get(EXPORT_URL).status_code == 405
    client.logout()
    assert client.post(EXPORT_URL).status_code == 302


def test_predictions_and_outcome_answers_are_included(parent_client, user):
    from predictions.models import ModelVersion, OutcomeAnswer, Prediction

    baby = BabyFactory(owner=user)
    scan = create_scan(baby)
    version = ModelVersion.objects.create(
        name="Demo", slug="demo", architecture="small_cnn", input_spec={}, is_synthetic=True
    )
    prediction = Prediction.objects.create(
        baby=baby,
        model_version=version,
        predicted_sex="male",
        probability_male=0.8,
        combined_logit=1.4,
        temperature=1.0,
        scan_ids=[scan.pk],
        scan_ids_used=[scan.pk],
        scan_probabilities=[{"scan_id": scan.pk, "logit": 1.4, "probability_male": 0.8}],
    )
    OutcomeAnswer.objects.create(baby=baby, prediction=prediction, prediction_was_right=True, sex="male")
    Prediction.objects.create(
        baby=BabyFactory(),
        model_version=version,
        predicted_sex="female",
        probability_male=0.1,
        combined_logit=-2,
        temperature=1.0,
    )

    archive = download(parent_client)

    exported = json.loads(archive.read("babies.json"))[0]["predictions"]
    assert [(p["id"], p["predicted_sex"], p["probability_male"]) for p in exported] == [
        (prediction.pk, "male", 0.8)
    ]
    assert exported[0]["model_trained_on_synthetic_data"] is True
    assert exported[0]["outcome_answers"][0]["prediction_was_right"] is True
    rows = list(csv.DictReader(io.StringIO(archive.read("predictions.csv").decode())))
    assert [row["id"] for row in rows] == [str(prediction.pk)]
    assert json.loads(rows[0]["scan_probabilities"]) == [
        {"scan_id": scan.pk, "logit": 1.4, "probability_male": 0.8}
    ]
