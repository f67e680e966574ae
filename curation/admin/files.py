"""File safety, read-only: the ledger of file deletions and the rows that lost their file.

Staff see here what cron is still retrying (``manage.py finish_file_deletions``) and why, and
what ``manage.py reconcile_media`` found missing. Nothing is changed from these pages: the ledger
finishes itself once storage works, and a row without its file is fixed by restoring the file
from a backup or by deleting the row through its own admin.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html

from babies.models import FileDeletion, MissingFile
from curation.admin.common import ADMIN_CSS, ReadOnlyMixin


class FileDeletionStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "Not done yet"), ("failing", "Failing (tried and not done)"), ("done", "Done")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(done_at__isnull=True)
        if self.value() == "failing":
            return queryset.filter(done_at__isnull=True, attempts__gt=0)
        if self.value() == "done":
            return queryset.filter(done_at__isnull=False)
        return queryset


@admin.register(FileDeletion)
class FileDeletionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["file", "reason", "state", "attempts", "short_error"]
    list_filter = [FileDeletionStateFilter, "reason", "storage", "outcome"]
    search_fields = ["name"]
    date_hierarchy = "created_at"
    fields = [
        "storage",
        "name",
        "reason",
        "state",
        "outcome",
        "attempts",
        "last_error",
        "last_attempt_at",
        "created_at",
        "due_at",
        "done_at",
    ]
    readonly_fields = fields

    class Media:
        css = ADMIN_CSS

    @admin.display(description="File", ordering="name")
    def file(self, entry):
        return format_html('<span class="curation-file-name">{}/{}</span>', entry.storage, entry.name)

    @admin.display(description="Last error")
    def short_error(self, entry):
        # The whole message is on the entry's page; the list shows its start.
        error = entry.last_error
        return format_html(
            '<span class="curation-file-name">{}</span>', error if len(error) <= 60 else error[:59] + "…"
        )

    @admin.display(description="State")
    def state(self, entry):
        if entry.done_at is not None:
            return entry.get_outcome_display() or "Done"
        if entry.due_at > timezone.now():
            return "Waiting (an upload that may still commit)"
        return "Retrying" if entry.attempts else "Due"


class MissingFileStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "Still missing"), ("resolved", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(MissingFile)
class MissingFileAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["row", "field", "file", "found_at", "last_seen_at", "resolved_at"]
    list_filter = [MissingFileStateFilter, "model", "storage"]
    search_fields = ["name", "=object_id"]
    fields = ["model", "object_id", "field", "storage", "name", "found_at", "last_seen_at", "resolved_at"]
    readonly_fields = fields

    class Media:
        css = ADMIN_CSS

    @admin.display(description="Row", ordering="model")
    def row(self, missing):
        return f"{missing.model} {missing.object_id}"

    @admin.display(description="File", ordering="name")
    def file(self, missing):
        return f"{missing.storage}/{missing.name}"
