"""S3 storage for files that must never be linked (originals, model artifacts).

Kept apart from ``instagender.storage`` so that a deployment on local files never imports boto3.
"""

from storages.backends.s3 import S3Storage


class UnlinkableS3Storage(S3Storage):
    """Private S3 objects without any URL, presigned or not: the app reads them, nobody downloads them."""

    def url(self, name, parameters=None, expire=None, http_method=None):
        raise NotImplementedError("These files have no URL; only the application reads them.")
