"""Staff view model versions, their plots and metrics, and activate one. Training makes them."""

import json

from django.contrib import admin, messages
from django.http import FileResponse, Http404
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from predictions.models import ModelVersion
from predictions.services import PLOT_FIELDS, ModelGateError, model_version_activate
from predictions.templatetags import prediction_tags


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Read-only except for activation; rows are made by ``manage.py train_model``."""

    list_display = [
        "id",
        "name",
        "architecture",
        "is_synthetic",
        "is_active",
        "per_baby_accuracy",
        "temperature",
        "created_at",
    ]
    list_filter = ["is_active", "is_synthetic", "architecture"]
    search_fields = ["name", "training_data_digest", "training_data_description"]
    actions = ["activate"]
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
        ("Raw JSON", {"classes": ["collapse"], "fields": ["metrics_json", "training_parameters_json"]}),
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
    ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Viewing is allowed through the view permission; activation is the admin action.
        return request.method != "POST" or obj is None

    def get_urls(self):
        plot = path(
            "<int:pk>/plot/<str:kind>/",
            self.admin_site.admin_view(self.plot_view),
            name="predictions_modelversion_plot",
        )
        return [plot, *super().get_urls()]

    def plot_view(self, request, pk: int, kind: str):
        """Stream a stored PNG to staff (private storage has no URLs of its own)."""
        version = ModelVersion.objects.filter(pk=pk).first()
        if version is None or kind not in PLOT_FIELDS or not self.has_view_permission(request, version):
            raise Http404
        field_file = getattr(version, PLOT_FIELDS[kind])
        if not field_file:
            raise Http404
        return FileResponse(field_file.storage.open(field_file.name, "rb"), content_type="image/png")

    @admin.display(description="per-baby accuracy (test)")
    def per_baby_accuracy(self, obj):
        value = obj.per_baby_accuracy
        return f"{value:.1%}" if value is not None else "—"

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
        try:
            return self._metrics_summary(obj)
        except (KeyError, TypeError, ValueError):
            return "The metrics are incomplete; see the raw JSON below."

    def _metrics_summary(self, obj):
        calibrated = obj.metrics.get("calibrated") or {}
        rows = []
        evaluation = obj.metrics.get("evaluation")
        if evaluation and (evaluation.get("per_baby") or {}).get("accuracy") is not None:
            baby = evaluation["per_baby"]
            interval = baby.get("accuracy_ci95") or baby.get("accuracy_wilson95")
            ece = baby.get("ece")
            rows.append(
                (
                    "headline (per baby)",
                    f"accuracy {baby['accuracy']:.1%}"
                    + (f" (95% CI {interval[0]:.1%}–{interval[1]:.1%})" if interval else "")
                    + (f", ECE {ece:.3f}" if ece is not None else "")
                    + f", n = {baby['count']} babies of the "
                    + (evaluation.get("set") or {}).get("name", "evaluation set"),
                )
            )
        for level in ("per_scan", "per_baby"):
            report = calibrated.get(level)
            if report and report.get("accuracy") is not None:
                low, high = report["accuracy_ci95"]
                rows.append(
                    (
                        level.replace("_", " "),
                        f"accuracy {report['accuracy']:.1%} (95% CI {low:.1%}–{high:.1%}), "
                        f"AUC {report['roc_auc'] or 0:.3f}, Brier {report['brier']:.3f}, "
                        f"n = {report['count']}",
                    )
                )
        if "ece_after_calibration" in obj.metrics:
            rows.append(
                (
                    "ECE",
                    f"{obj.metrics['ece_before_calibration']:.3f} before, "
                    f"{obj.metrics['ece_after_calibration']:.3f} after temperature scaling",
                )
            )
        bayes = obj.metrics.get("bayes")
        if bayes:
            rows.append(
                (
                    "Bayes ceiling",
                    f"{bayes['ceiling_per_scan']:.1%} per scan, {bayes['ceiling_per_baby']:.1%} per baby "
                    "(synthetic data)",
                )
            )
        return format_html_join("", "<div><strong>{}</strong>: {}</div>", rows) if rows else "—"

    @admin.display(description="metrics")
    def metrics_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.metrics, indent=2))

    @admin.display(description="training parameters")
    def training_parameters_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.training_parameters, indent=2))

    @admin.action(description="Activate the selected model version")
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one model version to activate.", messages.ERROR)
            return
        try:
            version = model_version_activate(
                model_version=queryset.get(), user=request.user, reason="admin action"
            )
        except ModelGateError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{version} is now active.", messages.SUCCESS)
