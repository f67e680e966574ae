"""The dashboard's cards, kept drawn between a parent's visits.

Reading a parent's babies, scans and predictions and drawing their cards is most of what a
dashboard costs (four queries and the cards' templates: 3.4 ms of 5.7 with two babies, 6.5 of
8.9 with twenty, timed in one process on PostgreSQL), and a parent opens the dashboard far more
often than anything on it changes. So each worker process keeps the drawn cards (the cache alias
``dashboard_cards``: memory of the process, bounded) under a key that changes with everything
they show:

- ``User.cards_stamp``: a new random value whenever one of the parent's babies, scans or
  predictions, or the model version of one of those predictions, is saved or deleted (the
  receivers below, connected in the apps' ``ready``). It is on the user row, which the
  authentication middleware reads on every request anyway, so checking it costs no query, and
  every worker sees a change at once. It is written in the changing transaction, after the
  change: a request that read the old stamp may keep what it drew under the old key, which no
  request asks for again. Nothing else writes it: ``User.save`` leaves the column out, so an
  account saved from an object read earlier cannot put an old stamp back.
- today's date (weeks to go), the active language and time zone (dates and times), the page's
  path (the prediction form's ``next``); a change of settings (tests) empties the cache.

The CSRF field is not kept: the cards are drawn with a marker in its place, and each request
gets its own freshly masked token (:func:`dashboard_cards`).

A write that bypasses ``save()`` and ``delete()`` (``QuerySet.update()``, ``bulk_create``) on
those models sends no signal: it must call :func:`cards_changed` itself.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.core.cache import caches
from django.core.signals import setting_changed
from django.template.backends.utils import csrf_input
from django.utils import timezone, translation
from django.utils.safestring import SafeString, mark_safe

CACHE_ALIAS = "dashboard_cards"
# Stands for the page's CSRF field in the kept cards; an HTML comment, so a kept copy that
# escaped the replacement would still be valid markup (with a form that says why it fails).
CSRF_FIELD_MARKER = "<!--csrf-field-->"


@dataclass(frozen=True)
class DashboardCards:
    count: int  # how many babies (the page says "add your first baby" for none)
    html: SafeString


def dashboard_cards(request) -> DashboardCards:
    """The signed-in parent's cards, drawn now or kept from an earlier request with the same key."""
    # Imported here: the cards build on the selectors, which build on the models.
    from babies.cards import baby_cards, render_cards
    from babies.selectors import babies_for_dashboard

    cache = caches[CACHE_ALIAS]
    key = _key(request)
    kept = cache.get(key)
    if kept is None:
        cards = baby_cards(babies_for_dashboard(user=request.user))
        kept = (len(cards), str(render_cards(request, cards, csrf_field=CSRF_FIELD_MARKER)))
        cache.set(key, kept)
    count, html = kept
    if count:
        html = html.replace(CSRF_FIELD_MARKER, csrf_input(request))
    # Drawn by the autoescaping templates of babies.cards.render_cards.
    return DashboardCards(count=count, html=mark_safe(html))  # noqa: S308


def _key(request) -> str:
    user = request.user
    return ":".join(
        (
            str(user.pk),
            user.cards_stamp.hex,
            timezone.localdate().isoformat(),
            translation.get_language() or "",
            timezone.get_current_timezone_name(),
            request.path,
        )
    )


def cards_changed(**lookups) -> None:
    """A new ``cards_stamp`` for the users ``lookups`` select (``pk=...``, ``babies__pk=...``):
    one UPDATE, in the caller's transaction."""
    # Imported here: accounts' models load before this module is imported by the apps' ready().
    from accounts.models import User

    User.objects.filter(**lookups).update(cards_stamp=uuid.uuid4())


# --- Receivers (connected in BabiesConfig.ready and PredictionsConfig.ready) ------------------
def on_baby_changed(sender, instance, **kwargs) -> None:
    cards_changed(pk=instance.owner_id)


def on_scan_or_prediction_changed(sender, instance, **kwargs) -> None:
    cards_changed(babies__pk=instance.baby_id)


def on_model_version_changed(sender, instance, **kwargs) -> None:
    # Its name and figures are on the cards of every baby it predicted for.
    cards_changed(babies__predictions__model_version_id=instance.pk)


def on_setting_changed(**kwargs) -> None:
    caches[CACHE_ALIAS].clear()


setting_changed.connect(on_setting_changed, dispatch_uid="babies.card_cache.setting_changed")
