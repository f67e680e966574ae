"""allauth customisations live here, not in forked views."""

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.core.exceptions import ValidationError

from accounts import sign_in_audit


class AccountAdapter(DefaultAccountAdapter):
    def format_email_subject(self, subject: str) -> str:
        return f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{subject}"

    def pre_authenticate(self, request, **credentials):
        """allauth's rate limit on failed sign-ins; a refused attempt on a staff account is audited."""
        try:
            super().pre_authenticate(request, **credentials)
        except ValidationError:
            sign_in_audit.staff_sign_in_failed(
                request=request, email=credentials.get("email"), reason="refused by the rate limit"
            )
            raise

    def authentication_failed(self, request, **credentials):
        """A wrong password (allauth counts it towards the rate limit): audited for staff accounts."""
        super().authentication_failed(request, **credentials)
        sign_in_audit.staff_sign_in_failed(
            request=request, email=credentials.get("email"), reason="wrong password"
        )
