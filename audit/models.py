"""The audit log: who changed what, when, with the values before and after. Append-only.

An app of its own, below the apps that write to it (``accounts``, ``babies``, ``predictions``,
``curation``), as pretix keeps ``LogEntry`` and ``log_action`` in its base: any app may import it,
and it imports none of them. Entries are written by ``audit.services.audit_log``.

The table keeps the name it had when the model lived in ``curation`` (``curation_auditentry``),
so moving the model moved no data.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class AuditEntryQuerySet(models.QuerySet):
    """No bulk update or delete: the log is append-only (the database refuses them too)."""

    def update(self, **kwargs):
        raise ValueError("Audit entries cannot be changed once written.")

    def delete(self):
        raise ValueError("Audit entries cannot be deleted.")


class AuditEntry(models.Model):
    """Who changed what, when, with the values before and after. Append-only.

    ``object_repr`` is written at the time of the change and never contains a parent's name or
    e-mail address, so it can outlive the object (a purged baby, a deleted account).
    """

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_repr = models.CharField("actor", max_length=254, blank=True)
    action = models.CharField(max_length=64, db_index=True, help_text="A dotted name, e.g. scan.reviewed.")
    content_type = models.ForeignKey(ContentType, on_delete=models.SET_NULL, null=True, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField("object", max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    # Entries written by one bulk action share a batch, so "who rejected these 40 scans" is one query.
    batch = models.UUIDField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        db_table = "curation_auditentry"
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["content_type", "object_id"], name="auditentry_object")]

    def __str__(self) -> str:
        return f"{self.action} {self.object_repr}".strip()

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("Audit entries cannot be changed once written.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit entries cannot be deleted.")

    def changes(self) -> list[tuple[str, object, object]]:
        """``(field, before, after)`` for each value that changed, when ``data`` holds both."""
        data = self.data if isinstance(self.data, dict) else {}
        before, after = data.get("before"), data.get("after")
        if not isinstance(before, dict) or not isinstance(after, dict):
            return []
        keys = list(dict.fromkeys([*before, *after]))
        return [(key, before.get(key), after.get(key)) for key in keys if before.get(key) != after.get(key)]

    def details(self) -> dict:
        """What to show besides the changes: the values of a created (or removed) object, and
        anything else the entry recorded."""
        data = self.data if isinstance(self.data, dict) else {}
        before, after = data.get("before"), data.get("after")
        shown = {}
        if isinstance(after, dict) and not isinstance(before, dict):
            shown.update(after)
        elif isinstance(before, dict) and not isinstance(after, dict):
            shown.update(before)
        shown.update({key: value for key, value in data.items() if key not in ("before", "after")})
        return shown


def new_batch() -> uuid.UUID:
    return uuid.uuid4()
