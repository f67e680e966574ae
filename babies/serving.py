"""How a private file reaches a browser that is allowed to see it: the one place that decides.

The caller has already checked ownership. Depending on the deployment the bytes are:

* redirected to a short-lived presigned URL (``STORAGE_BACKEND = "s3"``), so S3 serves them;
* handed to nginx with ``X-Accel-Redirect`` to ``PRIVATE_MEDIA_ACCEL_PREFIX + alias + "/" + name``
  (``PRIVATE_MEDIA_SERVING = "x-accel"``; nginx maps that prefix to ``MEDIA_ROOT`` in an
  ``internal`` location, so the path cannot be requested directly);
* streamed by Django (``PRIVATE_MEDIA_SERVING = "stream"``, development).
"""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import storages
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect

# The browser may keep a JPEG for an hour: names are random and a file never changes.
PRIVATE_CACHE_CONTROL = "private, max-age=3600"


def private_file_response(*, alias: str, name: str, content_type: str = "image/jpeg") -> HttpResponse:
    """Answer with the file ``name`` of storage ``alias`` (ownership already checked)."""
    if not name:
        raise Http404("No file.")
    storage = storages[alias]
    if settings.STORAGE_BACKEND == "s3":
        response = HttpResponseRedirect(storage.url(name))
        # The presigned URL expires soon: never let a cache keep the redirect.
        response["Cache-Control"] = "private, no-store"
        return response
    mode = settings.PRIVATE_MEDIA_SERVING
    if mode == "x-accel":
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = quote(f"{settings.PRIVATE_MEDIA_ACCEL_PREFIX}{alias}/{name}")
    elif mode == "stream":
        try:
            handle = storage.open(name, "rb")
        except FileNotFoundError:
            raise Http404("The file is missing.") from None
        response = FileResponse(handle, content_type=content_type)
    else:
        raise ImproperlyConfigured(f"PRIVATE_MEDIA_SERVING must be 'stream' or 'x-accel', not {mode!r}.")
    response["Cache-Control"] = PRIVATE_CACHE_CONTROL
    response["Content-Disposition"] = "inline"
    return response
