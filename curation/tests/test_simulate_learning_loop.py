"""The learning-loop simulation: two small rounds through the real services, and its guard.

The full run (thousands of babies, the fixed 3,000-baby evaluation set) is a command an engineer
runs (README); here two rounds of a few dozen babies each check the mechanics, not the figures.
"""

from __future__ import annotations

import datetime
import math

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Q

from accounts.tests.factories import UserFactory
from audit.models import AuditEntry
from babies.models import Baby, LabelSource, Scan
from babies.services import baby_create
from curation.models import LabelQualityScore, ReviewState, TrainingSet, TrainingSetItem
from curation.simulation import (
    SIMULATION_EMAIL_DOMAIN,
    SimulationSettings,
    live_data_description,
    result_table,
    run_simulation,
)
from predictions.models import ModelActivation, ModelVersion, OutcomeAnswer, Prediction
from predictions.tests.predict_support import tiny_model_version

SMALL = SimulationSettings(
    new_babies=[36, 36],
    wrong_share=0.3,
    no_answer_share=0.1,
    consent_share=0.7,
    review_share=1.0,
    seed=3,
    epochs=1,
    batch_size=32,
    image_size=32,
    max_minutes=1.0,
)


@pytest.mark.slow
@pytest.mark.django_db
def test_two_rounds_run_through_the_services_and_keep_the_rules(tmp_path):
    # A live model to start from: predictions, outcome links and label scores need one.
    live = tiny_model_version(name="Live before the loop")

    result = run_simulation(SMALL, output_dir=tmp_path, log=lambda line: None)

    rounds = result.rounds
    assert [row.round for row in rounds] == [0, 1]
    # Parents, babies and scans were made through the services: one parent per baby, three
    # scans each, consent recorded (with its audit entry) for the parents who gave it.
    babies = Baby.objects.filter(owner__email__endswith=f"@{SIMULATION_EMAIL_DOMAIN}")
    assert babies.count() == 72 and Scan.objects.filter(baby__in=babies).count() == 72 * 3
    consenting = babies.filter(owner__allows_training_use=True).count()
    assert 0 < consenting < 72
    assert AuditEntry.objects.filter(action="user.training_consent_changed").count() == consenting
    # Predictions with the active model, and answers through the outcome link's service.
    assert Prediction.objects.count() == sum(row.predictions for row in rounds) > 0
    assert OutcomeAnswer.objects.count() == sum(row.answers_by_email for row in rounds) > 0
    labelled = babies.exclude(confirmed_sex="")
    assert labelled.count() == sum(row.answers for row in rounds) < 72  # some never answer

    # The review changed labels: each correction is a staff relabel to the true sex, logged.
    found = sum(row.wrong_found for row in rounds)
    assert found > 0
    relabelled = AuditEntry.objects.filter(action="baby.relabelled")
    assert relabelled.count() == found
    for baby in babies.filter(confirmed_sex_source=LabelSource.STAFF):
        assert baby.confirmed_sex == result.truth[baby.pk]
    for row in rounds:
        # The budget is a share of the queue's babies (labels wait per baby, not per scan).
        assert row.review_budget == math.ceil(SMALL.review_share * row.queue_babies)
        assert row.reviewed <= row.review_budget
        assert row.wrong_in_set <= row.wrong_in_set_without_review
        assert row.recall_at_k == pytest.approx(row.wrong_found / row.wrong_before_review)
        assert row.precision_at_k == pytest.approx(row.wrong_found / row.reviewed)
    # A label checked is checked for every scan of its baby: the reviewer decided on the baby.
    checked = LabelQualityScore.objects.filter(label_checked_at__isnull=False)
    assert checked.exists()
    for baby_id in set(checked.values_list("scan__baby_id", flat=True)):
        scores = LabelQualityScore.objects.filter(scan__baby_id=baby_id)
        assert not scores.filter(label_checked_at__isnull=True).exists()

    # Consent honoured: parents without it had labelled, accepted scans, yet none is frozen.
    assert (
        Scan.objects.filter(baby__owner__allows_training_use=False, review__state=ReviewState.ACCEPTED)
        .exclude(baby__confirmed_sex="")
        .exists()
    )
    assert TrainingSet.objects.count() == 2
    items = TrainingSetItem.objects.all()
    assert items.exists()
    assert not items.filter(Q(owner__allows_training_use=False) | Q(owner__isnull=True)).exists()
    assert all(row.items_without_consent == 0 for row in rounds)
    # Each frozen set's wrong labels, counted from its items against the generator's truth.
    for row in rounds:
        frozen = TrainingSet.objects.get(pk=row.training_set)
        wrong = {
            item.baby_key
            for item in frozen.items.all()
            if item.sex != result.truth[int(item.baby_key.removeprefix("baby-"))]
        }
        assert len(wrong) == row.wrong_in_set

    # A model per round, trained on its set; the gate's decision recorded and obeyed.
    for row in rounds:
        version = ModelVersion.objects.get(pk=row.model_version)
        assert version.training_set_id == row.training_set and version.is_synthetic
        assert row.accuracy == version.measured.headline["accuracy"]
        assert row.gate_reason
        # The frozen set's estimate of wrong answers is what the gate's rule 4 read.
        estimate = TrainingSet.objects.get(pk=row.training_set).data_card["label_errors"]
        assert estimate["estimated"] == (row.estimated_wrong_answers is not None)
        switched_on = ModelActivation.objects.filter(
            model_version=version, event=ModelActivation.Event.ACTIVATED
        ).exists()
        assert switched_on == row.activated
    final = ModelVersion.objects.get(is_active=True)
    activated = [row.model_version for row in rounds if row.activated]
    assert final.pk == (activated[-1] if activated else live.pk) == rounds[-1].active_version

    table = result_table(result)
    assert table.count("\n| 0 |") == table.count("\n| 1 |") == 1
    assert (tmp_path / "table.md").read_text() == table
    assert (tmp_path / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.django_db
def test_the_loop_refuses_a_database_with_data_that_is_not_its_own(tmp_path):
    assert live_data_description() is None
    parent = UserFactory(email="real.parent@example.com")
    baby_create(owner=parent, due_date=datetime.date.today() + datetime.timedelta(days=90))

    with pytest.raises(CommandError, match="not the simulation's own") as refused:
        call_command("simulate_learning_loop", in_own_database=tmp_path)
    assert "1 babies that are not synthetic" in str(refused.value)
    assert "users outside" in str(refused.value)
    assert not TrainingSet.objects.exists() and not ModelVersion.objects.exists()


@pytest.mark.django_db
def test_the_command_checks_its_shares_before_starting(tmp_path):
    with pytest.raises(CommandError, match="--wrong-share must be between 0 and 1"):
        call_command("simulate_learning_loop", wrong_share=1.5, run_dir=tmp_path)
    with pytest.raises(CommandError, match="--flood-round must be a round between 0 and 1"):
        call_command("simulate_learning_loop", new_babies=[10, 10], flood_round=2, run_dir=tmp_path)
    assert not (tmp_path / "db.sqlite3").exists()
