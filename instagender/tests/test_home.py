import re

from django.urls import reverse


def test_home_explains_the_product_and_warns_it_is_not_medical_advice(client, db):
    response = client.get(reverse("home"))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="en">' in html
    assert "not medical advice" in html.lower()
    assert reverse("account_signup") in html
    # No CDN and no inline script: every script comes from our own static files.
    assert not re.search(r"https?://(cdn|unpkg|cdnjs)", html)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)


def test_home_sends_a_signed_in_parent_to_the_dashboard(parent_client):
    response = parent_client.get(reverse("home"))
    assert response.status_code == 302
    assert response.url == reverse("babies:dashboard")


def test_static_bootstrap_comes_from_npm_through_whitenoise(client, db):
    response = client.get("/static/vendor/bootstrap/css/bootstrap.min.css")
    assert response.status_code == 200
    assert b"Bootstrap" in b"".join(response.streaming_content)[:400]
