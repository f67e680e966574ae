"""Reads shared by the babies views (and other apps): every parent-facing one goes through the owner."""

from __future__ import annotations

from django.db.models import F, Prefetch, QuerySet, prefetch_related_objects
from django.http import Http404
from django.shortcuts import get_object_or_404

from babies.models import Baby, Scan, user_may_view_every_baby


def babies_for_dashboard(*, user) -> list[Baby]:
    """The user's babies, each with its scans (``baby.scans.all()``, oldest first) and its latest
    prediction with the prediction's model version: four queries however many babies, scans and
    predictions there are.

    Babies still expected come first, soonest due date first; born babies follow, youngest first.
    Each card also shows the latest prediction (``predictions/_baby_prediction.html``): its id
    comes with the babies (a subquery on the index of a baby's predictions by time), the rows
    by their ids. Django's sliced ``Prefetch`` would do the same in one window-function query,
    but building that query cost more than the two plain ones, on every dashboard.
    """
    # Imported here: predictions builds on babies, not the other way round.
    from predictions.selectors import prediction_latest_attach, prediction_latest_id

    babies = list(
        Baby.objects.for_owner(user)
        .annotate(latest_prediction_id=prediction_latest_id())
        .order_by(F("birth_date").desc(nulls_first=True), F("due_date").asc(nulls_last=True), "-created_at")
    )
    prefetch_related_objects(babies, Prefetch("scans", queryset=Scan.objects.order_by("uploaded_at", "id")))
    prediction_latest_attach(babies, [baby.latest_prediction_id for baby in babies])
    return babies


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
