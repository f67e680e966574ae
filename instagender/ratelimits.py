"""Per-account limits on the costly things a parent can ask for: uploads, predictions, exports.

Each upload decodes an image, each prediction runs the network, each export zips every file:
without a limit one account could keep every worker busy. The counters are allauth's
(``allauth.core.ratelimit``, the same sliding windows and cache lock as the login limits), in the
same cache, so they count across every worker and container when that cache is shared
(production's default is the database cache, see ``CACHES`` in settings). The rates are
``ACCOUNT_RATE_LIMITS`` entries "per user" (``RATE_LIMIT_SCAN_UPLOAD`` and friends in the
environment); an empty rate switches that limit off.

A refusal is a 429 with a sentence that says what the limit is: ``{"error": ...}`` for the upload
script, a page with a way back otherwise. A refused request is not counted.
"""

from __future__ import annotations

import functools
import logging

from allauth.core import ratelimit
from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

logger = logging.getLogger(__name__)

# action: (the sentence, with {limits}; what is counted; where the page's "back" link goes)
ACTIONS = {
    "scan_upload": (
        "You have uploaded a lot of scans in a short time: each account can upload {limits}. "
        "Please wait a while, then try again; the scans you already uploaded are safe.",
        "scans",
        "babies:dashboard",
    ),
    "predict": (
        "You have asked for a lot of predictions in a short time: each account can ask for {limits}. "
        "Please wait a while, then try again.",
        "predictions",
        "babies:dashboard",
    ),
    "account_export": (
        "You have downloaded your data several times in a short time: each account can download it "
        "{limits}. Please wait a while, then try again.",
        "times",
        "account_settings",
    ),
}

_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day"}


def _period_words(period: str) -> str:
    """'10m' -> 'every 10 minutes', 'h' -> 'an hour', '1d' -> 'a day'."""
    count, unit = period[:-1], _UNITS[period[-1]]
    if count in ("", "1"):
        return f"an {unit}" if unit == "hour" else f"a {unit}"
    return f"every {count} {unit}s"


def describe_rates(rates: str, noun: str) -> str:
    """('60/10m/user,300/d/user', 'scans') -> '60 scans every 10 minutes and 300 a day'."""
    parts = []
    for rate in filter(None, (part.strip() for part in rates.split(","))):
        amount, period, _per = rate.split("/")
        counted = "" if parts else (noun.removesuffix("s") if amount == "1" else noun) + " "
        parts.append(f"{amount} {counted}{_period_words(period)}")
    return " and ".join(parts)


def refusal_message(action: str) -> str:
    sentence, noun, _back = ACTIONS[action]
    limits = describe_rates(settings.ACCOUNT_RATE_LIMITS.get(action) or "", noun)
    if not limits:  # the cache lock could not be taken in time: still a refusal, still a sentence
        return sentence.split(":")[0] + ". Please wait a moment, then try again."
    return sentence.format(limits=limits)


def _back_url(request, action: str) -> str:
    """Where the page's link leads: the form's own ``next`` when it is one of ours."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse(ACTIONS[action][2])


def rate_limited_response(request, action: str, *, json: bool):
    message = refusal_message(action)
    if json:
        return JsonResponse({"error": message}, status=429)
    context = {"message": message, "back_url": _back_url(request, action)}
    return render(request, "429.html", context, status=429)


def per_account_rate_limit(action: str, *, json: bool = False):
    """Count the signed-in account's POSTs to the view against ``ACCOUNT_RATE_LIMITS[action]``.

    Goes inside the login decorator (it needs ``request.user``); ``json=True`` for ``fetch``.
    """
    if action not in ACTIONS:
        raise ValueError(f"Unknown rate-limited action {action!r}.")

    def decorator(view):
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            user = request.user
            if user.is_authenticated and not ratelimit.consume(request, action=action, user=user):
                logger.warning("rate limit reached action=%s user=%s", action, user.pk)
                return rate_limited_response(request, action, json=json)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
