"""Model versions: their metrics, plots, training set and history; staff compare and activate them.

``manage.py train_model`` makes the rows. A version is a record of what was trained on what: viewed
and activated here, never edited or deleted (its predictions protect it, and deleting a row would
orphan its files). Activation asks first, shows the quality gate's verdict and is logged.
"""

from __future__ import annotations

import json
import math

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from curation.admin import views
from curation.admin.common import ADMIN_CSS, AuditTrailMixin, ReadOnlyMixin, admin_page
from curation.charts import Point, scatter_chart_svg
from curation.learning_curve import learning_curve
from predictions.models import ModelVersion
from predictions.selectors import model_activation_history
from predictions.services import PLOT_FIELDS, ModelGateError, model_version_activate
from predictions.templatetags import prediction_tags


@admin.register(ModelVersion)
class ModelVersionAdmin(AuditTrailMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "architecture",
        "is_synthetic",
        "is_active",
        "per_baby_accuracy",
        "temperature",
        "created_at",
        "training_set_link",
    ]
    list_filter = ["is_active", "is_synthetic", "architecture"]
    list_select_related = ["training_set"]
    search_fields = ["name", "training_data_digest", "training_data_description"]
    actions = ["activate", "compare"]
    fieldsets = [
        (None, {"fields": ["name", "architecture", "is_synthetic", "created_at", "files"]}),
        ("Activation", {"fields": ["is_active", "activated_at", "activated_by", "activation_reason"]}),
        (
            "Evaluation on held-out babies",
            {"fields": ["metrics_summary", "honesty_tables", "plots", "temperature"]},
        ),
        (
            "Input and training",
            {"fields": ["input_spec", "training_data_digest", "training_data_description"]},
        ),
        ("Training set", {"fields": ["training_set_link"]}),
        ("Model history", {"fields": ["activation_history"]}),
        ("Raw JSON", {"classes": ["collapse"], "fields": ["metrics_json", "training_parameters_json"]}),
        ("Audit trail", {"fields": ["audit_trail"]}),
    ]
    readonly_fields = [
        "name",
        "architecture",
        "is_synthetic",
        "created_at",
        "files",
        "is_active",
        "activated_at",
        "activated_by",
        "activation_reason",
        "metrics_summary",
        "honesty_tables",
        "plots",
        "temperature",
        "input_spec",
        "training_data_digest",
        "training_data_description",
        "metrics_json",
        "training_parameters_json",
        "training_set_link",
        "activation_history",
        "audit_trail",
    ]

    class Media:
        css = ADMIN_CSS

    def get_urls(self):
        return [
            admin_page(self, "compare/", views.model_version_compare, "predictions_modelversion_compare"),
            admin_page(
                self, "<int:pk>/plot/<str:kind>/", views.model_version_plot, "predictions_modelversion_plot"
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        """The list, with the learning curve of every version above it."""
        return super().changelist_view(
            request, extra_context={**(extra_context or {}), **_learning_curve_context()}
        )

    # Activating is its own permission (the model operator's), not "change": versions are never
    # edited. Overriding a refusal of the quality gate is another, which no role grants.
    def has_activate_permission(self, request) -> bool:
        return request.user.has_perm("accounts.activate_modelversion")

    def has_override_gate_permission(self, request) -> bool:
        return request.user.has_perm("accounts.override_model_gate")

    # --- columns and fields
    @admin.display(description="per-baby accuracy (test)")
    def per_baby_accuracy(self, obj):
        value = obj.per_baby_accuracy
        return f"{value:.1%}" if value is not None else "—"

    @admin.display(description="training set")
    def training_set_link(self, version):
        if version.training_set_id is None:
            return "—" if not version.is_synthetic else "— (synthetic folder)"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:curation_trainingset_change", args=[version.training_set_id]),
            version.training_set,
        )

    @admin.display(description='by week band and "cannot tell"')
    def honesty_tables(self, obj):
        """The per-week-band metrics and the abstention table the pipeline stored, read-only."""
        honesty = prediction_tags.honesty_tables(obj.metrics)
        # render_to_string returns a SafeString, so the admin shows the tables, not their markup.
        return render_to_string("predictions/_model_version_honesty.html", {"honesty": honesty})

    @admin.display(description="files")
    def files(self, obj):
        return format_html("{}<br>{}", obj.keras_file.name, obj.tflite_file.name)

    @admin.display(description="plots")
    def plots(self, obj):
        shown = [
            (reverse("admin:predictions_modelversion_plot", args=[obj.pk, kind]), kind.replace("_", " "))
            for kind, field in PLOT_FIELDS.items()
            if getattr(obj, field)
        ]
        if not shown:
            return "—"
        return format_html_join(" ", '<img src="{}" alt="{} plot" width="320">', shown)

    @admin.display(description="summary")
    def metrics_summary(self, obj):
        """The headline and the held-out figures, read through ``VersionMetrics`` (missing: left out)."""
        measured = obj.measured
        rows = []
        if measured.evaluation is not None and measured.headline.get("accuracy") is not None:
            rows.append(
                (
                    "headline (per baby)",
                    _figures(measured.headline, f"babies of the {measured.evaluation_set_name}"),
                )
            )
        for level in ("per_scan", "per_baby"):
            report = (measured.data.get("calibrated") or {}).get(level)
            if isinstance(report, dict) and report.get("accuracy") is not None:
                rows.append((f"held-out test, {level.replace('_', ' ')}", _figures(report, "")))
        before = measured.number(("ece_before_calibration",))
        after = measured.number(("ece_after_calibration",))
        if before is not None and after is not None:
            rows.append(("ECE per scan", f"{before:.3f} before, {after:.3f} after temperature scaling"))
        per_scan, per_baby = measured.number(("bayes", "ceiling_per_scan")), measured.bayes_ceiling_per_baby
        if per_scan is not None and per_baby is not None:
            rows.append(
                ("Bayes ceiling", f"{per_scan:.1%} per scan, {per_baby:.1%} per baby (synthetic data)")
            )
        return format_html_join("", "<div><strong>{}</strong>: {}</div>", rows) if rows else "—"

    @admin.display(description="Activations (who, when, why)")
    def activation_history(self, version):
        return render_to_string(
            "admin/curation/_model_history.html",
            {
                "rows": model_activation_history(model_version=version),
                "compare_url": reverse("admin:predictions_modelversion_compare"),
            },
        )

    @admin.display(description="metrics")
    def metrics_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.metrics, indent=2))

    @admin.display(description="training parameters")
    def training_parameters_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.training_parameters, indent=2))

    # --- actions
    @admin.action(description="Compare the selected versions")
    def compare(self, request, queryset):
        ids = "&".join(f"id={pk}" for pk in queryset.values_list("pk", flat=True))
        return HttpResponseRedirect(f"{reverse('admin:predictions_modelversion_compare')}?{ids}")

    @admin.action(description="Activate the selected model version", permissions=["activate"])
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one model version to activate.", messages.ERROR)
            return None
        version = queryset.get()
        if request.POST.get("post") != "yes":
            return views.model_version_activate_confirmation(request, model_admin=self, version=version)
        if version.is_active:
            self.message_user(request, f"{version} was already active.")
            return None
        override = request.POST.get("override_reason", "").strip()
        if override and not self.has_override_gate_permission(request):
            raise PermissionDenied
        try:
            model_version_activate(
                model_version=version,
                user=request.user,
                reason=f"admin action, gate overridden: {override}" if override else "admin action",
                override_gate=bool(override),
            )
        except ModelGateError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None
        self.message_user(request, f"{version} is now active: predictions use it.", messages.SUCCESS)
        return None


def _learning_curve_context() -> dict:
    """Accuracy on the evaluation set against training babies, every comparable version."""
    curve = learning_curve(ModelVersion.objects.select_related("training_set").order_by("pk"))
    points = [
        Point(
            x=point.training_babies,
            y=point.accuracy,
            low=point.accuracy_ci95[0] if point.accuracy_ci95 else None,
            high=point.accuracy_ci95[1] if point.accuracy_ci95 else None,
            series=2 if point.version.is_active else 1,
            label=f"#{point.version.pk} {point.version.name}: {point.accuracy:.1%} "
            f"with {point.training_babies} training babies",
        )
        for point in curve.points
    ]
    lowest = min([point.low or point.y for point in points] + [curve.bayes_ceiling_per_baby or 1.0])
    chart = scatter_chart_svg(
        title="Per-baby accuracy on the evaluation set against the babies each version was trained on",
        title_id="learning-curve-title",
        x_label="babies in the training data (log scale)",
        points=points,
        series_labels={1: "version", 2: "live version"},
        y_min=min(0.5, math.floor(lowest * 10) / 10),
        reference=(
            ("per-baby Bayes ceiling (synthetic data)", curve.bayes_ceiling_per_baby)
            if curve.bayes_ceiling_per_baby
            else None
        ),
    )
    rows = [
        (
            point.version,
            point.training_babies,
            f"{point.accuracy:.1%}" + _interval_text(point.accuracy_ci95),
        )
        for point in curve.points
    ]
    ceiling = curve.bayes_ceiling_per_baby
    return {
        "learning_curve": curve,
        "learning_curve_chart": chart if points else None,
        "learning_curve_rows": rows,
        "learning_curve_ceiling": f"{ceiling:.1%}" if ceiling else "",
    }


def _interval_text(interval) -> str:
    return f" ({interval[0]:.1%}–{interval[1]:.1%})" if interval else ""


def _figures(report: dict, unit: str) -> str:
    """ "accuracy 91.2% (95% CI …), AUC …, ECE …, n = …" from a per-scan or per-baby report."""
    parts = [f"accuracy {report['accuracy']:.1%}"]
    interval = report.get("accuracy_ci95") or report.get("accuracy_wilson95")
    if isinstance(interval, list | tuple) and len(interval) == 2 and None not in interval:
        parts[0] += f" (95% CI {interval[0]:.1%}–{interval[1]:.1%})"
    for key, label in (("roc_auc", "AUC"), ("brier", "Brier"), ("ece", "ECE")):
        if isinstance(report.get(key), int | float):
            parts.append(f"{label} {report[key]:.3f}")
    if report.get("count") is not None:
        parts.append(f"n = {report['count']}{' ' + unit if unit else ''}")
    return ", ".join(parts)
