"""Account pages that need more than allauth's defaults: e-mail confirmation and the settings
page (training consent, data export, account deletion)."""

import tempfile

from allauth.account.views import ConfirmEmailView as AllauthConfirmEmailView
from allauth.core import ratelimit
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors, services
from accounts.forms import AccountDeleteForm, TrainingConsentForm
from instagender.ratelimits import per_account_rate_limit


class ConfirmEmailView(AllauthConfirmEmailView):
    """allauth answers a bare 404 when an expired, reused or forged key is POSTed; a parent
    deserves the same explanatory page the GET shows."""

    def post(self, *args, **kwargs):
        try:
            return super().post(*args, **kwargs)
        except Http404:
            self.object = None
            return self.render_to_response(self.get_context_data(), status=400)


# --- Account settings: training consent, data export, deletion ----------------------------
@login_required
@require_http_methods(["GET", "POST"])
def account_settings(request):
    user = request.user
    # An unticked box sends nothing, so an empty POST is still a submission.
    data = request.POST if request.method == "POST" else None
    form = TrainingConsentForm(data, initial={"allows_training_use": user.allows_training_use})
    if request.method == "POST" and form.is_valid():
        services.user_training_consent_update(
            user=user, allows_training_use=form.cleaned_data["allows_training_use"]
        )
        if user.allows_training_use:
            messages.success(request, "Thank you: your confirmed scans may now help improve the model.")
        else:
            messages.success(request, "Saved: your scans will not be used to train the model.")
        return redirect("account_settings")
    context = {"form": form, "summary": selectors.user_data_summary(user=user)}
    return render(request, "accounts/settings.html", context)


@login_required
@require_POST
@per_account_rate_limit("account_export")
def account_export(request):
    """The parent's data as a ZIP download (a POST, so link prefetchers do not build archives)."""
    archive = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)  # noqa: SIM115 (FileResponse closes it)
    services.user_data_export(user=request.user, destination=archive)
    archive.seek(0)
    filename = f"instagender-data-{timezone.localdate():%Y-%m-%d}.zip"
    return FileResponse(archive, as_attachment=True, filename=filename, content_type="application/zip")


@login_required
@require_http_methods(["GET", "POST"])
def account_delete(request):
    user = request.user
    form = AccountDeleteForm(request.POST if request.method == "POST" else None, user=user)
    if request.method == "POST":
        # Guessing the password through this form is throttled like allauth's re-authentication.
        if not ratelimit.consume(request, action="reauthenticate", user=user):
            form.add_error(None, "Too many attempts. Please wait a minute and try again.")
        elif form.is_valid():
            summary = services.user_delete(user=user)
            logout(request)
            if summary["files_pending"]:
                # The rows are gone and the ledger guarantees the files go; they are not gone yet.
                messages.warning(
                    request,
                    "Your account and all your data have been deleted, except some picture files that "
                    "our storage could not erase just now: no page can show them any more, and we keep "
                    "retrying automatically until they are erased (usually within the hour).",
                )
            else:
                messages.success(
                    request, "Your account and all your data have been deleted. Goodbye, and good luck."
                )
            return redirect("home")
    context = {"form": form, "summary": selectors.user_data_summary(user=user)}
    return render(request, "accounts/delete.html", context)
