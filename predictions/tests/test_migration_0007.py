"""Migration 0007 on data written before it: links already answered stay answered (by their latest
answer, the one that set the label), and e-mails given up because of our own SMTP failures come back."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("predictions", "0006_model_version_baby_calibration")]
AFTER = [("predictions", "0007_outcome_once_and_recipient_attempts")]


def migrate(targets):
    """Migrate predictions to ``targets`` and every other app to its latest migration."""
    executor = MigrationExecutor(connection)
    others = [node for node in executor.loader.graph.leaf_nodes() if node[0] != "predictions"]
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state([*targets, *others]).apps


@pytest.fixture
def old_apps():
    apps = migrate(BEFORE)
    yield apps
    migrate(executor_leaf_nodes())


def executor_leaf_nodes():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def test_existing_answers_and_given_up_emails_are_migrated(old_apps):
    User = old_apps.get_model("accounts", "User")
    Baby = old_apps.get_model("babies", "Baby")
    ModelVersion = old_apps.get_model("predictions", "ModelVersion")
    Prediction = old_apps.get_model("predictions", "Prediction")
    OutcomeAnswer = old_apps.get_model("predictions", "OutcomeAnswer")
    OutcomeRequest = old_apps.get_model("predictions", "OutcomeRequest")

    owner = User.objects.create(email="old@example.com")
    version = ModelVersion.objects.create(name="v", slug="v", architecture="small_cnn", input_spec={})
    due = timezone.localdate()
    babies = [Baby.objects.create(owner=owner, name=f"b{n}", due_date=due) for n in range(4)]
    predictions = [
        Prediction.objects.create(
            baby=baby,
            model_version=version,
            answer="male",
            predicted_sex="male",
            probability_male=0.9,
            combined_logit=2.0,
            temperature=1.0,
        )
        for baby in babies[:2]
    ]
    now = timezone.now()
    flips = [
        OutcomeAnswer.objects.create(
            baby=babies[0],
            prediction=predictions[0],
            prediction_was_right=right,
            sex="male" if right else "female",
            answered_at=now - timezone.timedelta(minutes=10 - n),
        )
        for n, right in enumerate([True, False, True, False])  # one link submitted four times
    ]
    single = OutcomeAnswer.objects.create(
        baby=babies[1], prediction=predictions[1], prediction_was_right=True, sex="male", answered_at=now
    )
    outage = OutcomeRequest.objects.create(baby=babies[0], attempts=5, last_error="ConnectionRefusedError: x")
    bad_address = OutcomeRequest.objects.create(
        baby=babies[1], attempts=5, last_error="SMTPRecipientsRefused: {'a@b': (550, b'no such user')}"
    )
    sent = OutcomeRequest.objects.create(baby=babies[2], attempts=1, sent_at=now)

    apps = migrate(AFTER)
    OutcomeAnswer = apps.get_model("predictions", "OutcomeAnswer")
    OutcomeRequest = apps.get_model("predictions", "OutcomeRequest")

    links = dict(OutcomeAnswer.objects.values_list("pk", "link"))
    assert links[flips[-1].pk] == f"{babies[0].pk}:{predictions[0].pk}"  # the latest answer counts
    assert [links[answer.pk] for answer in flips[:-1]] == [None, None, None]  # history, kept
    assert links[single.pk] == f"{babies[1].pk}:{predictions[1].pk}"
    assert OutcomeAnswer.objects.count() == 5
    assert set(OutcomeAnswer.objects.values_list("label_applied", flat=True)) == {True}
    assert OutcomeRequest.objects.get(pk=outage.pk).attempts == 0  # our outage: tried again
    assert OutcomeRequest.objects.get(pk=bad_address.pk).attempts == 5  # the recipient's refusal
    assert OutcomeRequest.objects.get(pk=sent.pk).attempts == 1
