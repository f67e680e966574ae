"""Production's static files storage: whitenoise's hashed URLs, each worked out once."""

import json

from django.test import override_settings
from whitenoise.storage import CompressedManifestStaticFilesStorage

from instagender.storage import HashedStaticFilesStorage


@override_settings(STATIC_URL="/static/", DEBUG=False)
def test_hashed_urls_are_whitenoises_and_kept(tmp_path):
    manifest = {"paths": {"site.css": "site.0123abcd.css"}, "version": "1.1", "hash": "x"}
    (tmp_path / "staticfiles.json").write_text(json.dumps(manifest))
    storage = HashedStaticFilesStorage(location=str(tmp_path))
    plain = CompressedManifestStaticFilesStorage(location=str(tmp_path))

    assert storage.url("site.css") == plain.url("site.css") == "/static/site.0123abcd.css"
    storage.hashed_files = {}  # the manifest is not read again for a URL already made
    assert storage.url("site.css") == "/static/site.0123abcd.css"
