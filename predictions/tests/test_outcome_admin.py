"""Where staff meet outcome e-mails: the babies admin's retry action and the review queue's
"parent's answer disagrees" filter."""

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEntry
from babies.models import LabelSource
from babies.services import baby_confirm_sex
from curation.tests.factories import labelled_baby, reviewed_scan
from predictions.models import OutcomeRequest
from predictions.services import outcome_answer_record, prediction_create
from predictions.tests.predict_support import grey_scan, tiny_model_version

pytestmark = pytest.mark.django_db

BABIES_URL = reverse("admin:babies_baby_changelist")
QUEUE_URL = reverse("admin:curation_reviewqueuescan_changelist")


def listed_ids(response) -> set[int]:
    return {obj.pk for obj in response.context["cl"].result_list}


def test_the_retry_action_resets_given_up_babies_and_leaves_sent_ones(staff_client, staff_user):
    given_up, sent, never_tried = labelled_baby(), labelled_baby(), labelled_baby()
    OutcomeRequest.objects.create(
        baby=given_up, attempts=OutcomeRequest.MAX_ATTEMPTS, last_error="SMTPRecipientsRefused: 550"
    )
    OutcomeRequest.objects.create(baby=sent, sent_at=timezone.now(), email="x@example.com")

    response = staff_client.post(
        BABIES_URL,
        {"action": "retry_outcome_emails", "_selected_action": [given_up.pk, sent.pk, never_tried.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert (
        "1 outcome e-mail(s) will be tried on the next run; 2 had none waiting" in response.content.decode()
    )
    request = OutcomeRequest.objects.get(baby=given_up)
    assert (request.attempts, request.last_error) == (0, "")
    assert OutcomeRequest.objects.get(baby=sent).sent_at is not None
    entry = AuditEntry.objects.get(action="outcome_request.retried")
    assert entry.actor == staff_user and entry.object_id == str(given_up.pk)


def test_the_retry_action_is_offered_in_the_babies_admin(staff_client):
    labelled_baby()
    content = staff_client.get(BABIES_URL).content.decode()
    assert 'value="retry_outcome_emails"' in content


@pytest.fixture
def answered_against_staff(staff_user):
    """A baby staff labelled a girl whose parent then answered the e-mail: a boy."""
    tiny_model_version()
    baby = labelled_baby(sex="female", source=LabelSource.STAFF)
    grey_scan(baby, 230)  # a "boy" prediction
    prediction = prediction_create(baby=baby)
    outcome_answer_record(baby=baby, prediction=prediction, prediction_was_right=True)
    return baby


def test_the_review_queue_shows_a_parent_answer_that_disagrees_with_a_staff_label(
    staff_client, staff_user, answered_against_staff
):
    reviewed_scan(answered_against_staff, reviewer=staff_user)
    disagreeing = set(answered_against_staff.scans.values_list("pk", flat=True))  # the predicted one too
    agreeing = reviewed_scan(labelled_baby(), reviewer=staff_user)
    answered_against_staff.refresh_from_db()
    assert (answered_against_staff.confirmed_sex, answered_against_staff.confirmed_sex_source) == (
        "female",
        LabelSource.STAFF,
    )

    assert listed_ids(staff_client.get(QUEUE_URL, {"parent_answer": "yes"})) == disagreeing
    assert listed_ids(staff_client.get(QUEUE_URL, {"parent_answer": "no"})) == {agreeing.pk}
    page = staff_client.get(QUEUE_URL).content.decode()
    assert page.count("parent&#x27;s answer disagrees") == len(disagreeing) == 2

    # Staff agree with the parent and relabel: the disagreement is gone.
    baby_confirm_sex(baby=answered_against_staff, sex="male", source=LabelSource.STAFF, actor=staff_user)
    assert listed_ids(staff_client.get(QUEUE_URL, {"parent_answer": "yes"})) == set()


def test_dry_run_lists_a_baby_again_once_staff_retried_it(staff_client, capsys):
    tiny_model_version()
    baby = labelled_baby()
    # An unlabelled baby, due long ago and given up on.
    baby.confirmed_sex = baby.confirmed_sex_source = ""
    baby.confirmed_sex_at = None
    baby.due_date = timezone.localdate() - timezone.timedelta(days=30)
    baby.save()
    grey_scan(baby, 40)
    prediction_create(baby=baby)
    OutcomeRequest.objects.create(baby=baby, attempts=OutcomeRequest.MAX_ATTEMPTS)

    call_command("send_outcome_emails", "--dry-run")
    assert f"would send: baby {baby.pk}," not in capsys.readouterr().out
    staff_client.post(BABIES_URL, {"action": "retry_outcome_emails", "_selected_action": [baby.pk]})
    call_command("send_outcome_emails", "--dry-run")
    assert f"would send: baby {baby.pk}," in capsys.readouterr().out
