"""Forms of the account settings pages (crispy-forms, Bootstrap 5)."""

from __future__ import annotations

from allauth.core import context
from allauth.mfa.base.forms import AuthenticateForm
from crispy_forms.helper import FormHelper
from crispy_forms.layout import Submit
from django import forms

from accounts import sign_in_audit


class TrainingConsentForm(forms.Form):
    allows_training_use = forms.BooleanField(
        label="Let Instagender use my labelled scans to improve the model",
        required=False,
        help_text=(
            "Only scans of babies whose sex you have confirmed are ever used, after a member of our team "
            "has checked them. You can change your mind at any time."
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.helper = FormHelper()
        self.helper.form_id = "training-consent-form"
        self.helper.add_input(Submit("save", "Save my choice", css_class="btn-brand"))


class AccountDeleteForm(forms.Form):
    """Asks for the password, or, for an account without one, the e-mail address typed out."""

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        if user.has_usable_password():
            self.fields["password"] = forms.CharField(
                label="Your password",
                strip=False,
                widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
                help_text="To make sure it is you.",
            )
        else:
            self.fields["confirmation"] = forms.CharField(
                label=f"Type your e-mail address ({user.email}) to confirm",
                widget=forms.TextInput(attrs={"autocomplete": "off"}),
            )
        self.helper = FormHelper()
        self.helper.form_id = "account-delete-form"
        self.helper.add_input(Submit("delete", "Delete my account and all my data", css_class="btn-danger"))

    def clean_password(self):
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your password. Please try again.")
        return password

    def clean_confirmation(self):
        typed = self.cleaned_data["confirmation"].strip().lower()
        if typed != self.user.email.lower():
            raise forms.ValidationError("That is not your e-mail address. Please type it exactly.")
        return typed


class SecondFactorForm(AuthenticateForm):
    """allauth's code form at sign-in (``MFA_FORMS["authenticate"]``); a code refused by the rate
    limit on a staff account is audited, as a wrong one is (through allauth's signal)."""

    def clean_code(self) -> str:
        try:
            return super().clean_code()
        except forms.ValidationError as error:
            if error.code == "too_many_login_attempts":
                sign_in_audit.staff_sign_in_failed(
                    request=context.request, user=self.user, reason="code refused by the rate limit"
                )
            raise
