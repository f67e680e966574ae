"""Two-factor sign-in (allauth.mfa): who must have it and whether they do.

Staff see every parent's scans, so a staff account needs an authenticator app (TOTP) before any
admin page opens (``accounts.middleware.StaffMFARequiredMiddleware``) and before any parent's scan
is served to it (``babies.models.user_may_view_every_baby``). allauth asks every account that has
one for a code at sign-in, the admin's sign-in included (it goes through allauth's). Parents may
turn it on from their account menu; for them it stays optional. Recovery codes alone do not count:
they are the way back in when the phone is lost, not a second factor of their own.
"""

from __future__ import annotations

from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled

SECOND_FACTOR_TYPES = [Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN]

# Cached on the user object for the request: a page of thumbnails asks once per image.
_CACHE_ATTRIBUTE = "_instagender_has_second_factor"


def is_staff_account(user) -> bool:
    """Accounts that open the admin (superusers are always staff here, but check both)."""
    return bool(getattr(user, "is_authenticated", False) and (user.is_staff or user.is_superuser))


def user_has_second_factor(user) -> bool:
    """Whether ``user`` has an authenticator app (or a security key) set up."""
    if not getattr(user, "is_authenticated", False):
        return False
    cached = getattr(user, _CACHE_ATTRIBUTE, None)
    if cached is None:
        cached = is_mfa_enabled(user, types=SECOND_FACTOR_TYPES)
        setattr(user, _CACHE_ATTRIBUTE, cached)
    return cached


def staff_needs_second_factor(user) -> bool:
    """A staff account that has not set up two-factor sign-in yet."""
    return is_staff_account(user) and not user_has_second_factor(user)
