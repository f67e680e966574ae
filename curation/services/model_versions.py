"""Staff switching the active model version, with an audit entry for each side of the switch."""

from __future__ import annotations

from django.db import transaction

from curation.services.audit import audit_log


def model_version_activate_as_staff(
    *, model_version, actor, reason: str = "admin action", override_gate: bool = False
) -> bool:
    """Make ``model_version`` the one predictions use, and log who switched from what.

    Returns False (and logs nothing) if it already is the active version. The version it
    replaces gets a ``model_version.deactivated`` entry of its own, so both pages tell the story.
    """
    from predictions.models import ModelVersion
    from predictions.services import model_version_activate

    with transaction.atomic():
        if ModelVersion.objects.filter(pk=model_version.pk, is_active=True).exists():
            return False
        previous = ModelVersion.objects.filter(is_active=True).exclude(pk=model_version.pk).first()
        model_version_activate(
            model_version=model_version, user=actor, reason=reason, override_gate=override_gate
        )
        change = {
            "before": {"active_version": previous.pk if previous else None},
            "after": {"active_version": model_version.pk},
        }
        audit_log(
            actor=actor,
            action="model_version.activated",
            obj=model_version,
            data={**change, "reason": reason, "is_synthetic": model_version.is_synthetic},
        )
        if previous is not None:
            audit_log(actor=actor, action="model_version.deactivated", obj=previous, data=change)
    return True
