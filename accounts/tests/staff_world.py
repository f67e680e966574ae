"""Test data of the staff tests: one account per role, and one object of every admin's model.

The fixtures ``staff`` and ``world`` live in ``accounts/tests/conftest.py``."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.contrib.sites.models import Site
from django.core.files.base import ContentFile

from accounts import roles
from accounts.tests.factories import StaffFactory, UserFactory
from audit.models import AuditEntry
from babies.models import FileDeletion, MissingFile
from curation import services
from curation.tests.factories import labelled_baby, reviewed_scan
from predictions.tests.predict_support import grey_png, tiny_model_version

C, M, D, N, S = "curator", "model_operator", "data_protection", "staff_without_role", "superuser"
ROLE_GROUPS = {C: roles.CURATOR, M: roles.MODEL_OPERATOR, D: roles.DATA_PROTECTION}


def role_accounts():
    """One account per role (staff, with an authenticator app), a superuser and staff with no role."""
    roles.staff_roles_sync()
    accounts = {S: StaffFactory(), N: UserFactory(is_staff=True)}
    for role, group in ROLE_GROUPS.items():
        accounts[role] = UserFactory(is_staff=True)
        accounts[role].groups.add(Group.objects.get(name=group))
    return accounts


def admin_world(staff):
    """One object of every admin's model, made through the services."""
    scans = []
    for sex in ("female", "male", "female", "male"):
        baby = labelled_baby(sex=sex)
        scans += [reviewed_scan(baby, reviewer=staff[S]) for _ in range(2)]
    training_set = services.training_set_create(created_by=staff[S])
    version = tiny_model_version(name="Candidate", activate=False)
    version.roc_plot.save("roc.png", ContentFile(grey_png(128)))
    scan = scans[0]
    parent = scan.baby.owner
    return {
        "scan": scan,
        "parent": parent,
        "version": version,
        "objects": {
            "accounts_user": parent.pk,
            "auth_group": Group.objects.get(name=roles.CURATOR).pk,
            "account_emailaddress": parent.emailaddress_set.get().pk,
            "mfa_authenticator": staff[C].authenticator_set.get().pk,
            "sites_site": Site.objects.get_current().pk,
            "audit_auditentry": AuditEntry.objects.first().pk,
            "babies_baby": scan.baby_id,
            "curation_reviewqueuescan": scan.pk,
            "curation_trainingset": training_set.pk,
            "curation_trainingsetitem": training_set.items.first().pk,
            "predictions_modelversion": version.pk,
            "babies_filedeletion": FileDeletion.objects.create(
                storage="scans", name="gone.jpg", reason=FileDeletion.Reason.DELETED
            ).pk,
            "babies_missingfile": MissingFile.objects.create(
                storage="scans", name="lost.jpg", model="babies.scan", object_id=str(scan.pk), field="image"
            ).pk,
        },
    }
