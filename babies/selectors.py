"""Reads shared by the babies views (and other apps): every parent-facing one goes through the owner."""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from babies.models import Baby, Scan, user_may_view_every_baby

if TYPE_CHECKING:
    from predictions.models import Prediction


@dataclass(frozen=True)
class DashboardBaby:
    """A baby on the dashboard with what its card shows."""

    baby: Baby
    scans: list[Scan]  # oldest first
    prediction: Prediction | None  # the latest, with its model version


def _dashboard_order(baby: Baby) -> tuple:
    """Babies still expected first, then born ones, youngest first; among those, the soonest due
    date first (none last); then the newest added."""
    born, due = baby.birth_date, baby.due_date
    return (
        born is not None,
        -born.toordinal() if born else 0,
        due is None,
        due or datetime.date.min,
        -baby.created_at.timestamp(),
        -baby.pk,
    )


# What a dashboard card and its prediction panel read of a scan (``babies.cards``,
# ``predictions.selectors.baby_prediction_status``).
CARD_SCAN_FIELDS = ("id", "baby_id", "gestational_week", "has_markers", "uploaded_at")


def babies_for_dashboard(*, user) -> list[DashboardBaby]:
    """The user's babies in the dashboard's order (:func:`_dashboard_order`), each with its
    scans, oldest first, and its latest prediction with the prediction's model version: four
    queries however many babies, scans and predictions there are.

    Each query is kept as cheap to build as to run: the latest prediction's id comes with the
    babies (``prediction_latest_id``), then the predictions by id; the scans of all babies in
    one plain query, grouped here; the few rows sorted here rather than by an ORDER BY.
    Django's sliced ``Prefetch`` (one window-function query) and ``prefetch_related`` (a
    queryset per baby) cost more than the queries themselves, on every dashboard.
    """
    # Imported here: predictions builds on babies, not the other way round.
    from predictions.selectors import prediction_latest_id, predictions_with_versions

    babies = Baby.objects.for_owner(user).annotate(latest_prediction_id=prediction_latest_id()).order_by()
    babies = sorted(babies, key=_dashboard_order)
    scans = defaultdict(list)
    # Only what a card reads of a scan (its links are made from the id): no file names, crop
    # box or hashes to load for every thumbnail.
    rows = Scan.objects.filter(baby_id__in=[baby.pk for baby in babies]).only(*CARD_SCAN_FIELDS).order_by()
    for scan in sorted(rows, key=lambda scan: (scan.uploaded_at, scan.pk)):
        scans[scan.baby_id].append(scan)
    predictions = predictions_with_versions([baby.latest_prediction_id for baby in babies])
    return [
        DashboardBaby(baby=baby, scans=scans[baby.pk], prediction=predictions.get(baby.latest_prediction_id))
        for baby in babies
    ]


def baby_get_for_owner(*, user, baby_id: int, allow_staff: bool = True) -> Baby:
    """The user's own baby, or 404 for anyone else's (never 403: that would confirm it exists).

    Staff allowed to view babies (``user_may_view_every_baby``) may look at any baby,
    soft-deleted ones included, unless ``allow_staff`` is False: changes through the parent's
    pages are for the parent only (staff use the admin).
    """
    if allow_staff and user_may_view_every_baby(user):
        return get_object_or_404(Baby.all_objects.select_related("owner"), pk=baby_id)
    return get_object_or_404(Baby.objects.for_owner(user), pk=baby_id)


def baby_scans(*, baby: Baby) -> QuerySet[Scan]:
    return Scan.objects.filter(baby=baby).order_by("uploaded_at", "id")


def scan_get_for_viewer(*, user, scan_id: int) -> Scan:
    """A scan its owner or staff allowed to view babies may see; 404 for everyone else."""
    return get_object_or_404(Scan.objects.visible_to(user).select_related("baby"), pk=scan_id)


def scan_get_for_owner(*, user, scan_id: int) -> Scan:
    """A scan of the user's own live baby (for changes); 404 for everyone else, staff included."""
    scan = Scan.objects.for_owner(user).select_related("baby").filter(pk=scan_id).first()
    if scan is None:
        raise Http404("No such scan.")
    return scan
