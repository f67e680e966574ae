"""Outcome e-mails (claimed, sent, released, retried) and parents' answers to them."""

from __future__ import annotations

import logging
import uuid

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import audit_log
from babies.models import Baby, LabelSource, Sex
from babies.services import baby_confirm_sex
from predictions.models import OutcomeAnswer, OutcomeRequest, Prediction

logger = logging.getLogger(__name__)


class OutcomeAlreadyAnswered(Exception):
    """This link was answered before; nothing was changed. ``answer`` is the one that counts."""

    def __init__(self, answer: OutcomeAnswer | None):
        super().__init__("This link has already been answered.")
        self.answer = answer


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


def outcome_request_release(
    *, outcome_request: OutcomeRequest, error: str, recipient_refused: bool = False
) -> None:
    """Give the claim back after a failed send, so that the next run tries again.

    Only ``recipient_refused`` (the recipient's server refused the address) counts an attempt
    against the baby; our SMTP server being down, slow or broken never does.
    """
    changes = {"claimed_at": None, "claim_id": None, "last_error": error[:500]}
    if recipient_refused:
        changes["attempts"] = F("attempts") + 1
    OutcomeRequest.objects.filter(
        pk=outcome_request.pk, claim_id=outcome_request.claim_id, sent_at__isnull=True
    ).update(**changes)


def outcome_request_retry(*, baby: Baby, actor, batch: uuid.UUID | None = None) -> bool:
    """Try ``baby``'s unsent outcome e-mail again from scratch (staff); ``False`` if none waits.

    Resets the refusals count (a given-up baby is listed by the next run and ``--dry-run``
    again) and ends an expired claim; a sent e-mail is never re-sent.
    """
    with transaction.atomic():
        request = (
            OutcomeRequest.objects.select_for_update()
            .filter(baby=baby, sent_at__isnull=True)
            .filter(Q(attempts__gt=0) | ~Q(last_error=""))
            .first()
        )
        if request is None:
            return False
        before = {"attempts": request.attempts, "last_error": request.last_error}
        OutcomeRequest.objects.filter(pk=request.pk).update(attempts=0, last_error="")
        audit_log(
            actor=actor,
            action="outcome_request.retried",
            obj=baby,
            data={"before": before, "after": {"attempts": 0, "last_error": ""}},
            batch=batch,
        )
    return True


def outcome_answer_record(*, baby: Baby, prediction: Prediction, prediction_was_right: bool) -> OutcomeAnswer:
    """Keep the parent's answer and label the baby with the sex it implies (source: e-mail).

    Right means the predicted sex; wrong means the other one. A link answers once: a second
    answer raises :class:`OutcomeAlreadyAnswered` and changes nothing (the unique ``link`` makes
    this hold for two submissions at once too). A label staff set is never overwritten: the
    answer is kept with ``label_applied=False`` and the review queue shows the disagreement.
    """
    if prediction.baby_id != baby.pk:
        raise ValueError("The prediction is not this baby's.")
    other = Sex.FEMALE if prediction.predicted_sex == Sex.MALE else Sex.MALE
    sex = prediction.predicted_sex if prediction_was_right else other
    link = OutcomeAnswer.link_key(baby_id=baby.pk, prediction_id=prediction.pk)
    answer = OutcomeAnswer(
        baby=baby, prediction=prediction, prediction_was_right=prediction_was_right, sex=sex, link=link
    )
    answer.full_clean(exclude=["link"])  # uniqueness is the database's job, below
    try:
        with transaction.atomic():
            # Locked, so a staff label set at this moment is seen (the lock is a no-op on SQLite,
            # where writes are serialised anyway).
            current = Baby.all_objects.select_for_update().get(pk=baby.pk)
            answer.label_applied = current.confirmed_sex_source != LabelSource.STAFF
            answer.save()
            if answer.label_applied:
                baby_confirm_sex(baby=current, sex=sex, source=LabelSource.EMAIL)
    except IntegrityError:
        raise OutcomeAlreadyAnswered(OutcomeAnswer.objects.filter(link=link).first()) from None
    baby.refresh_from_db(fields=["confirmed_sex", "confirmed_sex_source", "confirmed_sex_at"])
    logger.info(
        "outcome answered baby=%s prediction=%s right=%s sex=%s label_applied=%s",
        baby.pk,
        prediction.pk,
        prediction_was_right,
        sex,
        answer.label_applied,
    )
    return answer
