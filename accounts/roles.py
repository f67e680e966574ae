"""Staff roles: Django groups, each granting only the permissions one job needs.

A staff account is ``is_staff`` (the admin opens) plus one or more of these groups (what it may
see and do there). ``manage.py sync_staff_roles`` (also run by ``seed_admin``) makes each group hold
exactly the permissions below, so the table here is the truth: permissions added to a role group
by hand are removed by the next sync. Superusers hold every permission and need no role.

``babies.view_baby`` is the permission to see every parent's babies and scans (pictures and
files; ``babies.models.user_may_view_every_baby``): the model operator does without it.
"""

from __future__ import annotations

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.db import transaction

CURATOR = "Curator"
MODEL_OPERATOR = "Model operator"
DATA_PROTECTION = "Data protection"

ROLES: dict[str, dict[str, str]] = {
    CURATOR: {
        "babies.view_baby": "see babies and their scans (pages and JPEGs)",
        "babies.change_baby": "correct a baby's confirmed sex",
        "curation.review_scan": "review scans: accept, reject, quality flags, label checks, duplicates",
        "curation.view_trainingset": "see frozen training sets and their data cards",
        "curation.add_trainingset": "freeze a training set",
        "curation.view_trainingsetitem": "see a training set's items",
    },
    MODEL_OPERATOR: {
        "predictions.view_modelversion": "see, compare and plot model versions",
        "accounts.activate_modelversion": "activate a version that passes the quality gate",
        "curation.view_trainingset": "see what a version was trained on (counts, no scans)",
    },
    DATA_PROTECTION: {
        "babies.view_baby": "see babies, including those their parents deleted, and their scans",
        "accounts.restore_baby": "restore a baby its parent deleted",
        "accounts.purge_baby": "purge a baby with its scans and files",
        "accounts.view_user": "see parents' accounts",
        "accounts.export_parent_data": "export a parent's data (the ZIP the parent can download)",
        "accounts.erase_parent_data": "erase a parent's account, babies, scans and training copies",
        "audit.view_auditentry": "read the audit log (changes, staff sign-ins, MFA changes)",
        "babies.view_filedeletion": "see the ledger of file deletions the storage has not finished",
        "babies.view_missingfile": "see rows whose file is missing from storage",
    },
}


def _permission(dotted: str) -> Permission:
    app_label, codename = dotted.split(".", 1)
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def staff_roles_sync() -> dict[str, int]:
    """Create or update every role group to hold exactly its permissions; idempotent.

    Permissions are made first (Django makes them after ``migrate`` too), so this also works on a
    database migrated a moment ago. Returns how many permissions each role holds.
    """
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0)
    counts = {}
    with transaction.atomic():
        for name, permissions in ROLES.items():
            group, _ = Group.objects.get_or_create(name=name)
            group.permissions.set([_permission(dotted) for dotted in permissions])
            counts[name] = len(permissions)
    return counts
