"""Frozen training sets and their items: viewed here, created on one page (``views.training_set_create``),
never edited or deleted."""

from __future__ import annotations

from django.contrib import admin
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from babies.models import LabelSource, Sex, user_may_view_every_baby
from curation import services
from curation.admin import views
from curation.admin.common import ADMIN_CSS, AuditTrailMixin, ReadOnlyMixin, admin_page, review_url
from curation.models import QUALITY_FLAGS, TrainingSet, TrainingSetItem


@admin.register(TrainingSet)
class TrainingSetAdmin(AuditTrailMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "created_at",
        "created_by",
        "item_count",
        "baby_count",
        "girls",
        "boys",
        "short_note",
    ]
    list_select_related = ["created_by"]
    readonly_fields = [
        "created_at",
        "created_by",
        "note",
        "label_source_list",
        "counts",
        "data_card_table",
        "items_link",
        "trained_models",
        "split_seed",
        "content_digest",
        "audit_trail",
    ]
    fieldsets = [
        (None, {"fields": ["created_at", "created_by", "note", "label_source_list"]}),
        ("Counts", {"fields": ["counts", "items_link", "trained_models"]}),
        ("Data card", {"fields": ["data_card_table"]}),
        ("Reproducibility", {"fields": ["split_seed", "content_digest"]}),
        ("Audit trail", {"fields": ["audit_trail"]}),
    ]

    class Media:
        css = ADMIN_CSS

    def get_urls(self):
        create = admin_page(self, "create/", views.training_set_create, "curation_trainingset_create")
        return [create, *super().get_urls()]

    # A frozen set is never edited or deleted (ReadOnlyMixin); the "create" page is what makes one.
    # Its page shows the eligible scans' near-duplicates (thumbnails): parents' data, too.
    def has_create_permission(self, request) -> bool:
        return user_may_view_every_baby(request.user) and request.user.has_perm("curation.add_trainingset")

    @admin.display(description="Girls")
    def girls(self, training_set):
        return training_set.class_counts.get(Sex.FEMALE, 0)

    @admin.display(description="Boys")
    def boys(self, training_set):
        return training_set.class_counts.get(Sex.MALE, 0)

    @admin.display(description="Note")
    def short_note(self, training_set):
        return training_set.note[:80]

    @admin.display(description="Label sources")
    def label_source_list(self, training_set):
        return ", ".join(LabelSource(source).label for source in training_set.label_sources)

    @admin.display(description="Scans per split and class")
    def counts(self, training_set):
        return render_to_string("admin/curation/_training_set_counts.html", {"training_set": training_set})

    @admin.display(description="What it holds and what it left out")
    def data_card_table(self, training_set):
        card = training_set.data_card or {}
        if not card:
            return render_to_string("admin/curation/_data_card.html", {"card": None})
        excluded = card.get("excluded", {})
        share = card.get("synthetic", {}).get("share", 0.0)
        context = {
            "card": card,
            "sex_rows": [(Sex(sex).label + "s", count) for sex, count in card.get("by_sex", {}).items()],
            "source_rows": [
                (LabelSource(source).label, count)
                for source, count in card.get("by_label_source", {}).items()
            ],
            "synthetic_percent": f"{share:.0%}" if share in (0, 1) or share >= 0.01 else f"{share:.1%}",
            "reason_rows": [
                (services.EXCLUSION_REASONS.get(reason, "Other"), count)
                for reason, count in excluded.get("by_reason", {}).items()
            ],
            "flag_rows": [
                (QUALITY_FLAGS.get(flag, flag), count)
                for flag, count in excluded.get("rejected_by_flag", {}).items()
                if count
            ],
            "label_errors": _label_errors_context(card.get("label_errors")),
        }
        return render_to_string("admin/curation/_data_card.html", context)

    @admin.display(description="Items")
    def items_link(self, training_set):
        erased = training_set.items.filter(erased_at__isnull=False).count()
        url = (
            reverse("admin:curation_trainingsetitem_changelist")
            + f"?training_set__id__exact={training_set.pk}"
        )
        note = f" ({erased} erased at their parent's request)" if erased else ""
        return format_html('<a href="{}">{} items</a>{}', url, training_set.item_count, note)

    @admin.display(description="Models trained on it")
    def trained_models(self, training_set):
        versions = training_set.model_versions.order_by("-created_at")
        if not versions:
            return "None yet: manage.py train_model --training-set " + str(training_set.pk)
        return format_html_join(
            mark_safe("<br>"),  # noqa: S308 (a constant)
            '<a href="{}">{}</a>{}',
            (
                (
                    reverse("admin:predictions_modelversion_change", args=[version.pk]),
                    version,
                    " (active)" if version.is_active else "",
                )
                for version in versions
            ),
        )

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_create_training_set": self.has_create_permission(request),
            "create_url": reverse("admin:curation_trainingset_create"),
        }
        return super().changelist_view(request, extra_context)


@admin.register(TrainingSetItem)
class TrainingSetItemAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "training_set",
        "sex",
        "label_source",
        "split",
        "gestational_week",
        "erased_at",
    ]
    list_filter = ["training_set", "split", "sex", "label_source", ("erased_at", admin.EmptyFieldListFilter)]
    search_fields = ["baby_key", "scan_key", "image_sha256"]
    readonly_fields = [
        "training_set",
        "scan_link",
        "baby_key",
        "scan_key",
        "sex",
        "label_source",
        "labelled_at",
        "gestational_week",
        "split",
        "image_sha256",
        "perceptual_hash",
        "erased_at",
    ]
    fields = readonly_fields

    @admin.display(description="Live scan")
    def scan_link(self, item):
        if item.scan_id is None:
            return "Gone (purged); the frozen copy remains." if item.image else "Erased."
        return format_html('<a href="{}">Scan {}</a>', review_url(item.scan_id), item.scan_id)


def _label_errors_context(section) -> dict | None:
    """The data card's estimate of wrong answers (``training_set_label_errors``), as text."""
    if not isinstance(section, dict):
        return None
    if not section.get("estimated"):
        return {"estimated": False, "why": section.get("why", "not estimated")}
    return {
        "estimated": True,
        "rate_text": f"{section['rate']:.0%}",
        "interval_text": f"{section['lower_bound']:.0%}–{section['upper_bound']:.0%}",
        "babies": section["babies"],
        "scored_by": section.get("scored_by", []),
    }
