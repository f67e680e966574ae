"""The audit log: every staff change, with who, what and the values before and after. Never edited."""

from __future__ import annotations

from django.contrib import admin
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import capfirst

from audit.models import AuditEntry
from curation.admin.common import ADMIN_CSS, ReadOnlyMixin
from curation.templatetags.curation_admin import audit_value


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["when", "actor_repr", "action", "object_repr", "change_summary"]
    list_display_links = ["when"]
    list_filter = ["action", ("content_type", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["object_repr", "actor_repr", "action", "=object_id", "=batch"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "created_at",
        "actor_repr",
        "action",
        "content_type",
        "object_id",
        "object_repr",
        "batch",
        "change_table",
        "data",
    ]
    fields = readonly_fields

    class Media:
        css = ADMIN_CSS

    @admin.display(description="When", ordering="created_at")
    def when(self, entry):
        return format_html(
            '<span class="curation-nowrap">{}</span>',
            f"{timezone.localtime(entry.created_at):%d %b %Y %H:%M}",
        )

    @admin.display(description="Changes")
    def change_summary(self, entry):
        changes = entry.changes()
        if len(changes) == 1:
            key, before, after = changes[0]
            return f"{capfirst(key)}: {audit_value(before)} → {audit_value(after)}"[:120]
        return ", ".join(key for key, _, _ in changes)[:120] or ", ".join(entry.details())[:120]

    @admin.display(description="Before and after")
    def change_table(self, entry):
        return render_to_string("admin/curation/_audit_trail.html", {"entries": [entry], "hide_object": True})
