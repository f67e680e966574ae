"""The audit log of how staff get in: sign-ins, failed sign-ins, idle sign-outs and MFA changes.

A stolen staff password is the worst breach this product can have, so every staff sign-in, every
failed attempt on a staff account (wrong password, wrong code, or refused by allauth's rate limit)
and every change to anyone's two-factor set-up is written to ``audit`` with the time (the entry's
``created_at``) and the client's IP (as allauth sees it, ``ALLAUTH_TRUSTED_PROXY_COUNT``).
Failures on parents' accounts are not logged here: allauth's rate limits cover them.

The receivers are connected in ``AccountsConfig.ready``; ``accounts.adapters`` and
``accounts.middleware`` call the functions for what has no signal.
"""

from __future__ import annotations

from allauth.account.internal.flows.login import AUTHENTICATION_METHODS_SESSION_KEY
from allauth.core.internal.httpkit import get_client_ip
from django.contrib.auth import get_user_model

from accounts.mfa import is_staff_account
from audit.services import audit_log


def client_ip(request) -> str:
    """The client's address as allauth's rate limits see it (behind trusted proxies too)."""
    if request is None:
        return ""
    try:
        return get_client_ip(request) or ""
    except Exception:  # noqa: BLE001 (a malformed header must not stop a sign-in from being logged)
        return request.META.get("REMOTE_ADDR", "")


def _request_data(request) -> dict:
    return {
        "ip": client_ip(request),
        "user_agent": (request.META.get("HTTP_USER_AGENT", "") if request is not None else "")[:200],
    }


def _staff_user_with_email(email) -> object | None:
    if not email:
        return None
    user = get_user_model().objects.filter(email__iexact=str(email).strip()).first()
    return user if user is not None and (user.is_staff or user.is_superuser) else None


def staff_sign_in_failed(*, request, email: str | None = None, user=None, reason: str) -> None:
    """A failed sign-in on a staff account (``user``, or the one with ``email``): audited."""
    user = user or _staff_user_with_email(email)
    if user is None or not (user.is_staff or user.is_superuser):
        return
    audit_log(
        actor=None, action="staff.sign_in_failed", obj=user, data={**_request_data(request), "reason": reason}
    )


def staff_session_expired(*, request, user, idle_seconds: int) -> None:
    audit_log(
        actor=user,
        action="staff.signed_out_idle",
        obj=user,
        data={**_request_data(request), "idle_seconds": idle_seconds},
    )


# --- Signal receivers ------------------------------------------------------------------------
def on_user_logged_in(sender, request, user, **kwargs) -> None:
    """allauth's ``user_logged_in``: a completed sign-in (after the code, when there is one)."""
    if not is_staff_account(user):
        return
    methods = [
        record.get("method", "") for record in request.session.get(AUTHENTICATION_METHODS_SESSION_KEY, [])
    ]
    audit_log(
        actor=user, action="staff.signed_in", obj=user, data={**_request_data(request), "methods": methods}
    )


def on_mfa_authentication_failed(sender, request, user, authenticator, **kwargs) -> None:
    """A wrong authenticator or recovery code at sign-in (or re-authentication)."""
    reason = "wrong code at re-authentication" if kwargs.get("reauthentication") else "wrong code"
    staff_sign_in_failed(request=request, user=user, reason=f"{reason} ({authenticator.type})")


def _on_authenticator_change(action: str):
    def receiver(sender, request, user, authenticator, **kwargs) -> None:
        audit_log(
            actor=user,
            action=action,
            obj=user,
            data={**_request_data(request), "authenticator": authenticator.type},
        )

    receiver.__name__ = f"on_{action.replace('.', '_')}"
    return receiver


on_authenticator_added = _on_authenticator_change("mfa.authenticator_added")
on_authenticator_removed = _on_authenticator_change("mfa.authenticator_removed")
on_authenticator_reset = _on_authenticator_change("mfa.authenticator_reset")


def connect() -> None:
    from allauth.account.signals import user_logged_in
    from allauth.mfa import signals as mfa_signals

    user_logged_in.connect(on_user_logged_in, dispatch_uid="accounts.staff_signed_in")
    mfa_signals.authentication_failed.connect(
        on_mfa_authentication_failed, dispatch_uid="accounts.mfa_failed"
    )
    mfa_signals.authenticator_added.connect(on_authenticator_added, dispatch_uid="accounts.mfa_added")
    mfa_signals.authenticator_removed.connect(on_authenticator_removed, dispatch_uid="accounts.mfa_removed")
    mfa_signals.authenticator_reset.connect(on_authenticator_reset, dispatch_uid="accounts.mfa_reset")
