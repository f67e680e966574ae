"""Per-account limits on the costly things a parent can ask for: uploads, predictions, exports.

Each upload decodes an image, each prediction runs the network, each export zips every file:
without a limit one account could keep every worker busy. The rates are ``ACCOUNT_RATE_LIMITS``
entries "per user" (``RATE_LIMIT_SCAN_UPLOAD`` and friends in the environment), sliding windows
such as ``60/10m/user,300/d/user``; an empty rate switches that limit off.

They are counted in the database every worker and container already share
(``accounts.CountedAction``, one row per action that went ahead), in one short transaction
that holds the account's row: four statements, where allauth's counters in the database cache
took 22 per request (a lock entry, a read and a write per window, each write counting the whole
cache table first). allauth's own limits (failed logins, sign-ups, password resets) stay in
its cache.

A refusal is a 429 with a sentence that says what the limit is: ``{"error": ...}`` for the upload
script, a page with a way back otherwise. A refused request is not counted.
"""

from __future__ import annotations

import datetime
import functools
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
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
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _rate_parts(rates: str) -> list[tuple[str, str]]:
    """'60/10m/user,300/d/user' -> [('60', '10m'), ('300', 'd')] (settings checked the shape)."""
    return [
        tuple(rate.split("/")[:2])
        for rate in filter(None, (part.strip() for part in (rates or "").split(",")))
    ]


def parse_rates(rates: str) -> list[tuple[int, datetime.timedelta]]:
    """'60/10m/user,300/d/user' -> [(60, 10 minutes), (300, 1 day)]."""
    return [
        (int(amount), datetime.timedelta(seconds=int(period[:-1] or 1) * _SECONDS[period[-1]]))
        for amount, period in _rate_parts(rates)
    ]


def consume(user, action: str) -> bool:
    """Count one ``action`` by ``user`` if every window of its limits has room; False if not.

    The account's row is locked for the few statements this takes (PostgreSQL; SQLite writes
    one at a time anyway), so two workers serving the same account cannot both take the last
    place in a window. A refused action is not counted.
    """
    from accounts.models import CountedAction, User

    rates = parse_rates(settings.ACCOUNT_RATE_LIMITS.get(action) or "")
    if not rates:
        return True
    now = timezone.now()
    longest = max(period for _amount, period in rates)
    mine = CountedAction.objects.filter(user=user, action=action)
    with transaction.atomic():
        list(User.objects.select_for_update().filter(pk=user.pk).order_by().values_list("pk"))
        mine.filter(at__lte=now - longest).delete()
        counts = mine.aggregate(
            **{
                f"in_{index}": Count("pk", filter=Q(at__gt=now - period))
                for index, (_a, period) in enumerate(rates)
            }
        )
        if any(counts[f"in_{index}"] >= amount for index, (amount, _p) in enumerate(rates)):
            return False
        CountedAction.objects.create(user=user, action=action, at=now)
    return True


def _period_words(period: str) -> str:
    """'10m' -> 'every 10 minutes', 'h' -> 'an hour', '1d' -> 'a day'."""
    count, unit = period[:-1], _UNITS[period[-1]]
    if count in ("", "1"):
        return f"an {unit}" if unit == "hour" else f"a {unit}"
    return f"every {count} {unit}s"


def describe_rates(rates: str, noun: str) -> str:
    """('60/10m/user,300/d/user', 'scans') -> '60 scans every 10 minutes and 300 a day'."""
    parts = []
    for amount, period in _rate_parts(rates):
        counted = "" if parts else (noun.removesuffix("s") if amount == "1" else noun) + " "
        parts.append(f"{amount} {counted}{_period_words(period)}")
    return " and ".join(parts)


def refusal_message(action: str) -> str:
    sentence, noun, _back = ACTIONS[action]
    limits = describe_rates(settings.ACCOUNT_RATE_LIMITS.get(action) or "", noun)
    if not limits:  # switched off since the request was refused: still a refusal, still a sentence
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
            if user.is_authenticated and not consume(user, action):
                logger.warning("rate limit reached action=%s user=%s", action, user.pk)
                return rate_limited_response(request, action, json=json)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
