"""Faults a parent must see as a sentence, not as a 500 or a bare 400.

- **The database is unreachable** (stopped, restarting, the connection cut mid-request): a 503
  page that says so and that nothing was saved, or ``{"error": ...}`` for the upload script. The
  traceback goes to the log for the operators. Every write runs in a transaction, so a request
  cut short leaves nothing half-done; the next request reconnects by itself
  (``CONN_HEALTH_CHECKS``).
- **A request body Django refuses to parse** (more than ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` fields,
  too many files, too much form data, a broken multipart envelope): Django would answer a bare
  400 that the upload script cannot show. It is parsed here first, before the CSRF check does
  it, and refused with a sentence in the form the page asked for.
"""

from __future__ import annotations

import logging
import sys

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, HttpResponseServerError, JsonResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.template import loader
from django.urls import reverse

logger = logging.getLogger(__name__)

# What a lost or refused database connection raises (Django wraps psycopg's and sqlite3's errors).
# Integrity and programming errors are bugs, not outages: they stay 500s.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)

# What ``/healthz`` answers while the database is down.
HEALTH_DATABASE_UNREACHABLE = {"status": "error", "database": "unreachable"}

DATABASE_UNAVAILABLE_MESSAGE = (
    "We cannot reach our database at the moment, so nothing was saved. Please try again in a few minutes."
)


def wants_json(request) -> bool:
    """The upload script (fetch with ``Accept: application/json``) rather than a page."""
    return request.get_preferred_type(["text/html", "application/json"]) == "application/json"


def database_unavailable_response(request) -> HttpResponse:
    """The 503 itself. The page is self-contained: rendering it must not need the database
    (no context processors, so no ``request.user``).

    The health check answers in its own JSON shape whatever failed first: a browser that polls it
    with a session cookie reaches the database in the staff middleware before the view.
    """
    if request.path == reverse("healthz"):
        response = JsonResponse(HEALTH_DATABASE_UNREACHABLE, status=503)
    elif wants_json(request):
        response = JsonResponse({"error": DATABASE_UNAVAILABLE_MESSAGE}, status=503)
    else:
        html = loader.get_template("503.html").render({"message": DATABASE_UNAVAILABLE_MESSAGE})
        response = HttpResponse(html, status=503)
    response["Retry-After"] = "60"
    return response


class DatabaseUnavailableMiddleware:
    """A view that loses the database answers 503 with a sentence (see the module docstring)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, DATABASE_UNAVAILABLE):
            return None
        logger.error(
            "database unavailable during %s %s: %s",
            request.method,
            request.path,
            exception,
            exc_info=exception,
        )
        return database_unavailable_response(request)


def server_error(request):
    """``handler500``: the database can also fail outside a view (the session is saved after it);
    that is an outage too, so the same 503. Anything else is Django's plain 500 page."""
    error = sys.exc_info()[1]
    if isinstance(error, DATABASE_UNAVAILABLE):
        return database_unavailable_response(request)
    return HttpResponseServerError(loader.get_template("500.html").render())


# --- Request bodies Django refuses ----------------------------------------------------------
BODY_ERRORS = {
    TooManyFieldsSent: "This form sent far more fields than it has, so it was not accepted. "
    "Please reload the page and try again.",
    TooManyFilesSent: "This form sent more files than we accept at once. Please upload one scan at a time.",
    RequestDataTooBig: "This form sent more text than we accept, so it was not accepted. "
    "Please reload the page and try again.",
    MultiPartParserError: "The upload arrived incomplete or damaged, so it was not accepted. "
    "Please try again.",
    UnreadablePostError: "The upload did not arrive completely. Please try again.",
}


class RequestBodyErrorsMiddleware:
    """Parse a POST's form data before the CSRF check does, and refuse what Django cannot parse
    with a sentence: JSON for the upload script, the 400 page otherwise.

    Must come before ``CsrfViewMiddleware``. Parsing here costs nothing extra: the CSRF check
    reads ``request.POST`` of every POST anyway, and the result is kept on the request.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.method != "POST":
            return None
        try:
            request.POST  # noqa: B018 (parses the body: form fields and files)
        except tuple(BODY_ERRORS) as error:
            request._mark_post_parse_error()  # what Django does too: the body cannot be read twice
            message = next(text for kind, text in BODY_ERRORS.items() if isinstance(error, kind))
            logger.warning("request body refused on %s: %s: %s", request.path, type(error).__name__, error)
            if wants_json(request):
                return JsonResponse({"error": message}, status=400)
            return render(request, "400.html", {"message": message}, status=400)
        return None
