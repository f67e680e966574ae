"""Writing the audit log: ``audit_log(actor=..., action=..., obj=...)``, from any app's services.

Every change worth auditing calls :func:`audit_log` inside the transaction that makes the change,
so a change is logged if and only if it happened. Descriptions name no parent: an entry outlives
the object it is about. This module imports no app, so every app may import it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from django.contrib.contenttypes.models import ContentType

from audit.models import AuditEntry

# How objects of other apps are described, by model label: numbers only, never a name or e-mail.
_DESCRIPTIONS = {
    "babies.baby": lambda obj: f"Baby #{obj.pk} (owner #{obj.owner_id})",
    "babies.scan": lambda obj: f"Scan #{obj.pk} (baby #{obj.baby_id})",
    "accounts.user": lambda obj: f"User #{obj.pk}",
}


def describe(obj) -> str:
    """A description of ``obj`` for the audit log that names no parent (it outlives the object)."""
    meta = getattr(obj, "_meta", None)
    describer = _DESCRIPTIONS.get(meta.label_lower) if meta is not None else None
    return describer(obj) if describer else str(obj)[:200]


def actor_description(actor) -> str:
    """Staff are named by e-mail; a parent acting on their own account only by number."""
    if actor is None:
        return "system"
    if actor.is_staff:
        return actor.email
    return f"User #{actor.pk}"


def audit_log(
    *,
    actor,
    action: str,
    obj=None,
    data: Mapping | None = None,
    batch: uuid.UUID | None = None,
    object_repr: str | None = None,
) -> AuditEntry:
    """Record that ``actor`` did ``action`` (a dotted name such as ``scan.reviewed``) to ``obj``.

    ``data`` holds what changed, usually ``{"before": {...}, "after": {...}}``. Call it inside
    the transaction that makes the change.
    """
    entry = AuditEntry(
        actor=actor if getattr(actor, "pk", None) else None,
        actor_repr=actor_description(actor),
        action=action,
        data=dict(data or {}),
        batch=batch,
    )
    if obj is not None:
        entry.content_type = ContentType.objects.get_for_model(obj)
        entry.object_id = str(obj.pk)
        entry.object_repr = object_repr or describe(obj)
    elif object_repr:
        entry.object_repr = object_repr
    entry.full_clean(exclude=["content_type", "actor"])
    entry.save()
    return entry
