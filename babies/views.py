"""The parent's pages: the dashboard, babies, the crop-and-upload endpoint and the scan files.

Every view looks its object up through the signed-in parent (``selectors``), so another
parent's baby or scan is a 404. Views only translate between HTTP and the services.
"""

from __future__ import annotations

import functools
import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from babies import exif, images, selectors, services
from babies.card_cache import dashboard_cards
from babies.cards import baby_card, render_panels
from babies.files import FILES_PENDING_MESSAGE, StorageUnavailable
from babies.forms import BabyForm, ConfirmSexForm, ScanUploadForm, gestational_week_help_text
from babies.models import LabelSource
from babies.serving import private_file_response
from instagender.ratelimits import per_account_rate_limit
from ml.gestation import gestational_week_from_dates

logger = logging.getLogger(__name__)

# The multipart envelope and the small fields around the file.
UPLOAD_OVERHEAD_BYTES = 64 * 1024


def _upload_context() -> dict:
    return {
        "scan_accept": images.accept_attribute(),
        "scan_formats": images.allowed_formats_sentence(),
        "upload_week_help": gestational_week_help_text(),
        "scan_max_bytes": settings.SCAN_MAX_UPLOAD_BYTES,
        "min_week": settings.PREDICTION_MIN_GESTATIONAL_WEEK,
    }


def _post_or_none(request):
    """Bind a form on POST even when the POST is empty (an empty QueryDict is falsy)."""
    return request.POST if request.method == "POST" else None


@login_required
def dashboard(request):
    cards = dashboard_cards(request)
    context = {"cards": cards.count, "cards_html": cards.html, **_upload_context()}
    return render(request, "babies/dashboard.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def baby_create(request):
    form = BabyForm(_post_or_none(request), submit_label="Add baby")
    if request.method == "POST" and form.is_valid():
        try:
            baby = services.baby_create(owner=request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"{baby.display_name} was added.")
            return redirect(f"{reverse('babies:dashboard')}#baby-{baby.pk}")
    return render(request, "babies/baby_form.html", {"form": form, "title": "Add a baby"})


@login_required
def baby_detail(request, baby_id: int):
    baby = selectors.baby_get_for_owner(user=request.user, baby_id=baby_id)
    scans = list(selectors.baby_scans(baby=baby))
    card = baby_card(baby, scans=scans)
    is_owner = baby.owner_id == request.user.pk and not baby.is_deleted
    context = {
        "baby": baby,
        "scans": scans,
        # The sex and prediction panels are the dashboard card's (``babies.cards``).
        "card": card,
        "panels_html": render_panels(request, card) if is_owner else "",
        "is_owner": is_owner,
        "confirm_sex_form": ConfirmSexForm(initial={"sex": baby.confirmed_sex or None}),
        **_upload_context(),
    }
    return render(request, "babies/baby_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def baby_update(request, baby_id: int):
    baby = selectors.baby_get_for_owner(user=request.user, baby_id=baby_id, allow_staff=False)
    form = BabyForm(_post_or_none(request), instance=baby, submit_label="Save changes")
    if request.method == "POST" and form.is_valid():
        try:
            services.baby_update(baby=baby, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"{baby.display_name} was updated.")
            return redirect(f"{reverse('babies:dashboard')}#baby-{baby.pk}")
    return render(request, "babies/baby_form.html", {"form": form, "title": "Edit baby", "baby": baby})


@login_required
@require_http_methods(["GET", "POST"])
def baby_delete(request, baby_id: int):
    baby = selectors.baby_get_for_owner(user=request.user, baby_id=baby_id, allow_staff=False)
    if request.method == "POST":
        services.baby_soft_delete(baby=baby)
        messages.success(request, f"{baby.display_name} was deleted.")
        return redirect("babies:dashboard")
    return render(request, "babies/baby_confirm_delete.html", {"baby": baby})


@login_required
@require_http_methods(["GET", "POST"])
def baby_confirm_sex(request, baby_id: int):
    baby = selectors.baby_get_for_owner(user=request.user, baby_id=baby_id, allow_staff=False)
    form = ConfirmSexForm(_post_or_none(request), initial={"sex": baby.confirmed_sex or None})
    if request.method == "POST" and form.is_valid():
        try:
            services.baby_confirm_sex(baby=baby, sex=form.cleaned_data["sex"], source=LabelSource.DASHBOARD)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            sex = baby.get_confirmed_sex_display().lower()
            messages.success(request, f"Thank you: {baby.display_name} is a {sex}.")
            return redirect(f"{reverse('babies:dashboard')}#baby-{baby.pk}")
    return render(request, "babies/baby_confirm_sex.html", {"baby": baby, "form": form})


# --- Scans ---------------------------------------------------------------------------------
def _json_error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def json_login_required(view):
    """``login_required`` for ``fetch``: a JSON 401 instead of a redirect to the login page."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return _json_error("Your session has ended. Please log in again and retry the upload.", 401)
        return view(request, *args, **kwargs)

    return wrapper


def _scan_payload(scan, *, duplicate: bool) -> dict:
    return {
        "id": scan.pk,
        "baby_id": scan.baby_id,
        "url": reverse("babies:scan_image", args=[scan.pk]),
        "thumbnail_url": reverse("babies:scan_thumbnail", args=[scan.pk]),
        "delete_url": reverse("babies:scan_delete", args=[scan.pk]),
        "width": scan.width,
        "height": scan.height,
        "duplicate": duplicate,
        "gestational_week": scan.gestational_week,
        "has_markers": scan.has_markers,
        "notices": scan.notices,
    }


def scan_week_and_source(*, baby, form: ScanUploadForm) -> tuple[int | None, str]:
    """The week of pregnancy to record for an upload, and where it came from.

    In order: the week the parent typed ("typed"); the day the photo was taken, sent by the
    browser or read here from the file's EXIF block ("photo_date"); otherwise ``None``, so that
    ``scan_create`` counts back from the due date and today ("upload_date"; nothing for a born
    baby). The upload day is the latest day the scan can be from, so a photo's own date is the
    better guess: an old scan uploaded today no longer gets today's week.
    """
    week = form.cleaned_data["gestational_week"]
    if week is not None:
        return week, "typed"
    taken_on = form.cleaned_data.get("taken_on")
    if taken_on is None:
        taken_on = exif.photo_taken_on(images.read_upload(form.cleaned_data["file"]))
        if taken_on is not None and taken_on > timezone.localdate():
            taken_on = None
    week = gestational_week_from_dates(baby.due_date, taken_on)
    if week is not None:
        return week, "photo_date"
    return None, "upload_date"


@json_login_required
@require_POST
@per_account_rate_limit("scan_upload", json=True)
def scan_upload(request, baby_id: int):
    """Take the original file and the crop box from the crop modal; answer JSON for ``fetch``."""
    # An oversized body is refused from its header with a clear sentence. (The CSRF middleware
    # has parsed it by now; nginx's client_max_body_size is what keeps huge bodies out.)
    content_length = int(request.META.get("CONTENT_LENGTH") or 0)
    if content_length > settings.SCAN_MAX_UPLOAD_BYTES + UPLOAD_OVERHEAD_BYTES:
        return _json_error(
            f"This file is larger than the {filesizeformat(settings.SCAN_MAX_UPLOAD_BYTES)} we accept. "
            "Please upload a smaller image, for example a screenshot of the scan.",
            413,
        )
    try:
        baby = selectors.baby_get_for_owner(user=request.user, baby_id=baby_id, allow_staff=False)
    except Http404:
        return _json_error(
            "We could not find this baby. It may have been deleted; please reload the page.", 404
        )

    form = ScanUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _json_error(form.first_error(), 400)
    try:
        gestational_week, week_source = scan_week_and_source(baby=baby, form=form)
        scan, created = services.scan_create(
            baby=baby,
            uploaded_file=form.cleaned_data["file"],
            crop_box=form.cleaned_data["crop_box"],
            gestational_week=gestational_week,
        )
    except images.ImageError as error:
        return _json_error(error.message, error.status_code)
    except StorageUnavailable as error:
        logger.exception("scan upload: storage refused the files")
        return _json_error(error.message, error.status_code)
    except ValidationError as error:
        return _json_error(" ".join(error.messages), 400)

    payload = _scan_payload(scan, duplicate=not created)
    if created:
        payload["week_source"] = week_source if scan.gestational_week is not None else None
    if not created:
        payload["message"] = "You have already uploaded this scan for this baby, so it was not added again."
    return JsonResponse(payload, status=201 if created else 200)


@login_required
@require_http_methods(["GET", "POST"])
def scan_delete(request, scan_id: int):
    scan = selectors.scan_get_for_owner(user=request.user, scan_id=scan_id)
    baby = scan.baby
    if request.method == "POST":
        removal = services.scan_delete(scan=scan)
        if removal.complete:
            messages.success(request, f"The scan was deleted from {baby.display_name}.")
        else:
            # The row is gone and the ledger guarantees the files go, but they are not gone yet.
            messages.warning(
                request, f"The scan was removed from {baby.display_name}. {FILES_PENDING_MESSAGE}"
            )
        return redirect("babies:baby_detail", baby_id=baby.pk)
    return render(request, "babies/scan_confirm_delete.html", {"scan": scan, "baby": baby})


@login_required
@require_http_methods(["GET", "HEAD"])
def scan_image(request, scan_id: int):
    """The normalised JPEG, for its owner and staff only (the original is never served)."""
    scan = selectors.scan_get_for_viewer(user=request.user, scan_id=scan_id)
    return private_file_response(alias="scans", name=scan.image.name)


@login_required
@require_http_methods(["GET", "HEAD"])
def scan_thumbnail(request, scan_id: int):
    scan = selectors.scan_get_for_viewer(user=request.user, scan_id=scan_id)
    return private_file_response(alias="scans", name=scan.thumbnail.name or scan.image.name)
