"""What the curation admins share: the stylesheet, small HTML helpers, mixins and list filters."""

from __future__ import annotations

from functools import partial

from django.contrib import admin, messages
from django.db import models
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html

from babies.models import LabelSource, Scan, Sex, user_may_view_every_baby
from curation import selectors, services

ADMIN_CSS = {"all": ["curation/admin.css"]}
SHORT_LABEL_SOURCES = {
    LabelSource.DASHBOARD: "dashboard",
    LabelSource.EMAIL: "e-mail",
    LabelSource.STAFF: "staff",
}


def admin_page(model_admin: admin.ModelAdmin, route: str, view, name: str):
    """The URL of a page in ``curation.admin.views``, behind the admin's login; the view gets
    ``model_admin`` for its permissions, messages and context."""
    return path(route, model_admin.admin_site.admin_view(partial(view, model_admin=model_admin)), name=name)


def thumbnail(scan: Scan, *, css_class: str = "curation-thumb"):
    return format_html(
        '<img src="{}" alt="Scan {}" class="{}" loading="lazy">',
        reverse("babies:scan_thumbnail", args=[scan.pk]),
        scan.pk,
        css_class,
    )


def review_url(scan_id: int) -> str:
    return reverse("admin:curation_reviewqueuescan_change", args=[scan_id])


def confirmed_sex_text(baby, *, if_none: str = "—", full_source: bool = False) -> str:
    """The baby's label and its source: "Girl · e-mail", or "Girl (staff)" with the full source name."""
    if not baby.confirmed_sex:
        return if_none
    if full_source:
        return f"{baby.get_confirmed_sex_display()} ({baby.get_confirmed_sex_source_display().lower()})"
    return f"{baby.get_confirmed_sex_display()} · {SHORT_LABEL_SOURCES[baby.confirmed_sex_source]}"


def count_in_one_batch(queryset, service, *, keyword: str, actor) -> int:
    """Run ``service`` on every selected object with one shared audit batch; how many it changed."""
    batch = services.new_batch()
    return sum(bool(service(**{keyword: obj}, actor=actor, batch=batch)) for obj in queryset)


def report_bulk(model_admin: admin.ModelAdmin, request, result: services.BulkResult, verb: str) -> None:
    noun = "scan" if result.changed == 1 else "scans"
    model_admin.message_user(request, f"{result.changed} {noun} {verb}.", messages.SUCCESS)
    if result.unchanged:
        model_admin.message_user(request, f"{result.unchanged} already were; nothing changed for them.")
    for pk, reason in (result.refused or {}).items():
        model_admin.message_user(request, f"Scan {pk} was not changed: {reason}", messages.WARNING)


# --- Mixins --------------------------------------------------------------------------------
class AuditTrailMixin:
    """Shows the object's audit entries on its admin page (read-only field ``audit_trail``)."""

    @admin.display(description="Newest first")
    def audit_trail(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        entries = selectors.audit_entries_for(obj)[:100]
        return render_to_string("admin/curation/_audit_trail.html", {"entries": entries})


class ParentsDataMixin:
    """Admins that show parents' babies and scans: nothing without ``babies.view_baby`` (and the
    second factor it implies, ``babies.models.user_may_view_every_baby``), whatever else is granted.

    The page's own permission comes on top: the review queue needs the review permission too.
    """

    def may_see_parents_data(self, request) -> bool:
        return user_may_view_every_baby(request.user)

    def has_module_permission(self, request):
        return self.may_see_parents_data(request) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return self.may_see_parents_data(request) and super().has_view_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self.may_see_parents_data(request) and super().has_change_permission(request, obj)


class NoAddOrDeleteMixin:
    """Rows made elsewhere (a parent's upload, a service) and removed another way, if at all."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyMixin(NoAddOrDeleteMixin):
    """Records that are never added, changed or deleted through the admin (ModelAdmins and inlines);
    a page that makes or changes one goes through ``curation.services``."""

    def has_change_permission(self, request, obj=None):
        return False


class ScanColumnsMixin:
    """Columns of a scan shown by more than one admin."""

    @admin.display(description="Pixels")
    def size(self, scan):
        return f"{scan.width} × {scan.height}"


# --- Filters used by more than one admin ---------------------------------------------------
class YesNoFilter(admin.SimpleListFilter):
    """Two choices that map onto one boolean lookup: ``lookup`` equals ``yes_means`` for "yes"."""

    lookup = ""
    yes_means = True
    yes_label = "Yes"
    no_label = "No"

    def lookups(self, request, model_admin):
        return [("yes", self.yes_label), ("no", self.no_label)]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(**{self.lookup: (self.value() == "yes") == self.yes_means})
        return queryset


class DeletedFilter(YesNoFilter):
    title = "deleted by the parent"
    parameter_name = "deleted"
    lookup = "deleted_at__isnull"
    yes_means = False
    yes_label, no_label = "Deleted", "Not deleted"


class ChoicesFilter(admin.SimpleListFilter):
    """One entry per value of ``text_choices`` (a ``TextChoices``); ``lookup`` is compared with it."""

    text_choices: type[models.TextChoices]
    lookup = ""

    def lookups(self, request, model_admin):
        return self.text_choices.choices

    def queryset(self, request, queryset):
        if self.value() in self.text_choices.values:
            return queryset.filter(**{self.lookup: self.value()})
        return queryset


class ConfirmedSexFilter(ChoicesFilter):
    title = "confirmed sex"
    parameter_name = "sex"
    text_choices = Sex
    # The lookup path to the baby's confirmed sex from the admin's model.
    lookup = "confirmed_sex"

    def lookups(self, request, model_admin):
        return [*super().lookups(request, model_admin), ("none", "Not confirmed")]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(**{self.lookup: ""})
        return super().queryset(request, queryset)
