"""Outcome e-mails (claimed, sent, released) and parents' answers to them."""

from __future__ import annotations

import logging
import uuid

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from babies.models import Baby, LabelSource, Sex
from babies.services import baby_confirm_sex
from predictions.models import OutcomeAnswer, OutcomeRequest, Prediction

logger = logging.getLogger(__name__)


def outcome_request_claim(*, baby: Baby, prediction: Prediction, email: str) -> OutcomeRequest | None:
    """Claim the right to send ``baby``'s outcome e-mail; ``None`` if another run has it or it went.

    The claim is one conditional UPDATE (healthchecks' ``sendreports`` pattern): it matches only
    a row that was never sent and whose claim is empty or expired, so of two runs racing for the
    same row exactly one sees ``1`` as the row count (PostgreSQL re-checks the condition after
    the first run's update commits). The row itself is inserted first if missing; its unique
    baby makes two concurrent inserts one row.
    """
    now = timezone.now()
    OutcomeRequest.objects.bulk_create([OutcomeRequest(baby=baby)], ignore_conflicts=True)
    claim_id = uuid.uuid4()
    claimed = (
        OutcomeRequest.objects.filter(
            baby=baby, sent_at__isnull=True, attempts__lt=OutcomeRequest.MAX_ATTEMPTS
        )
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - OutcomeRequest.CLAIM_EXPIRY))
        .update(
            claimed_at=now,
            claim_id=claim_id,
            prediction=prediction,
            email=email,
            attempts=F("attempts") + 1,
        )
    )
    if claimed != 1:
        return None
    return OutcomeRequest.objects.get(baby=baby, claim_id=claim_id)


def outcome_request_mark_sent(*, outcome_request: OutcomeRequest) -> None:
    """Record the sending; from now on no run selects this baby again."""
    updated = OutcomeRequest.objects.filter(
        pk=outcome_request.pk, claim_id=outcome_request.claim_id, sent_at__isnull=True
    ).update(sent_at=timezone.now(), last_error="")
    if updated != 1:
        # Only possible if this send took longer than OutcomeRequest.CLAIM_EXPIRY and another run
        # took the claim over: that run may have sent it too.
        logger.error("outcome e-mail for baby %s: claim lost before it was recorded", outcome_request.baby_id)


def outcome_request_release(*, outcome_request: OutcomeRequest, error: str) -> None:
    """Give the claim back after a failed send, so that the next run tries again."""
    OutcomeRequest.objects.filter(
        pk=outcome_request.pk, claim_id=outcome_request.claim_id, sent_at__isnull=True
    ).update(claimed_at=None, claim_id=None, last_error=error[:500])


def outcome_answer_record(*, baby: Baby, prediction: Prediction, prediction_was_right: bool) -> OutcomeAnswer:
    """Keep the parent's answer and label the baby with the sex it implies (source: e-mail).

    Right means the predicted sex; wrong means the other one. Every answer is a new row, so a
    changed answer keeps the earlier one; the baby's label follows the latest.
    """
    if prediction.baby_id != baby.pk:
        raise ValueError("The prediction is not this baby's.")
    other = Sex.FEMALE if prediction.predicted_sex == Sex.MALE else Sex.MALE
    sex = prediction.predicted_sex if prediction_was_right else other
    answer = OutcomeAnswer(
        baby=baby, prediction=prediction, prediction_was_right=prediction_was_right, sex=sex
    )
    answer.full_clean()
    with transaction.atomic():
        answer.save()
        baby_confirm_sex(baby=baby, sex=sex, source=LabelSource.EMAIL)
    logger.info(
        "outcome answered baby=%s prediction=%s right=%s sex=%s",
        baby.pk,
        prediction.pk,
        prediction_was_right,
        sex,
    )
    return answer
