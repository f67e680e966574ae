"""The signed links in the outcome e-mail: who may answer, about which baby and prediction.

The token is ``django.core.signing.dumps`` of the baby's id, the prediction's id and a keyed
digest of the address the e-mail went to, with a salt of its own and a timestamp, so it expires
after ``OUTCOME_LINK_MAX_AGE_DAYS``. The signature is the authorisation: the link works without
logging in. Signed is not encrypted, so the address itself is not in the token (only an HMAC of
it, useless without the secret key), and the link stops working once the parent changes the
address: whoever reads an old mailbox should not answer for them.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac

from babies.models import Baby
from predictions.models import Prediction

LINK_SALT = "predictions.outcome-link"
EMAIL_DIGEST_SALT = "predictions.outcome-link.email"


class OutcomeLinkError(Exception):
    """The link cannot be used; the page says why in ``title`` and ``message``."""

    status = 400
    title = "This link does not work"
    message = (
        "The link is incomplete or has been changed. Please open it again from the e-mail, "
        "or log in, add the birth date and tell us on your dashboard."
    )


class OutcomeLinkExpired(OutcomeLinkError):
    status = 410
    title = "This link has expired"
    message = (
        "Links in our e-mails work for a limited time. Please log in, add the birth date "
        "and tell us on your dashboard whether your baby is a girl or a boy."
    )


class OutcomeLinkBabyGone(OutcomeLinkError):
    status = 410
    title = "This baby has been deleted"
    message = "The baby this e-mail was about has been deleted, so there is nothing to answer."


@dataclass(frozen=True)
class OutcomeLink:
    baby: Baby
    prediction: Prediction


def _email_digest(email: str, secret: str | None = None) -> str:
    return salted_hmac(
        EMAIL_DIGEST_SALT, email.strip().lower(), secret=secret, algorithm="sha256"
    ).hexdigest()[:32]


def outcome_token_make(*, baby: Baby, prediction: Prediction, email: str) -> str:
    return signing.dumps({"b": baby.pk, "p": prediction.pk, "e": _email_digest(email)}, salt=LINK_SALT)


def outcome_token_resolve(token: str) -> OutcomeLink:
    """The baby and prediction a token names, or an :class:`OutcomeLinkError` saying why not.

    Reads only: opening the link (a GET, and mail scanners open links) must never write.
    """
    max_age = datetime.timedelta(days=settings.OUTCOME_LINK_MAX_AGE_DAYS)
    try:
        payload = signing.loads(token, salt=LINK_SALT, max_age=max_age)
    except signing.SignatureExpired as exc:
        raise OutcomeLinkExpired from exc
    except signing.BadSignature as exc:
        raise OutcomeLinkError from exc
    if not _well_formed(payload):
        # Signed by us but not a shape we make (an old format, a bug, a leaked key): a clear
        # page, never a 500 from a lookup with a list or a string where an id belongs.
        raise OutcomeLinkError
    prediction = (
        Prediction.objects.select_related("baby__owner", "model_version")
        .filter(pk=payload["p"], baby_id=payload["b"])
        .first()
    )
    if prediction is None:
        # A purged baby takes its predictions with it; a signed id pair that matches nothing
        # is otherwise impossible.
        raise OutcomeLinkBabyGone
    baby = prediction.baby
    if baby.is_deleted:
        raise OutcomeLinkBabyGone
    owner = baby.owner
    if not owner.is_active or not _email_matches(payload["e"], owner.email):
        raise OutcomeLinkError
    return OutcomeLink(baby=baby, prediction=prediction)


def _is_id(value) -> bool:
    # bool is an int in Python; a database id is a positive 64-bit integer.
    return type(value) is int and 0 < value < 2**63


def _well_formed(payload) -> bool:
    return (
        isinstance(payload, dict)
        and _is_id(payload.get("b"))
        and _is_id(payload.get("p"))
        and isinstance(payload.get("e"), str)
        and len(payload["e"]) <= 64
    )


def _email_matches(digest: str, email: str) -> bool:
    """Compare with the current key and the fallbacks, so rotating the key keeps links working."""
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return any(constant_time_compare(digest, _email_digest(email, secret)) for secret in secrets)
