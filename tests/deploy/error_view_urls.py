"""The project's URLs and a view that raises (used by test_gunicorn's 500 test only)."""

from django.urls import path

from instagender.urls import urlpatterns as project_urlpatterns


def server_error(request):
    raise RuntimeError("deploy test: a deliberate server error")


urlpatterns = [path("deploy-test/server-error/", server_error), *project_urlpatterns]
