"""The curation admin's own pages, beside Django's changelists and change forms.

Each ModelAdmin wires its pages in ``get_urls`` (``common.admin_page``) or, for an action's
confirmation page, returns one from the action; every view gets that ``model_admin`` for its
permissions, messages and the admin's page context. Writes go through ``curation.services``.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from babies.models import LabelSource, Scan
from curation import selectors, services
from curation.admin.common import report_bulk
from curation.charts import Series, line_chart_svg
from curation.forms import DuplicateSearchForm, TrainingSetCreateForm
from curation.models import ReviewState
from predictions.models import ModelVersion
from predictions.selectors import model_version_comparison
from predictions.services import PLOT_FIELDS, model_version_gate

# On the model comparison page: shown as percentages, and drawn on the plot (all on 0..1).
PERCENT_METRICS = {"per_baby_accuracy", "per_scan_accuracy", "coverage", "accuracy_answered"}
PLOTTED_METRICS = ["per_baby_accuracy", "per_scan_auc", "ece", "brier", "coverage"]
# Versions shown on the compare page when none are selected.
COMPARE_DEFAULT_COUNT = 8


def _render(request, model_admin, template: str, title: str, **context) -> TemplateResponse:
    """An admin page of ``model_admin``'s model: the site's context, the title and ``opts``."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.model._meta,
        **context,
    }
    return TemplateResponse(request, template, context)


# --- Review queue --------------------------------------------------------------------------
def duplicates(request, model_admin):
    """Groups of near-duplicate scans; staff with the review permission reject chosen copies."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    form = DuplicateSearchForm(request.GET or None)
    max_distance, across = selectors.DEFAULT_DUPLICATE_DISTANCE, False
    if form.is_bound and form.is_valid():
        max_distance = form.cleaned_data["max_distance"]
        across = form.cleaned_data["across_babies_only"]
    if request.method == "POST":
        if not model_admin.has_review_permission(request):
            raise PermissionDenied
        ids = [int(pk) for pk in request.POST.getlist("scan") if pk.isdigit()]
        if not ids:
            model_admin.message_user(request, "Select the copies to reject first.", messages.WARNING)
        else:
            result = services.scans_review_bulk(
                scans=Scan.objects.filter(pk__in=ids),
                reviewer=request.user,
                state=ReviewState.REJECTED,
                flags={"is_duplicate": True},
            )
            report_bulk(model_admin, request, result, "rejected as duplicates")
        return HttpResponseRedirect(request.get_full_path())
    groups = selectors.near_duplicate_groups(max_distance=max_distance, across_babies_only=across)
    return _render(
        request,
        model_admin,
        "admin/curation/duplicates.html",
        "Near-duplicate scans",
        form=form if form.is_bound else DuplicateSearchForm(),
        groups=groups,
        max_distance=max_distance,
        can_review=model_admin.has_review_permission(request),
        changelist_url=reverse("admin:curation_reviewqueuescan_changelist"),
    )


# --- Babies --------------------------------------------------------------------------------
def baby_purge_confirmation(request, model_admin, babies):
    """What a purge would delete, asked before the ``purge_babies`` action does it."""
    babies = list(babies.annotate(kept=Count("scans__training_set_items")))
    return _render(
        request,
        model_admin,
        "admin/curation/baby_purge_confirmation.html",
        "Purge babies for good?",
        babies=babies,
        scan_total=sum(baby.scans_total for baby in babies),
        kept_total=sum(baby.kept for baby in babies),
        action_checkbox_name=helpers.ACTION_CHECKBOX_NAME,
    )


# --- Training sets -------------------------------------------------------------------------
def training_set_create(request, model_admin):
    """Freeze a training set from the eligible scans, choosing which near-duplicate copies to keep."""
    if not model_admin.has_create_permission(request):
        raise PermissionDenied
    form = TrainingSetCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        groups = _duplicate_groups(form.cleaned_data["label_sources"])
        try:
            training_set = services.training_set_create(
                created_by=request.user,
                note=form.cleaned_data["note"],
                label_sources=form.cleaned_data["label_sources"],
                excluded_duplicates=_duplicate_choices(request.POST, groups),
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            counts = training_set.class_counts
            model_admin.message_user(
                request,
                f"{training_set} created: {training_set.item_count} scans of {training_set.baby_count} "
                f"babies ({counts.get('female', 0)} girls' scans, {counts.get('male', 0)} boys').",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(reverse("admin:curation_trainingset_change", args=[training_set.pk]))
    sources = form.cleaned_data["label_sources"] if form.is_bound and form.is_valid() else None
    if form.is_bound and not form.is_valid() and form.data.getlist("label_sources"):
        sources = [s for s in form.data.getlist("label_sources") if s in LabelSource.values] or None
    return _render(
        request,
        model_admin,
        "admin/curation/training_set_create.html",
        "Create a training set",
        form=form,
        summary=selectors.training_eligibility_summary(label_sources=sources),
        duplicate_groups=[
            (group, request.POST.get(f"keep-{group.scans[0].pk}", "all"))
            for group in _duplicate_groups(sources)
        ],
        changelist_url=reverse("admin:curation_trainingset_changelist"),
    )


def _duplicate_groups(sources) -> list[selectors.DuplicateGroup]:
    """Near-duplicates among the eligible scans of *different* babies: the copies that would
    put one picture in the set twice (and perhaps under two labels)."""
    eligible = selectors.scans_eligible_for_training(label_sources=sources)
    return selectors.near_duplicate_groups(scans=eligible, across_babies_only=True)


def _duplicate_choices(data, groups: list[selectors.DuplicateGroup]) -> dict[int, int]:
    """``{left-out scan: kept scan}`` from the radio buttons ``keep-<first scan of group>``.

    "all" (the default) keeps every copy; an id outside its group is ignored.
    """
    excluded: dict[int, int] = {}
    for group in groups:
        choice = data.get(f"keep-{group.scans[0].pk}", "all")
        ids = [scan.pk for scan in group.scans]
        if choice.isdigit() and int(choice) in ids:
            excluded.update({pk: int(choice) for pk in ids if pk != int(choice)})
    return excluded


# --- Model versions ------------------------------------------------------------------------
def model_version_plot(request, model_admin, pk: int, kind: str):
    """Stream a stored PNG to staff (private storage has no URLs of its own)."""
    version = ModelVersion.objects.filter(pk=pk).first()
    if version is None or kind not in PLOT_FIELDS or not model_admin.has_view_permission(request, version):
        raise Http404
    field_file = getattr(version, PLOT_FIELDS[kind])
    if not field_file:
        raise Http404
    return FileResponse(field_file.storage.open(field_file.name, "rb"), content_type="image/png")


def model_version_compare(request, model_admin):
    """Versions side by side, with an inline-SVG plot; ``?id=`` picks them (default: newest)."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    ids = [int(pk) for pk in request.GET.getlist("id") if pk.isdigit()]
    versions = ModelVersion.objects.select_related("training_set")
    versions = (
        list(versions.filter(pk__in=ids))
        if ids
        else list(versions.order_by("-created_at", "-id")[:COMPARE_DEFAULT_COUNT])
    )
    comparison = model_version_comparison(versions=versions)
    metric_rows = []
    for key, label, values, higher_is_better in comparison.metric_rows:
        known = [v for v in values if v is not None]
        best = (max(known) if higher_is_better else min(known)) if len(known) > 1 else None
        cells = [
            (
                "—" if v is None else (f"{v:.1%}" if key in PERCENT_METRICS else f"{v:.3f}"),
                v is not None and v == best,
            )
            for v in values
        ]
        metric_rows.append((key, label, cells))

    def accuracy_cells(cells):
        return ["—" if c is None else f"{c[0]:.0%}" + (f" (n={c[1]})" if c[1] else "") for c in cells]

    week_rows = [
        (f"Week {week}" if week.isdigit() else week, accuracy_cells(cells))
        for week, cells in comparison.week_rows
    ]
    band_rows = [
        (f"Weeks {band}" if band != "unknown" else "Week unknown", accuracy_cells(cells))
        for band, cells in comparison.band_rows
    ]
    plotted = [(label, values) for key, label, values, _ in comparison.metric_rows if key in PLOTTED_METRICS]
    chart = line_chart_svg(
        title="Held-out metrics across model versions, oldest first (0 to 1)",
        x_labels=[f"#{version.pk}" for version in comparison.versions],
        series=[
            Series(label=label, values=values)
            for label, values in plotted
            if any(v is not None for v in values)
        ],
    )
    return _render(
        request,
        model_admin,
        "admin/curation/model_version_compare.html",
        "Compare model versions",
        comparison=comparison,
        metric_rows=metric_rows,
        week_rows=week_rows,
        band_rows=band_rows,
        training_columns=list(zip(comparison.versions, comparison.training_scans, strict=True)),
        chart=chart,
        showing_newest=not ids,
    )


def model_version_activate_confirmation(request, model_admin, version: ModelVersion):
    """The quality gate's verdict and the active version, asked before the ``activate`` action;
    a failed gate can be overridden with a reason."""
    return _render(
        request,
        model_admin,
        "admin/curation/model_version_activate_confirmation.html",
        f"Activate {version}?",
        version=version,
        active=ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).first(),
        summary=model_admin.metrics_summary(version),
        gate=model_version_gate(version),
        can_override=model_admin.has_override_gate_permission(request),
        action_checkbox_name=helpers.ACTION_CHECKBOX_NAME,
    )
