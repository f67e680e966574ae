"""Private file storage: nothing under MEDIA_ROOT is ever reachable by a URL of its own."""

import os

from django.conf import settings
from django.core.files.storage import FileSystemStorage


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
