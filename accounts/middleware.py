"""What staff sessions must satisfy on every request: a second factor, and recent activity.

Both sit after allauth's ``AccountMiddleware`` (``settings.MIDDLEWARE``). Parents are untouched.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpResponseRedirect
from django.urls import reverse

from accounts import mfa
from accounts.sign_in_audit import staff_session_expired

# When the staff member last made a request (Unix seconds), kept in their session.
LAST_ACTIVITY_KEY = "staff_last_activity"
# Write the time at most this often: a session save per request would be a database write each.
ACTIVITY_WRITE_INTERVAL_SECONDS = 30


class StaffMFARequiredMiddleware:
    """Every admin URL sends a staff account without a second factor to set one up first.

    The set-up page is allauth's (``mfa_activate_totp``); it comes back to the admin afterwards.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # The account first: for a parent (most requests) no URL is reversed at all.
        if mfa.staff_needs_second_factor(request.user) and request.path.startswith(reverse("admin:index")):
            messages.warning(
                request,
                "Staff accounts need two-factor sign-in: set up an authenticator app to open the admin.",
            )
            return HttpResponseRedirect(f"{reverse('mfa_activate_totp')}?next={reverse('admin:index')}")
        return self.get_response(request)


def staff_activity_start(sender, request, user, **kwargs) -> None:
    """Django's ``user_logged_in``: a staff session starts its idle clock (and short expiry) at sign-in."""
    if request is not None and hasattr(request, "session") and mfa.is_staff_account(user):
        request.session[LAST_ACTIVITY_KEY] = int(time.time())
        request.session.set_expiry(settings.STAFF_SESSION_IDLE_SECONDS)


class StaffIdleTimeoutMiddleware:
    """Signs a staff account out after ``STAFF_SESSION_IDLE_SECONDS`` without a request.

    The session itself also expires that long after its last save (``set_expiry``), so a session
    that is never used again dies on the server too, not only when its cookie comes back.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if mfa.is_staff_account(request.user):
            idle_limit = settings.STAFF_SESSION_IDLE_SECONDS
            now = int(time.time())
            last = request.session.get(LAST_ACTIVITY_KEY)
            if last is not None and now - last > idle_limit:
                user = request.user
                logout(request)
                staff_session_expired(request=request, user=user, idle_seconds=now - last)
                messages.info(request, "You were signed out after a while without activity. Sign in again.")
            elif last is None or now - last >= ACTIVITY_WRITE_INTERVAL_SECONDS:
                request.session[LAST_ACTIVITY_KEY] = now
                request.session.set_expiry(idle_limit)
        return self.get_response(request)
