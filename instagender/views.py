"""Project-wide pages: the home page and the health check."""

import logging

from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.shortcuts import redirect
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django.views.generic import TemplateView

from instagender.middleware import HEALTH_DATABASE_UNREACHABLE

logger = logging.getLogger(__name__)


class HomeView(TemplateView):
    template_name = "home.html"

    def get(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            return redirect("babies:dashboard")
        return super().get(request, *args, **kwargs)


@never_cache
@require_GET
def healthz(request):
    """200 when the database answers, 503 otherwise (load balancers and Docker poll this)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        logger.exception("Health check: the database is unreachable")
        return JsonResponse(HEALTH_DATABASE_UNREACHABLE, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


def csrf_failure(request, reason=""):
    """A failed CSRF check: JSON with a sentence for ``fetch`` calls, a friendly page otherwise.

    It almost always means the page was open for a long time (or the session ended), so the
    advice is to reload; the technical reason goes to the log, not to the parent.
    """
    logger.info("CSRF check failed: %s", reason)
    if request.get_preferred_type(["text/html", "application/json"]) == "application/json":
        return JsonResponse(
            {"error": "This page has expired. Please reload the page and try again."},
            status=403,
        )
    # Renders templates/403_csrf.html.
    return django_csrf_failure(request, reason=reason)
