"""Staff roles, table by table: every admin URL, every admin action, the custom views and the scan
files, for each role; a role without the permission gets the 403 (or 404) staff without any get.

The tables are checked against the admin itself (``admin.site``): a new admin page or action
fails ``test_the_tables_cover_every_admin_url_and_action`` until its row says who may use it.
"""

from __future__ import annotations

import io
import zipfile

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.urls import URLResolver, reverse

from accounts import roles
from accounts.tests.factories import UserFactory
from accounts.tests.staff_world import C, D, M, N, S
from audit.models import AuditEntry
from babies import services as baby_services
from babies.models import Baby, Scan
from curation.models import QUALITY_FLAGS, TrainingSet
from curation.tests.factories import labelled_baby
from predictions.models import ModelVersion
from predictions.tests.factories import evaluation_block
from predictions.tests.predict_support import tiny_model_version

pytestmark = pytest.mark.django_db

EVERY_ROLE = [C, M, D, N, S]
EVERY_STAFF = {C, M, D, N, S}

# Per ModelAdmin (URL name prefix): who may view its list, rows and history; add; delete.
MODEL_PAGES = {
    "accounts_user": ({D, S}, {S}, {D, S}),
    "auth_group": ({S}, {S}, {S}),
    "account_emailaddress": ({S}, {S}, {S}),
    "mfa_authenticator": ({S}, set(), {S}),
    "sites_site": ({S}, {S}, {S}),
    "audit_auditentry": ({D, S}, set(), set()),
    "babies_baby": ({C, D, S}, set(), set()),
    "babies_filedeletion": ({D, S}, set(), set()),
    "babies_missingfile": ({D, S}, set(), set()),
    "curation_reviewqueuescan": ({C, S}, set(), set()),
    "curation_trainingset": ({C, M, S}, set(), set()),
    "curation_trainingsetitem": ({C, S}, set(), set()),
    "predictions_modelversion": ({M, S}, set(), set()),
}
# Every other admin URL: who gets its page, and what everybody else gets.
OTHER_PAGES = {
    "index": (EVERY_STAFF, None),
    "password_change": (EVERY_STAFF, None),
    "password_change_done": (EVERY_STAFF, None),
    "jsi18n": (EVERY_STAFF, None),
    "auth_user_password_change": ({S}, 403),
    "curation_reviewqueuescan_duplicates": ({C, S}, 403),
    "curation_trainingset_create": ({C, S}, 403),
    "predictions_modelversion_compare": ({M, S}, 403),
    "predictions_modelversion_plot": ({M, S}, 404),
}
# The admin's index of one app: a 404 for a role that may see none of its models.
APP_LISTS = {
    "auth": {S},
    "sites": {S},
    "account": {S},
    "mfa": {S},
    "accounts": {D, S},
    "audit": {D, S},
    "babies": {C, D, S},
    "predictions": {M, S},
    "curation": {C, M, S},
}
# Admin URLs that are not pages of their own, checked separately below.
NOT_PAGES = {"login", "logout", "autocomplete", "view_on_site"}

REVIEW_ACTIONS = [
    "mark_accepted",
    "mark_rejected",
    "mark_pending",
    *(f"reject_{flag}" for flag in QUALITY_FLAGS),
]
ACTIONS = {
    "babies_baby": {"restore_babies": {D, S}, "purge_babies": {D, S}, "retry_outcome_emails": {C, S}},
    "curation_reviewqueuescan": {
        **dict.fromkeys(REVIEW_ACTIONS, {C, S}),
        "score_label_quality": {C, S},
        "mark_label_checked": {C, S},
    },
    "predictions_modelversion": {"activate": {M, S}, "compare": {M, S}},
    "accounts_user": {"export_data": {D, S}, "delete_selected": {D, S}},
    "account_emailaddress": {"make_verified": {S}, "delete_selected": {S}},
    "auth_group": {"delete_selected": {S}},
    "sites_site": {"delete_selected": {S}},
    "mfa_authenticator": {"delete_selected": {S}},
    "audit_auditentry": {},
    "babies_filedeletion": {},
    "babies_missingfile": {},
    "curation_trainingset": {},
    "curation_trainingsetitem": {},
}
# Parents' scan files: staff see them only with babies.view_baby (and a second factor).
SCAN_FILES = {"babies:scan_image": {C, D, S}, "babies:scan_thumbnail": {C, D, S}}


def _admin_url_names() -> set[str]:
    def names(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from names(pattern.url_patterns)
            elif pattern.name:
                yield pattern.name

    return set(names(admin.site.get_urls()))


def _model_admins() -> dict[str, admin.ModelAdmin]:
    return {
        f"{model._meta.app_label}_{model._meta.model_name}": ma for model, ma in admin.site._registry.items()
    }


def _pages(world) -> list[tuple[str, str, set[str], int]]:
    """(name, URL, roles that get a 200, what the others get) for every admin page and scan file."""
    pages = []
    for prefix, (viewers, adders, deleters) in MODEL_PAGES.items():
        pk = world["objects"][prefix]
        pages += [
            (f"{prefix}_changelist", reverse(f"admin:{prefix}_changelist"), viewers, 403),
            (f"{prefix}_change", reverse(f"admin:{prefix}_change", args=[pk]), viewers, 403),
            (f"{prefix}_history", reverse(f"admin:{prefix}_history", args=[pk]), viewers, 403),
            (f"{prefix}_add", reverse(f"admin:{prefix}_add"), adders, 403),
            (f"{prefix}_delete", reverse(f"admin:{prefix}_delete", args=[pk]), deleters, 403),
        ]
    special_args = {
        "auth_user_password_change": [world["parent"].pk],
        "predictions_modelversion_plot": [world["version"].pk, "roc"],
    }
    for name, (allowed, refused) in OTHER_PAGES.items():
        pages.append((name, reverse(f"admin:{name}", args=special_args.get(name, [])), allowed, refused))
    for app_label, allowed in APP_LISTS.items():
        pages.append((f"app_list {app_label}", reverse("admin:app_list", args=[app_label]), allowed, 404))
    for name, allowed in SCAN_FILES.items():
        pages.append((name, reverse(name, args=[world["scan"].pk]), allowed, 404))
    return pages


def test_the_tables_cover_every_admin_url_and_action():
    covered = set(NOT_PAGES) | set(OTHER_PAGES) | {"app_list"}
    for prefix in MODEL_PAGES:
        covered |= {f"{prefix}_{page}" for page in ("changelist", "change", "history", "add", "delete")}
    assert _admin_url_names() == covered
    assert set(_model_admins()) == set(MODEL_PAGES) == set(ACTIONS)
    assert set(APP_LISTS) == {model._meta.app_label for model in admin.site._registry}


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_each_role_reaches_exactly_its_admin_pages_and_scan_files(client, staff, world, role):
    client.force_login(staff[role])
    wrong = []
    for name, url, allowed, refused in _pages(world):
        expected = 200 if role in allowed else refused
        status = client.get(url).status_code
        if status != expected:
            wrong.append(f"{name} {url}: {status}, expected {expected}")
    assert wrong == []


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_each_role_is_offered_exactly_its_admin_actions(client, staff, world, role):
    client.force_login(staff[role])
    wrong = []
    for prefix, actions in ACTIONS.items():
        response = client.get(reverse(f"admin:{prefix}_changelist"))
        offered = set()
        if response.status_code == 200 and response.context.get("action_form") is not None:
            offered = {name for name, _ in response.context["action_form"].fields["action"].choices if name}
        expected = {name for name, allowed in actions.items() if role in allowed}
        if offered != expected:
            wrong.append(f"{prefix}: offered {sorted(offered)}, expected {sorted(expected)}")
    assert wrong == []


def test_the_superuser_is_offered_every_action_in_the_table(client, staff, world):
    client.force_login(staff[S])
    for prefix, actions in ACTIONS.items():
        response = client.get(reverse(f"admin:{prefix}_changelist"))
        form = response.context.get("action_form")
        offered = {name for name, _ in form.fields["action"].choices if name} if form else set()
        assert offered == set(actions), prefix


def test_the_non_page_admin_urls_behave_alike_for_every_role(client, staff, world):
    baby_type = ContentType.objects.get_for_model(Baby)
    for role in EVERY_ROLE:
        client.force_login(staff[role])
        login = client.get(reverse("admin:login"))
        assert login.status_code == 302 and login["Location"] == reverse("admin:index"), role
        # No admin here uses autocomplete: every request for it is refused.
        assert client.get(reverse("admin:autocomplete")).status_code == 403, role
        view_on_site = reverse("admin:view_on_site", args=[baby_type.pk, world["scan"].baby_id])
        assert client.get(view_on_site).status_code in (302, 404), role
        assert client.post(reverse("admin:logout")).status_code == 200, role
        assert client.get(reverse("admin:index")).status_code == 302, role


# --- What the actions and custom views do, per role ------------------------------------------
def _post_action(client, prefix, action, ids, **extra):
    data = {"action": action, "_selected_action": ids, **extra}
    return client.post(reverse(f"admin:{prefix}_changelist"), data)


def _inline_management_data(client, url) -> dict:
    """The inline formsets' management fields of a change form, as the browser would send them."""
    page = client.get(url)
    if page.status_code != 200:
        return {}
    data = {}
    for inline in page.context["inline_admin_formsets"]:
        form = inline.formset.management_form
        data.update({f"{form.prefix}-{name}": value for name, value in form.initial.items()})
    return data


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_only_data_protection_purges_and_restores_babies(client, staff, world, role):
    baby = world["scan"].baby
    deleted = labelled_baby()
    baby_services.baby_soft_delete(baby=deleted)
    client.force_login(staff[role])

    _post_action(client, "babies_baby", "restore_babies", [deleted.pk])
    _post_action(client, "babies_baby", "purge_babies", [baby.pk], post="yes")

    deleted.refresh_from_db()
    assert (deleted.deleted_at is None) == (role in {D, S})
    assert Baby.all_objects.filter(pk=baby.pk).exists() == (role not in {D, S})
    assert AuditEntry.objects.filter(action="baby.purged").exists() == (role in {D, S})


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_only_curators_review_scans_and_relabel_babies(client, staff, world, role):
    scan = world["scan"]
    client.force_login(staff[role])

    _post_action(client, "curation_reviewqueuescan", "mark_rejected", [scan.pk])
    reviewed = AuditEntry.objects.filter(
        action="scan.reviewed", object_id=str(scan.pk), data__after__state="rejected"
    ).exists()
    assert reviewed == (role in {C, S})

    other = "male" if scan.baby.confirmed_sex == "female" else "female"
    url = reverse("admin:babies_baby_change", args=[scan.baby_id])
    response = client.post(url, {**_inline_management_data(client, url), "relabel_as": other})
    scan.baby.refresh_from_db()
    assert (scan.baby.confirmed_sex == other) == (role in {C, S}), response.status_code


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_only_curators_freeze_training_sets_and_reject_duplicates(client, staff, world, role):
    client.force_login(staff[role])
    before = TrainingSet.objects.count()
    create = client.post(
        reverse("admin:curation_trainingset_create"),
        {"note": "by role", "label_sources": ["dashboard", "email", "staff"]},
    )
    assert (TrainingSet.objects.count() == before + 1) == (role in {C, S}), create.status_code
    if role not in {C, S}:
        assert create.status_code == 403

    scan = world["scan"]
    rejected = client.post(reverse("admin:curation_reviewqueuescan_duplicates"), {"scan": [scan.pk]})
    duplicate = AuditEntry.objects.filter(
        action="scan.reviewed", object_id=str(scan.pk), data__after__state="rejected"
    ).exists()
    assert duplicate == (role in {C, S})
    if role not in {C, S}:
        assert rejected.status_code == 403


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_only_model_operators_activate_and_nobody_but_superusers_overrides_the_gate(
    client, staff, world, role
):
    passing = world["version"]
    failing = tiny_model_version(
        name="Refused", activate=False, metrics={"evaluation": evaluation_block(right=150, total=300)}
    )
    client.force_login(staff[role])

    _post_action(client, "predictions_modelversion", "activate", [passing.pk], post="yes")
    passing.refresh_from_db()
    assert passing.is_active == (role in {M, S})

    confirmation = _post_action(client, "predictions_modelversion", "activate", [failing.pk])
    if role in {M, S}:
        assert (b'name="override_reason"' in confirmation.content) == (role == S)
    override = _post_action(
        client, "predictions_modelversion", "activate", [failing.pk], post="yes", override_reason="demo"
    )
    failing.refresh_from_db()
    assert failing.is_active == (role == S)
    if role == M:
        assert override.status_code == 403


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_only_data_protection_exports_and_erases_a_parents_data(client, staff, world, role):
    parent = world["parent"]
    client.force_login(staff[role])

    export = _post_action(client, "accounts_user", "export_data", [parent.pk])
    if role in {D, S}:
        assert export["Content-Type"] == "application/zip"
        archive = zipfile.ZipFile(io.BytesIO(b"".join(export.streaming_content)))
        assert "README.txt" in archive.namelist()
        entry = AuditEntry.objects.get(action="user.data_exported")
        assert entry.actor == staff[role] and entry.object_id == str(parent.pk)
    else:
        assert export.status_code in (302, 403)
        assert not AuditEntry.objects.filter(action="user.data_exported").exists()

    client.post(reverse("admin:accounts_user_delete", args=[parent.pk]), {"post": "yes"})
    assert type(parent).objects.filter(pk=parent.pk).exists() == (role not in {D, S})
    assert Scan.objects.filter(baby__owner=parent).exists() == (role not in {D, S})


def test_a_parent_gets_the_admin_login_and_a_strangers_404_for_scan_files(client, world):
    stranger = UserFactory()
    client.force_login(stranger)
    for name, url, _allowed, _refused in _pages(world):
        response = client.get(url)
        if name in SCAN_FILES:
            assert response.status_code == 404, name
        else:
            assert response.status_code == 302, name
            assert response["Location"].startswith(reverse("admin:login")), name


def test_a_reviewer_without_view_baby_opens_nothing_of_the_review_queue(client, world):
    """Review without seeing babies is useless and would half-show scans: it opens nothing."""
    reviewer = UserFactory(is_staff=True)
    reviewer.user_permissions.add(Permission.objects.get(codename="review_scan"))
    client.force_login(reviewer)
    assert client.get(reverse("admin:curation_reviewqueuescan_changelist")).status_code == 403
    assert client.get(reverse("admin:curation_reviewqueuescan_duplicates")).status_code == 403
    assert client.get(reverse("babies:scan_image", args=[world["scan"].pk])).status_code == 404


def test_sync_staff_roles_is_idempotent_and_resets_hand_edits(db, capsys):
    call_command("sync_staff_roles")
    curator = Group.objects.get(name=roles.CURATOR)
    first = {
        group.name: set(group.permissions.values_list("codename", flat=True)) for group in Group.objects.all()
    }
    curator.permissions.add(Permission.objects.get(codename="purge_baby"))
    call_command("sync_staff_roles")
    again = {
        group.name: set(group.permissions.values_list("codename", flat=True)) for group in Group.objects.all()
    }
    assert again == first
    assert Group.objects.count() == 3
    assert "purge_baby" not in again[roles.CURATOR]
    assert "Staff roles up to date" in capsys.readouterr().out


def test_no_role_but_curation_and_data_protection_sees_scans():
    for name, permissions in roles.ROLES.items():
        assert ("babies.view_baby" in permissions) == (name in {roles.CURATOR, roles.DATA_PROTECTION})
    assert not any("override_model_gate" in permissions for permissions in roles.ROLES.values())


def test_seed_admin_creates_the_roles_too(db, monkeypatch):
    monkeypatch.setenv("DJANGO_ADMIN_EMAIL", "admin@instagender.example")
    monkeypatch.setenv("DJANGO_ADMIN_PASSWORD", "Correct-Horse-Battery-Staple-9")
    call_command("seed_admin", stdout=io.StringIO())
    assert set(Group.objects.values_list("name", flat=True)) == set(roles.ROLES)


def test_a_model_version_has_no_scans_on_its_page(client, staff, world):
    """The model operator's pages show figures, never a parent's picture."""
    client.force_login(staff[M])
    version = ModelVersion.objects.get(pk=world["version"].pk)
    for url in (
        reverse("admin:predictions_modelversion_change", args=[version.pk]),
        reverse("admin:predictions_modelversion_compare"),
        reverse("admin:curation_trainingset_change", args=[world["objects"]["curation_trainingset"]]),
    ):
        assert b"/scans/" not in client.get(url).content, url
