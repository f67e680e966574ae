"""Asking for a prediction (dashboard) and answering the outcome e-mail (signed link).

The prediction view looks the baby up through the signed-in parent, so another parent's baby
is a 404. The outcome views need no login: the signed token is the authorisation, and only
their POST writes anything, because mail scanners open (GET) every link in an e-mail.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from babies.selectors import baby_get_for_owner
from instagender.ratelimits import per_account_rate_limit
from predictions import selectors, services
from predictions.forms import OutcomeAnswerForm, parse_answer
from predictions.outcome_links import OutcomeLinkError, outcome_token_resolve
from predictions.templatetags.prediction_tags import prediction_headline


def _back_to(request, default: str) -> str:
    """Where the Predict form came from (dashboard or baby page), if it is one of ours."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


@login_required
@require_POST
@per_account_rate_limit("predict")
def predict(request, baby_id: int):
    baby = baby_get_for_owner(user=request.user, baby_id=baby_id, allow_staff=False)
    back = _back_to(request, reverse("babies:dashboard"))
    try:
        prediction = services.prediction_create(baby=baby)
    except services.PredictionError as error:
        # Scans that are all too early are not a failure, just too soon: a warning, not an error.
        (messages.warning if error.code == "too_early" else messages.error)(request, error.message)
        return redirect(f"{back}#prediction-{baby.pk}")
    if prediction.is_cannot_tell:
        # Not an error: an honest answer. The card under the message says why and what helps.
        messages.info(request, f"Prediction for {baby.display_name}: cannot tell yet.")
    else:
        messages.success(request, f"Prediction for {baby.display_name}: {prediction_headline(prediction)}.")
    return redirect(f"{back}#prediction-{baby.pk}")


def _invalid_link(request, error: OutcomeLinkError):
    return render(request, "predictions/outcome_invalid.html", {"error": error}, status=error.status)


def _already_answered(request, link, answer, *, status: int = 200):
    """The link was answered before: say so and what was answered; nothing changes."""
    context = {
        "baby": link.baby,
        "prediction": link.prediction,
        "answer": answer,
        "refused_again": status != 200,
    }
    return render(request, "predictions/outcome_answered.html", context, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
def outcome(request, token: str):
    """GET shows the question with the e-mail's answer pre-selected; only the POST records it.

    A link answers once: once answered, a GET shows that answer and a POST changes nothing
    (409, with the same page).
    """
    try:
        link = outcome_token_resolve(token)
    except OutcomeLinkError as error:
        return _invalid_link(request, error)
    conflict = 409 if request.method == "POST" else 200
    answer = selectors.outcome_answer_for_link(baby=link.baby, prediction=link.prediction)
    if answer is not None:
        return _already_answered(request, link, answer, status=conflict)
    form = OutcomeAnswerForm(
        request.POST if request.method == "POST" else None,
        prediction=link.prediction,
        baby=link.baby,
        initial={"prediction_was_right": parse_answer(request.GET.get("oc"))},
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.outcome_answer_record(
                baby=link.baby,
                prediction=link.prediction,
                prediction_was_right=form.cleaned_data["prediction_was_right"],
            )
        except services.OutcomeAlreadyAnswered as already:
            # Another submission of this link won the race.
            return _already_answered(request, link, already.answer, status=conflict)
        return redirect("predictions:outcome_thanks", token=token)
    context = {
        "baby": link.baby,
        "prediction": link.prediction,
        "model_version": link.prediction.model_version,
        "form": form,
    }
    return render(request, "predictions/outcome_question.html", context)


@never_cache
@require_GET
def outcome_thanks(request, token: str):
    try:
        link = outcome_token_resolve(token)
    except OutcomeLinkError as error:
        return _invalid_link(request, error)
    answer = selectors.outcome_answer_for_link(baby=link.baby, prediction=link.prediction)
    if answer is None:
        return redirect("predictions:outcome", token=token)
    context = {"baby": link.baby, "prediction": link.prediction, "answer": answer}
    return render(request, "predictions/outcome_thanks.html", context)
