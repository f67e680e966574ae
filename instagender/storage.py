"""Private file storage: nothing under MEDIA_ROOT is ever reachable by a URL of its own."""

import os

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from whitenoise.storage import CompressedManifestStaticFilesStorage


class PrivateFileSystemStorage(FileSystemStorage):
    """Files under ``MEDIA_ROOT/<folder>``; read when used, so tests can move MEDIA_ROOT."""

    def __init__(self, folder: str, **kwargs):
        self.folder = folder
        kwargs.pop("location", None)
        super().__init__(**kwargs)

    @property
    def base_location(self):
        return os.path.join(settings.MEDIA_ROOT, self.folder)

    @property
    def location(self):
        return os.path.abspath(self.base_location)

    def url(self, name):
        raise NotImplementedError("Private files have no public URL; serve them through a view.")

    def deconstruct(self):
        return ("instagender.storage.PrivateFileSystemStorage", (), {"folder": self.folder})


class HashedStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """whitenoise's hashed, compressed static files, with each file's URL worked out once.

    A page asks for a dozen static URLs (``{% static %}``) on every request, and each one goes
    through the manifest lookup, URL splitting and quoting again. The manifest is read when the
    process starts and never changes while it runs, so neither do the URLs.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._urls: dict[str, str] = {}

    def url(self, name, force=False):
        if force:
            return super().url(name, force=True)
        url = self._urls.get(name)
        if url is None:
            url = self._urls[name] = super().url(name)
        return url
