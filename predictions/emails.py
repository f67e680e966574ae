"""The outcome e-mail: a subject, a text body and an HTML body, with absolute signed links.

A cron job has no request to build URLs from, and the Sites framework still says example.com,
so every absolute URL comes from :func:`absolute_url`: ``ACCOUNT_DEFAULT_HTTP_PROTOCOL`` and
``SITE_DOMAIN`` from the settings.
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from babies.models import Baby
from predictions.models import Prediction
from predictions.outcome_links import outcome_token_make


def absolute_url(path: str) -> str:
    """``https://instagender.example/path`` for a path from ``reverse()``."""
    if not path.startswith("/"):
        raise ValueError(f"Expected an absolute path, got {path!r}.")
    return f"{settings.ACCOUNT_DEFAULT_HTTP_PROTOCOL}://{settings.SITE_DOMAIN}{path}"


def outcome_email_build(*, baby: Baby, prediction: Prediction, email: str) -> EmailMultiAlternatives:
    """The e-mail asking whether ``prediction`` was right, with a yes link and a no link."""
    token = outcome_token_make(baby=baby, prediction=prediction, email=email)
    answer_url = absolute_url(reverse("predictions:outcome", args=[token]))
    context = {
        "baby": baby,
        "prediction": prediction,
        "model_version": prediction.model_version,
        # The original Flask app's links: ?oc=True if the prediction was right, ?oc=False if not. They only
        # pre-select the answer; the parent confirms with a button (mail scanners open links).
        "right_url": f"{answer_url}?oc=True",
        "wrong_url": f"{answer_url}?oc=False",
        "dashboard_url": absolute_url(reverse("babies:dashboard")),
        "link_max_age_days": settings.OUTCOME_LINK_MAX_AGE_DAYS,
        "site_name": settings.SITE_NAME,
    }
    subject = render_to_string("predictions/email/outcome_subject.txt", context).strip()
    message = EmailMultiAlternatives(
        subject=f"{settings.EMAIL_SUBJECT_PREFIX}{subject}",
        body=render_to_string("predictions/email/outcome_message.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[email],
    )
    message.attach_alternative(
        render_to_string("predictions/email/outcome_message.html", context), "text/html"
    )
    return message
