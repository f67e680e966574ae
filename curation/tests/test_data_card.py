"""A training set's data card: its counts by sex, week and label source, the synthetic share and
every left-out scan under one reason, computed when it is frozen and never again."""

import json

import pytest
from django.urls import reverse

from accounts.tests.factories import UserFactory
from babies import services as baby_services
from babies.models import LabelSource
from babies.tests.factories import BabyFactory
from curation import services
from curation.tests.factories import labelled_baby, reviewed_scan

pytestmark = pytest.mark.django_db


@pytest.fixture
def records(staff_user):
    """Six scans that go in, and one scan left out for each reason."""
    girl = labelled_baby(sex="female")
    boy = labelled_baby(sex="male", source=LabelSource.EMAIL)
    # Generated babies carry the flag the generator sets (``Baby.is_synthetic``), whoever owns them.
    demo = UserFactory(email="demo@instagender.local", allows_training_use=True)
    synthetic = labelled_baby(owner=demo, sex="male", source=LabelSource.STAFF, is_synthetic=True)
    named_synthetic = labelled_baby(sex="female", name="Synthetic baby demo00003", is_synthetic=True)
    included = [
        reviewed_scan(girl, reviewer=staff_user, gestational_week=20),
        reviewed_scan(girl, reviewer=staff_user),
        reviewed_scan(boy, reviewer=staff_user, gestational_week=20),
        reviewed_scan(boy, reviewer=staff_user, gestational_week=13),
        reviewed_scan(synthetic, reviewer=staff_user, gestational_week=22),
        reviewed_scan(named_synthetic, reviewer=staff_user, gestational_week=22),
    ]
    deleted = labelled_baby()
    reviewed_scan(deleted, reviewer=staff_user)
    baby_services.baby_soft_delete(baby=deleted)
    reviewed_scan(labelled_baby(consent=False), reviewer=staff_user)
    consenting = UserFactory(allows_training_use=True)
    reviewed_scan(BabyFactory(owner=consenting), reviewer=staff_user)  # accepted, but no confirmed sex
    reviewed_scan(BabyFactory(owner=consenting), reviewer=staff_user, state="pending")  # no label first
    reviewed_scan(girl, reviewer=staff_user, state="pending")
    rejected = reviewed_scan(boy, reviewer=staff_user, state="rejected")
    services.scan_review_update(scan=rejected, reviewer=staff_user, flags={"is_unfocused": True})
    return included


def test_the_card_counts_what_went_in(staff_user, records):
    training_set = services.training_set_create(created_by=staff_user)

    card = training_set.data_card
    assert card["scans"] == 6 and card["babies"] == 4
    assert card["by_sex"] == {"female": 3, "male": 3}
    assert card["by_gestational_week"] == {"13": 1, "20": 2, "22": 2, "unknown": 1}
    assert list(card["by_gestational_week"]) == ["13", "20", "22", "unknown"]
    assert card["by_label_source"] == {"dashboard": 3, "email": 2, "staff": 1}
    assert card["synthetic"] == {"scans": 2, "share": round(2 / 6, 4)}
    assert training_set.items.filter(is_synthetic=True).count() == 2


def test_each_left_out_scan_is_counted_once_under_its_first_reason(staff_user, records):
    training_set = services.training_set_create(created_by=staff_user)

    excluded = training_set.data_card["excluded"]
    assert excluded["by_reason"] == {
        "baby_deleted": 1,
        "no_consent": 1,
        "no_label": 2,
        "label_source_not_chosen": 0,
        "rejected": 1,
        "not_reviewed": 1,
        "duplicate": 0,
    }
    assert excluded["scans"] == 6
    assert excluded["rejected_by_flag"]["is_unfocused"] == 1


def test_a_label_source_left_out_is_a_reason_of_its_own(staff_user, records):
    training_set = services.training_set_create(
        created_by=staff_user, label_sources=[LabelSource.DASHBOARD, LabelSource.STAFF]
    )
    card = training_set.data_card
    assert card["by_label_source"] == {"dashboard": 3, "email": 0, "staff": 1}
    # The boy's two accepted scans and his rejected one: the source is the first reason that applies.
    assert card["excluded"]["by_reason"]["label_source_not_chosen"] == 3
    assert card["excluded"]["by_reason"]["rejected"] == 0


def test_the_card_is_frozen_with_the_set(staff_user, records):
    training_set = services.training_set_create(created_by=staff_user)
    before = training_set.data_card
    reviewed_scan(labelled_baby(), reviewer=staff_user)  # a new eligible scan after freezing
    training_set.refresh_from_db()
    assert training_set.data_card == before


def test_the_admin_page_and_the_export_show_the_card(staff_user, staff_client, records, tmp_path):
    training_set = services.training_set_create(created_by=staff_user)

    html = staff_client.get(reverse("admin:curation_trainingset_change", args=[training_set.pk])).text
    assert 'data-testid="data-card"' in html
    assert "6 of 4 babies" in html and "2 (33%)" in html
    assert "Rejected in review" in html and "Unfocused: 1" in html
    services.training_set_export(training_set=training_set, directory=tmp_path / "export")
    exported = json.loads((tmp_path / "export" / "training_set.json").read_text())
    assert exported["data_card"] == json.loads(json.dumps(training_set.data_card))


def test_the_card_estimates_how_many_parents_answers_are_wrong(staff_user, staff_client, monkeypatch):
    """Scored by a model that never trained on them; a staff correction does not hide the answer."""
    import io

    from django.core.management import call_command

    from curation.services import training_sets
    from predictions.tests.predict_support import grey_png, tiny_model_version

    monkeypatch.setattr(training_sets, "MIN_BABIES_FOR_LABEL_ERROR_ESTIMATE", 4)
    version = tiny_model_version()  # trained on no frozen set: every baby is new to it
    # Dark scans look like girls', bright ones like boys' to the tiny model.
    for sex, value in [("female", 20), ("female", 30), ("male", 225), ("male", 235)]:
        reviewed_scan(labelled_baby(sex=sex), reviewer=staff_user, data=grey_png(value))
    # A parent said "girl" for a boy-like scan; staff corrected it, but the answer was wrong.
    corrected = labelled_baby(sex="female")
    reviewed_scan(corrected, reviewer=staff_user, data=grey_png(230))
    # Staff's own label, with no parent's answer behind it: not counted.
    staff_only = labelled_baby(sex="male", source=LabelSource.STAFF)
    reviewed_scan(staff_only, reviewer=staff_user, data=grey_png(240))
    call_command("score_label_quality", stdout=io.StringIO())
    baby_services.baby_confirm_sex(baby=corrected, sex="male", source=LabelSource.STAFF, actor=staff_user)

    training_set = services.training_set_create(created_by=staff_user)
    card = training_set.data_card["label_errors"]

    assert card["estimated"] and card["babies"] == 5 and card["scored_by"] == [version.pk]
    assert card["babies_with_parent_labels"] == 5
    # The model disagrees with one answer in five, and is wrong on 41 of its 300 evaluation
    # babies: of the answers, (1/5 - 41/300) / (1 - 2 * 41/300) are wrong.
    error = 41 / 300
    assert card["rate"] == pytest.approx((1 / 5 - error) / (1 - 2 * error), abs=1e-3)
    assert card["lower_bound"] <= card["rate"] <= card["upper_bound"]
    html = staff_client.get(reverse("admin:curation_trainingset_change", args=[training_set.pk])).text
    assert f'Estimated wrong</th><td data-testid="card-label-errors">{card["rate"]:.0%}' in html
    assert f"model #{version.pk}, which never trained on these babies" in html


def test_babies_the_scoring_model_trained_on_are_left_out_of_the_estimate(staff_user, monkeypatch):
    import io

    from django.core.management import call_command

    from curation.services import training_sets
    from predictions.tests.predict_support import grey_png, tiny_model_version

    monkeypatch.setattr(training_sets, "MIN_BABIES_FOR_LABEL_ERROR_ESTIMATE", 4)
    for sex, value in [("female", 20), ("female", 30), ("male", 225), ("male", 235)]:
        reviewed_scan(labelled_baby(sex=sex), reviewer=staff_user, data=grey_png(value))
    first = services.training_set_create(created_by=staff_user)
    assert first.data_card["label_errors"]["estimated"] is False  # nothing scored yet
    version = tiny_model_version()
    version.training_set = first
    version.save()
    call_command("score_label_quality", stdout=io.StringIO())

    card = services.training_set_create(created_by=staff_user).data_card["label_errors"]

    assert card["estimated"] is False and card["babies"] == 0
    assert "never trained on them" in card["why"]
