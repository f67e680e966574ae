"""Confirming the address logs the parent in, but only in the browser session that signed up."""

import pytest
from allauth.account.models import EmailAddress
from django.test import Client
from django.urls import reverse

from accounts.tests.test_auth_flows import _is_logged_in, _link, _sign_up

pytestmark = pytest.mark.django_db


def test_confirming_in_the_session_that_signed_up_logs_the_parent_in(client, mailoutbox):
    _sign_up(client)
    assert not _is_logged_in(client)
    response = client.post(_link(mailoutbox[0]))
    assert response.status_code == 302
    assert response.url == reverse("babies:dashboard")
    assert EmailAddress.objects.get().verified
    assert _is_logged_in(client)


def test_a_confirmation_link_opened_elsewhere_confirms_but_logs_nobody_in(client, mailoutbox):
    _sign_up(client)
    elsewhere = Client()  # a mail scanner, or a leaked link: it must not open the account
    response = elsewhere.post(_link(mailoutbox[0]))
    assert response.status_code == 302
    assert EmailAddress.objects.get().verified
    assert not _is_logged_in(elsewhere)
