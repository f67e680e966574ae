"""The audit log: who did what to which object, and what changed.

Every staff change in curation calls :func:`audit_log` inside the transaction that makes the
change, so a change is logged if and only if it happened. Descriptions name no parent: an
entry outlives the object it is about.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from django.contrib.contenttypes.models import ContentType

from babies.models import Baby, Scan
from curation.models import AuditEntry


def describe(obj) -> str:
    """A description of ``obj`` for the audit log that names no parent (it outlives the object)."""
    if isinstance(obj, Baby):
        return f"Baby #{obj.pk} (owner #{obj.owner_id})"
    if isinstance(obj, Scan):
        return f"Scan #{obj.pk} (baby #{obj.baby_id})"
    if getattr(obj, "_meta", None) is not None and obj._meta.label_lower == "accounts.user":
        return f"User #{obj.pk}"
    return str(obj)[:200]


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
