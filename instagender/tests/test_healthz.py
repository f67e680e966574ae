from unittest import mock

from django.db import OperationalError


def test_healthz_answers_200_when_the_database_answers(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_healthz_answers_503_when_the_database_is_unreachable(client, db):
    with mock.patch("instagender.views.connection.cursor", side_effect=OperationalError("down")):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


def test_responses_carry_a_request_id_and_a_strict_content_security_policy(client, db):
    response = client.get("/", HTTP_X_REQUEST_ID="abc123")
    assert response["X-Request-ID"] == "abc123"
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
