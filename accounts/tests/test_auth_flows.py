"""Every allauth flow a parent meets, through the real views and Django's locmem mail backend."""

import re
import time
from datetime import timedelta
from unittest import mock

import pytest
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.tests.factories import UserFactory

NEW_PASSWORD = "Another-long-Passphrase-77"


def _link(message) -> str:
    return re.search(r"https?://\S+", message.body).group(0)


def _sign_up(client, email="new.parent@example.com", password=NEW_PASSWORD):
    return client.post(
        reverse("account_signup"), {"email": email, "password1": password, "password2": password}
    )


def _is_logged_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.django_db
class TestSignUp:
    def test_sign_up_sends_one_mail_with_a_confirmation_link_and_an_html_body(self, client, mailoutbox):
        response = _sign_up(client)
        assert response.status_code == 302
        assert response.url == reverse("account_email_verification_sent")
        assert len(mailoutbox) == 1
        message = mailoutbox[0]
        assert message.to == ["new.parent@example.com"]
        assert message.subject == "[Instagender] Confirm your e-mail address"
        assert "/accounts/confirm-email/" in _link(message)
        html = message.alternatives[0][0]
        assert message.alternatives[0][1] == "text/html"
        assert _link(message) in html
        assert not _is_logged_in(client)

    def test_the_user_is_stored_with_email_as_login_and_no_username(self, client):
        _sign_up(client, email="Mixed.Case@Example.com")
        user = get_user_model().objects.get()
        assert user.email == "mixed.case@example.com"
        assert not hasattr(user, "username")
        assert not EmailAddress.objects.get(user=user).verified

    def test_duplicate_email_is_explained_without_revealing_the_account(self, client, user, mailoutbox):
        # allauth prevents account enumeration: the page reads the same for every address, and the
        # owner of the existing account gets an e-mail that says what happened.
        response = _sign_up(client, email=user.email.upper())
        assert response.status_code == 302
        page = client.get(response.url).content.decode()
        assert "If that address already has an Instagender account, the message says so" in page
        assert get_user_model().objects.count() == 1
        assert len(mailoutbox) == 1
        assert mailoutbox[0].to == [user.email]
        assert mailoutbox[0].subject == "[Instagender] You already have an Instagender account"
        assert "/accounts/password/reset/" in mailoutbox[0].body

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"email": "not-an-email", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}, "valid email"),
            (
                {"email": "a@example.com", "password1": NEW_PASSWORD, "password2": "different"},
                "same password",
            ),
            ({"email": "a@example.com", "password1": "123", "password2": "123"}, "too short"),
            ({}, "This field is required."),
        ],
    )
    def test_malformed_sign_up_forms_are_explained_on_the_page(self, client, data, message):
        response = client.post(reverse("account_signup"), data)
        assert response.status_code == 200
        assert message in response.content.decode()
        assert not get_user_model().objects.exists()


@pytest.mark.django_db
class TestConfirmation:
    def test_get_only_shows_the_form_and_post_confirms(self, client, mailoutbox):
        _sign_up(client)
        link = _link(mailoutbox[0])
        response = client.get(link)
        assert response.status_code == 200
        assert not EmailAddress.objects.get().verified
        response = client.post(link)
        assert response.status_code == 302
        assert EmailAddress.objects.get().verified

    def test_confirmed_user_can_log_in_and_reach_the_dashboard(self, client, mailoutbox):
        _sign_up(client)
        client.post(_link(mailoutbox[0]))
        response = client.post(
            reverse("account_login"), {"login": "new.parent@example.com", "password": NEW_PASSWORD}
        )
        assert response.status_code == 302
        assert response.url == reverse("babies:dashboard")
        assert client.get(response.url).status_code == 200

    def test_unverified_user_cannot_log_in(self, client, mailoutbox):
        user = UserFactory(verified=False)
        response = client.post(reverse("account_login"), {"login": user.email, "password": _pw()})
        assert response.status_code == 302
        assert response.url == reverse("account_email_verification_sent")
        assert not _is_logged_in(client)
        assert len(mailoutbox) == 1  # allauth re-sends the confirmation on a login attempt

    def test_a_tampered_link_shows_a_clear_message(self, client):
        response = client.get(reverse("account_confirm_email", args=["not-a-real-key"]))
        assert response.status_code == 200
        assert "has expired, has already been used, or is not valid" in response.content.decode()
        response = client.post(reverse("account_confirm_email", args=["not-a-real-key"]))
        assert response.status_code == 400
        assert "has expired, has already been used, or is not valid" in response.content.decode()

    def test_an_expired_link_confirms_nothing(self, client, settings, mailoutbox):
        _sign_up(client)
        key = EmailConfirmationHMAC(EmailAddress.objects.get()).key
        four_days_later = time.time() + timedelta(days=4).total_seconds()
        with mock.patch("django.core.signing.time.time", return_value=four_days_later):
            response = client.post(reverse("account_confirm_email", args=[key]))
        assert response.status_code == 400
        assert "has expired" in response.content.decode()
        assert not EmailAddress.objects.get().verified

    def test_a_reused_link_explains_itself(self, client, mailoutbox):
        _sign_up(client)
        link = _link(mailoutbox[0])
        client.post(link)
        response = client.post(link)
        assert response.status_code == 400
        assert "has already been used" in response.content.decode()
        assert EmailAddress.objects.get().verified

    def test_resend_sends_a_new_confirmation(self, client, mailoutbox):
        user = UserFactory(verified=False)
        client.force_login(user)
        response = client.post(reverse("account_email"), {"action_send": "", "email": user.email})
        assert response.status_code == 302
        assert len(mailoutbox) == 1
        assert mailoutbox[0].to == [user.email]
        assert "/accounts/confirm-email/" in _link(mailoutbox[0])


def _pw():
    from accounts.tests.factories import DEFAULT_PASSWORD

    return DEFAULT_PASSWORD


@pytest.mark.django_db
class TestLogin:
    def test_wrong_password_gets_a_clear_message(self, client, user):
        response = client.post(reverse("account_login"), {"login": user.email, "password": "wrong"})
        assert response.status_code == 200
        message = "The e-mail address and/or password you specified are not correct."
        assert message in response.content.decode()
        assert not _is_logged_in(client)

    def test_repeated_failed_logins_are_rate_limited(self, client, user):
        for _ in range(5):
            client.post(reverse("account_login"), {"login": user.email, "password": "wrong"})
        response = client.post(reverse("account_login"), {"login": user.email, "password": _pw()})
        assert response.status_code == 200
        assert "Too many failed login attempts" in response.content.decode()
        assert not _is_logged_in(client)

    def test_logout_ends_the_session(self, parent_client):
        response = parent_client.post(reverse("account_logout"))
        assert response.status_code == 302
        assert not _is_logged_in(parent_client)

    def test_the_navbar_shows_the_signed_in_user(self, parent_client, user):
        response = parent_client.get(reverse("babies:dashboard"))
        assert f'data-testid="signed-in-user">{user.email}<' in response.content.decode()

    def test_the_dashboard_needs_a_login(self, client, db):
        response = client.get(reverse("babies:dashboard"))
        assert response.status_code == 302
        assert response.url.startswith(reverse("account_login"))


@pytest.mark.django_db
class TestPasswords:
    def test_reset_sends_a_link_that_sets_a_new_password(self, client, user, mailoutbox):
        response = client.post(reverse("account_reset_password"), {"email": user.email})
        assert response.status_code == 302
        assert len(mailoutbox) == 1
        assert mailoutbox[0].subject == "[Instagender] Reset your password"
        assert mailoutbox[0].alternatives[0][1] == "text/html"
        link = _link(mailoutbox[0])
        response = client.get(link)  # allauth moves the key into the session and redirects
        assert response.status_code == 302
        response = client.post(response.url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
        assert response.status_code == 302
        user.refresh_from_db()
        assert user.check_password(NEW_PASSWORD)

    def test_reset_for_an_unknown_address_reveals_nothing_on_the_page(self, client, db, mailoutbox):
        response = client.post(reverse("account_reset_password"), {"email": "nobody@example.com"})
        assert response.status_code == 302
        assert response.url == reverse("account_reset_password_done")

    def test_a_bad_reset_link_shows_a_clear_message(self, client, user):
        response = client.get(reverse("account_reset_password_from_key", args=["zz", "bad-key"]))
        assert response.status_code == 200
        assert "Bad Token" in response.content.decode() or "invalid" in response.content.decode()

    def test_change_password(self, parent_client, user, password):
        response = parent_client.post(
            reverse("account_change_password"),
            {"oldpassword": password, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        )
        assert response.status_code == 302
        user.refresh_from_db()
        assert user.check_password(NEW_PASSWORD)

    def test_change_password_with_a_wrong_old_password_is_refused(self, parent_client, user, password):
        response = parent_client.post(
            reverse("account_change_password"),
            {"oldpassword": "wrong", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        )
        assert response.status_code == 200
        assert "Please type your current password." in response.content.decode()
        user.refresh_from_db()
        assert user.check_password(password)
