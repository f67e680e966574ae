"""Two-factor sign-in for staff: set up before any admin page, asked at every sign-in (the admin's
goes through allauth's), rate-limited and audited failures, a shorter idle timeout; optional for
parents."""

from __future__ import annotations

import io
import time

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.urls import reverse

from accounts import roles
from accounts.middleware import LAST_ACTIVITY_KEY
from accounts.tests.factories import DEFAULT_PASSWORD, TOTP_SECRET, StaffFactory, UserFactory, totp_code
from accounts.tests.test_staff_roles import _pages
from audit.models import AuditEntry
from babies.models import Baby

pytestmark = pytest.mark.django_db

SETUP_URL = reverse("mfa_activate_totp")
CLIENT_IP = "203.0.113.9"


def _sign_in(client, user, password=DEFAULT_PASSWORD, next_url=None):
    url = reverse("account_login") + (f"?next={next_url}" if next_url else "")
    return client.post(url, {"login": user.email, "password": password}, REMOTE_ADDR=CLIENT_IP)


def _signed_in(client, user):
    """Signed in through allauth (password, and the code when there is an authenticator), and the
    password confirmed again, as allauth asks before any change to two-factor sign-in."""
    response = _sign_in(client, user)
    if response["Location"].startswith(reverse("mfa_authenticate")):
        client.post(reverse("mfa_authenticate"), {"code": totp_code()})
    response = client.post(reverse("account_reauthenticate"), {"password": DEFAULT_PASSWORD})
    assert response.status_code == 302
    return client


# --- Set-up before any admin page ------------------------------------------------------------
@pytest.mark.parametrize("superuser", [True, False], ids=["superuser", "staff with a role"])
def test_staff_without_mfa_are_sent_to_set_it_up_from_every_admin_url(client, world, superuser):
    user = UserFactory(is_staff=True, is_superuser=superuser, mfa=False)
    if not superuser:
        user.groups.add(Group.objects.get(name=roles.CURATOR))
    client.force_login(user)
    admin_urls = [(name, url) for name, url, _, _ in _pages(world) if url.startswith("/admin/")]
    assert len(admin_urls) > 60
    for name, url in admin_urls:
        response = client.get(url)
        assert response.status_code == 302, name
        assert response["Location"].startswith(SETUP_URL), name
    # The URLs that are not pages, and the POSTs of actions, too.
    baby_type = ContentType.objects.get_for_model(Baby)
    for url in (
        reverse("admin:login"),
        reverse("admin:autocomplete"),
        reverse("admin:logout"),
        reverse("admin:view_on_site", args=[baby_type.pk, world["scan"].baby_id]),
    ):
        assert client.get(url)["Location"].startswith(SETUP_URL), url
    post = client.post(
        reverse("admin:babies_baby_changelist"),
        {"action": "purge_babies", "_selected_action": [world["scan"].baby_id], "post": "yes"},
    )
    assert post["Location"].startswith(SETUP_URL)
    assert not AuditEntry.objects.filter(action="baby.purged").exists()


def test_staff_without_mfa_see_no_scan_even_with_view_baby(client, world):
    user = UserFactory(is_staff=True, is_superuser=True, mfa=False)
    client.force_login(user)
    for name in ("babies:scan_image", "babies:scan_thumbnail"):
        assert client.get(reverse(name, args=[world["scan"].pk])).status_code == 404


def test_setting_up_an_authenticator_app_opens_the_admin_and_is_audited(
    client, django_capture_on_commit_callbacks
):
    user = UserFactory(is_staff=True, is_superuser=True, mfa=False)
    _signed_in(client, user)
    assert client.get(reverse("admin:index"))["Location"].startswith(SETUP_URL)

    page = client.get(SETUP_URL)
    assert page.status_code == 200
    secret = client.session[SECRET_SESSION_KEY]
    # allauth announces the new authenticator once the transaction commits.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(SETUP_URL, {"code": totp_code(secret)}, REMOTE_ADDR=CLIENT_IP)
    assert response.status_code == 302

    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    assert client.get(reverse("admin:index")).status_code == 200
    # The recovery codes made with it are shown (templates/mfa/recovery_codes/index.html).
    codes = RecoveryCodes(
        user.authenticator_set.get(type=Authenticator.Type.RECOVERY_CODES)
    ).get_unused_codes()
    page = client.get(reverse("mfa_view_recovery_codes")).content.decode()
    assert len(codes) == 10 and all(code in page for code in codes)
    added = AuditEntry.objects.filter(action="mfa.authenticator_added", object_id=str(user.pk))
    assert {entry.data["authenticator"] for entry in added} >= {"totp"}
    assert all(entry.data["ip"] == CLIENT_IP and entry.created_at for entry in added)


def test_removing_the_authenticator_is_audited_and_closes_the_admin_again(client, staff_user):
    _signed_in(client, staff_user)
    response = client.post(reverse("mfa_deactivate_totp"), REMOTE_ADDR=CLIENT_IP)
    assert response.status_code == 302
    removed = AuditEntry.objects.get(action="mfa.authenticator_removed", object_id=str(staff_user.pk))
    assert removed.data == {"ip": CLIENT_IP, "user_agent": "", "authenticator": "totp"}
    assert client.get(reverse("admin:index"))["Location"].startswith(SETUP_URL)


def test_parents_may_turn_mfa_on_but_need_not(client, user):
    _signed_in(client, user)
    assert client.get(reverse("babies:dashboard")).status_code == 200
    menu = client.get(reverse("account_settings")).content.decode()
    assert reverse("mfa_index") in menu
    assert client.get(reverse("mfa_index")).status_code == 200
    client.get(SETUP_URL)
    client.post(SETUP_URL, {"code": totp_code(client.session[SECRET_SESSION_KEY])})
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    # A parent with MFA is still a parent: the admin stays closed.
    assert client.get(reverse("admin:index"))["Location"].startswith(reverse("admin:login"))


# --- Signing in: the admin's login is allauth's, with the code ---------------------------------
def test_the_admin_login_is_allauths(client):
    response = client.get(reverse("admin:login") + "?next=/admin/babies/baby/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert "next=%2Fadmin%2Fbabies%2Fbaby%2F" in response["Location"]


def test_staff_sign_in_asks_for_the_code_then_opens_the_admin_and_is_audited(client, staff_user):
    response = _sign_in(client, staff_user, next_url=reverse("admin:index"))
    assert response["Location"].startswith(reverse("mfa_authenticate"))
    assert client.get(reverse("admin:index")).status_code == 302  # not signed in yet

    response = client.post(reverse("mfa_authenticate"), {"code": totp_code()}, REMOTE_ADDR=CLIENT_IP)
    assert response["Location"] == reverse("admin:index")
    assert client.get(reverse("admin:index")).status_code == 200

    signed_in = AuditEntry.objects.get(action="staff.signed_in")
    assert signed_in.actor == staff_user
    assert signed_in.data["ip"] == CLIENT_IP
    assert signed_in.data["methods"] == ["password", "mfa"]


def test_a_wrong_code_is_refused_and_audited(client, staff_user):
    _sign_in(client, staff_user)
    wrong = f"{(int(totp_code()) + 1) % 1_000_000:06d}"
    response = client.post(reverse("mfa_authenticate"), {"code": wrong}, REMOTE_ADDR=CLIENT_IP)
    assert response.status_code == 200
    assert client.get(reverse("admin:index")).status_code == 302
    failed = AuditEntry.objects.get(action="staff.sign_in_failed")
    assert failed.object_id == str(staff_user.pk)
    assert failed.data["ip"] == CLIENT_IP and failed.data["reason"] == "wrong code (totp)"


def test_failed_staff_sign_ins_are_audited_then_rate_limited(client, staff_user):
    for _ in range(5):  # ACCOUNT_RATE_LIMITS["login_failed"]: 5 per 5 minutes per account
        response = _sign_in(client, staff_user, password="not-the-password")
        assert response.status_code == 200
    # The right password is refused now too: the account is locked for a while.
    response = _sign_in(client, staff_user)
    assert response.status_code == 200
    assert "Too many failed login attempts" in response.content.decode()
    assert not client.session.get("account_login")  # no sign-in stage started
    assert client.get(reverse("admin:index")).status_code == 302

    failures = AuditEntry.objects.filter(action="staff.sign_in_failed", object_id=str(staff_user.pk))
    reasons = [entry.data["reason"] for entry in failures.order_by("id")]
    assert reasons == ["wrong password"] * 5 + ["refused by the rate limit"]
    assert {entry.data["ip"] for entry in failures} == {CLIENT_IP}
    assert all(entry.created_at is not None and entry.actor is None for entry in failures)


def test_wrong_codes_are_rate_limited_and_audited_too(client, staff_user):
    _sign_in(client, staff_user)
    wrong = f"{(int(totp_code()) + 1) % 1_000_000:06d}"
    for _ in range(5):
        client.post(reverse("mfa_authenticate"), {"code": wrong}, REMOTE_ADDR=CLIENT_IP)
    response = client.post(reverse("mfa_authenticate"), {"code": totp_code()}, REMOTE_ADDR=CLIENT_IP)
    assert response.status_code == 200
    assert client.get(reverse("admin:index")).status_code == 302
    reasons = list(
        AuditEntry.objects.filter(action="staff.sign_in_failed")
        .order_by("id")
        .values_list("data__reason", flat=True)
    )
    assert reasons == ["wrong code (totp)"] * 5 + ["code refused by the rate limit"]


def test_failed_sign_ins_of_parents_are_not_in_the_staff_audit(client, user):
    _sign_in(client, user, password="not-the-password")
    client.post(reverse("account_login"), {"login": "nobody@example.com", "password": "x"})
    assert not AuditEntry.objects.filter(action="staff.sign_in_failed").exists()


def test_the_authenticator_admin_never_shows_the_secret(client, staff_user):
    client.force_login(staff_user)
    authenticator = staff_user.authenticator_set.get()
    page = client.get(reverse("admin:mfa_authenticator_change", args=[authenticator.pk]))
    assert page.status_code == 200
    assert TOTP_SECRET not in page.content.decode()
    client.post(reverse("admin:mfa_authenticator_delete", args=[authenticator.pk]), {"post": "yes"})
    removed = AuditEntry.objects.get(action="mfa.authenticator_removed")
    assert removed.actor == staff_user and removed.data["removed_in"] == "admin"


# --- Idle staff sessions ------------------------------------------------------------------------
def _age_session(client, seconds):
    session = client.session
    session[LAST_ACTIVITY_KEY] = int(time.time()) - seconds
    session.save()


def test_staff_are_signed_out_after_the_idle_time(client, settings, staff_user):
    settings.STAFF_SESSION_IDLE_SECONDS = 600
    client.force_login(staff_user)
    assert client.session.get_expiry_age() == 600
    _age_session(client, 590)
    assert client.get(reverse("admin:index")).status_code == 200
    _age_session(client, 601)
    response = client.get(reverse("admin:index"), REMOTE_ADDR=CLIENT_IP)
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    assert client.get(reverse("babies:dashboard")).status_code == 302  # signed out everywhere
    expired = AuditEntry.objects.get(action="staff.signed_out_idle")
    assert expired.object_id == str(staff_user.pk) and expired.data["idle_seconds"] >= 601


def test_parents_keep_their_long_sessions(client, settings, user):
    settings.STAFF_SESSION_IDLE_SECONDS = 600
    client.force_login(user)
    assert client.session.get_expiry_age() > 600
    _age_session(client, 3600)
    assert client.get(reverse("babies:dashboard")).status_code == 200


def test_seeded_superuser_must_set_up_mfa_at_first_sign_in(client, monkeypatch):
    monkeypatch.setenv("DJANGO_ADMIN_EMAIL", "admin@instagender.example")
    monkeypatch.setenv("DJANGO_ADMIN_PASSWORD", "Correct-Horse-Battery-Staple-9")
    call_command("seed_admin", stdout=io.StringIO())
    admin_user = StaffFactory._meta.model.objects.get(email="admin@instagender.example")
    response = _sign_in(client, admin_user, password="Correct-Horse-Battery-Staple-9", next_url="/admin/")
    assert response["Location"] == "/admin/"
    assert client.get("/admin/")["Location"].startswith(SETUP_URL)
