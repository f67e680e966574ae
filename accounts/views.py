"""Account pages that need more than allauth's defaults."""

from allauth.account.views import ConfirmEmailView as AllauthConfirmEmailView
from django.http import Http404


class ConfirmEmailView(AllauthConfirmEmailView):
    """allauth answers a bare 404 when an expired, reused or forged key is POSTed; a parent
    deserves the same explanatory page the GET shows."""

    def post(self, *args, **kwargs):
        try:
            return super().post(*args, **kwargs)
        except Http404:
            self.object = None
            return self.render_to_response(self.get_context_data(), status=400)
