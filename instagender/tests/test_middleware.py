"""The request id, refused request bodies and a lost database, in-process.

(The database really stopped under gunicorn is tests/faults/test_database_faults.py.)
"""

import io
import logging
import re
from urllib.parse import urlencode

import pytest
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import InterfaceError, OperationalError
from django.urls import reverse

from babies import selectors
from babies.models import Baby, Scan
from babies.tests.factories import image_bytes
from instagender.logging import RequestIdFilter

pytestmark = pytest.mark.django_db

JSON = {"Accept": "application/json"}


# --- X-Request-ID ---------------------------------------------------------------------------
@pytest.mark.parametrize("incoming", ["abc123", "lb-7f3a.2_x", "A" * 64])
def test_a_safe_incoming_request_id_is_kept(client, incoming):
    assert client.get("/healthz", HTTP_X_REQUEST_ID=incoming)["X-Request-ID"] == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        "abc def",  # a space would start a new key=value field in the log line
        'x" level=ERROR message="forged',
        "request_id=1",
        "A" * 65,
        "caf\u00e9",
        "a\tb",
        "",
    ],
)
def test_an_unsafe_request_id_is_replaced_in_the_response_and_the_log(client, incoming):
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    handler.addFilter(RequestIdFilter())  # what settings.LOGGING puts on stdout
    logger = logging.getLogger("instagender.middleware")  # logs a refused body as a warning
    logger.addHandler(handler)
    try:
        response = client.post(
            reverse("babies:baby_create"),
            urlencode({f"field{number}": "x" for number in range(2000)}),
            content_type="application/x-www-form-urlencoded",
            HTTP_X_REQUEST_ID=incoming,
        )
    finally:
        logger.removeHandler(handler)
    request_id = response["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert [record.request_id for record in records] == [request_id]


# --- Request bodies Django refuses to parse -------------------------------------------------
def test_an_upload_with_thousands_of_fields_gets_a_json_sentence(parent_client, baby):
    handle = io.BytesIO(image_bytes("PNG"))
    handle.name = "scan.png"
    fields = {f"field{number}": "x" for number in range(2000)}

    response = parent_client.post(
        reverse("babies:scan_upload", args=[baby.pk]), {"file": handle, **fields}, headers=JSON
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == (
        "This form sent far more fields than it has, so it was not accepted. "
        "Please reload the page and try again."
    )
    assert Scan.objects.count() == 0


def test_a_form_with_thousands_of_fields_gets_the_400_page_with_the_sentence(parent_client):
    fields = {f"field{number}": "x" for number in range(2000)}
    response = parent_client.post(
        reverse("babies:baby_create"), urlencode(fields), content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "<title>Bad request · Instagender</title>" in html
    assert "This form sent far more fields than it has" in html
    assert Baby.objects.count() == 0


def test_too_much_form_data_gets_a_json_sentence(parent_client, baby, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = parent_client.post(
        reverse("babies:scan_upload", args=[baby.pk]), {"crop_box": "x" * 20_000}, headers=JSON
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("This form sent more text than we accept")


def test_too_many_files_get_a_json_sentence(parent_client, baby, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    files = {}
    for number in range(5):
        files[f"file{number}"] = io.BytesIO(b"x")
        files[f"file{number}"].name = f"{number}.png"
    response = parent_client.post(reverse("babies:scan_upload", args=[baby.pk]), files, headers=JSON)
    assert response.status_code == 400
    assert "Please upload one scan at a time" in response.json()["error"]


def test_a_broken_multipart_envelope_gets_a_json_sentence(parent_client, baby):
    response = parent_client.post(
        reverse("babies:scan_upload", args=[baby.pk]),
        b"--boundary\r\nnot a header\r\n",
        content_type="multipart/form-data",  # no boundary: Django cannot parse it
        headers=JSON,
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("The upload arrived incomplete or damaged")


def test_an_ordinary_form_still_works(parent_client):
    response = parent_client.post(reverse("babies:baby_create"), {"name": "Ada", "due_date": "2027-01-01"})
    assert response.status_code == 302
    assert Baby.objects.get().name == "Ada"


# --- The database is lost -------------------------------------------------------------------
@pytest.fixture
def database_lost(monkeypatch):
    def lost(**kwargs):
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    monkeypatch.setattr(selectors, "babies_for_dashboard", lost)
    monkeypatch.setattr(selectors, "baby_get_for_owner", lost)


def test_a_lost_database_is_a_503_page_with_a_sentence_and_logged(parent_client, database_lost, caplog):
    with caplog.at_level(logging.ERROR):
        response = parent_client.get(reverse("babies:dashboard"))
    assert response.status_code == 503
    assert response["Retry-After"] == "60"
    html = response.content.decode()
    assert "<title>Back in a few minutes · Instagender</title>" in html
    assert "We cannot reach our database at the moment, so nothing was saved." in html
    assert "Traceback" not in html
    record = next(record for record in caplog.records if record.name == "instagender.middleware")
    assert "database unavailable during GET /dashboard/" in record.getMessage()
    assert record.exc_info[0] is OperationalError  # the operators get the traceback


def test_a_lost_database_answers_the_upload_script_in_json(parent_client, baby, database_lost):
    response = parent_client.post(reverse("babies:scan_upload", args=[baby.pk]), {}, headers=JSON)
    assert response.status_code == 503
    assert response.json() == {
        "error": "We cannot reach our database at the moment, so nothing was saved. "
        "Please try again in a few minutes."
    }


def test_a_connection_closed_under_the_view_is_a_503_too(parent_client, monkeypatch):
    def closed(**kwargs):
        raise InterfaceError("connection already closed")

    monkeypatch.setattr(selectors, "babies_for_dashboard", closed)
    assert parent_client.get(reverse("babies:dashboard")).status_code == 503


def test_a_lost_database_outside_the_view_is_a_503_not_a_500(parent_client, monkeypatch):
    """Saving the session happens after the view: handler500 sees the outage and says so."""

    def save_fails(self, request, response):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(SessionMiddleware, "process_response", save_fails)
    parent_client.raise_request_exception = False
    response = parent_client.get(reverse("babies:dashboard"))
    assert response.status_code == 503
    assert "We cannot reach our database at the moment" in response.content.decode()


def test_the_health_check_answers_json_even_when_a_middleware_lost_the_database(parent_client, monkeypatch):
    """A poller with a session cookie: the staff middleware reads the user before the view runs."""

    def lost(user):
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    monkeypatch.setattr("accounts.middleware.mfa.is_staff_account", lost)
    parent_client.raise_request_exception = False
    response = parent_client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unreachable"}


def test_other_errors_stay_an_ordinary_500(parent_client, monkeypatch):
    def bug(self, request, response):
        raise ZeroDivisionError("a bug, not an outage")

    monkeypatch.setattr(SessionMiddleware, "process_response", bug)
    parent_client.raise_request_exception = False
    response = parent_client.get(reverse("babies:dashboard"))
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()


def test_djangos_own_line_for_an_error_response_carries_the_request_id_too(parent_client, database_lost):
    """Django logs "Service Unavailable: /path" after the middleware returned: the id still shows."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        parent_client.get(reverse("babies:dashboard"), HTTP_X_REQUEST_ID="lb-42")
    finally:
        logger.removeHandler(handler)
    assert [(record.getMessage(), record.request_id) for record in records] == [
        ("Service Unavailable: /dashboard/", "lb-42")
    ]
