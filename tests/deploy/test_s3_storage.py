"""STORAGE_BACKEND=s3 against a local S3-compatible server (moto's server mode on 127.0.0.1).

The storages come from instagender/settings.py itself (imported in a fresh process with the S3
environment), not from a copy, so these tests fail if that block changes for the worse.

moto answers an anonymous GET of a private object with 403 as S3 does, but it does not enforce
the expiry of presigned URLs (checked by hand with moto 5.2.5), so the expiry is checked in the
signed query string: SigV4, the configured lifetime, signed just now.
"""

from __future__ import annotations

import datetime
import json
import secrets
import subprocess
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from botocore.config import Config
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from moto.server import ThreadedMotoServer

from tests.deploy.helpers import PYTHON, REPO, scan_jpeg

REGION = "eu-west-2"
QUERYSTRING_EXPIRE = 120


@pytest.fixture(scope="module")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_credentials(monkeypatch):
    # boto3 reads these, as in production; moto accepts any.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "instagender-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secrets.token_hex(20))
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def storages_from_settings(**environment: str) -> dict:
    """settings.STORAGES as instagender/settings.py builds it for this environment."""
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "instagender.settings",
        "DJANGO_DEBUG": "1",
        "STORAGE_BACKEND": "s3",
        **environment,
    }
    code = "import json; from django.conf import settings; print(json.dumps(settings.STORAGES))"
    result = subprocess.run(
        [PYTHON, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


@pytest.fixture
def s3(settings, s3_endpoint, aws_credentials):
    """A fresh private bucket and the project's S3 storages pointed at it."""
    bucket = f"instagender-test-{secrets.token_hex(4)}"
    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name=REGION, config=Config(signature_version="s3v4")
    )
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    settings.STORAGE_BACKEND = "s3"
    settings.STORAGES = storages_from_settings(
        AWS_STORAGE_BUCKET_NAME=bucket,
        AWS_S3_ENDPOINT_URL=s3_endpoint,
        AWS_S3_REGION_NAME=REGION,
        AWS_S3_ADDRESSING_STYLE="path",
        AWS_QUERYSTRING_EXPIRE=str(QUERYSTRING_EXPIRE),
    )
    return client, bucket, s3_endpoint


def test_settings_build_private_presigning_storages_for_every_alias():
    configured = storages_from_settings(AWS_STORAGE_BUCKET_NAME="instagender-media")
    for alias in ("default", "originals", "scans", "models"):
        options = configured[alias]["OPTIONS"]
        assert options["bucket_name"] == "instagender-media"
        assert options["location"] == alias
        assert options["default_acl"] == "private"
        assert options["querystring_auth"] is True
        assert options["querystring_expire"] == 300
        assert options["signature_version"] == "s3v4"
        assert options["file_overwrite"] is False
        assert options["endpoint_url"] is None  # AWS itself unless an endpoint is given
        assert "access_key" not in options and "secret_key" not in options  # boto3's own chain
    assert configured["scans"]["BACKEND"] == "storages.backends.s3.S3Storage"
    assert configured["originals"]["BACKEND"] == "instagender.storage_s3.UnlinkableS3Storage"
    assert configured["models"]["BACKEND"] == "instagender.storage_s3.UnlinkableS3Storage"
    # New AWS buckets have ACLs disabled: an empty AWS_DEFAULT_ACL sends no ACL header at all.
    without_acl = storages_from_settings(AWS_STORAGE_BUCKET_NAME="instagender-media", AWS_DEFAULT_ACL="")
    assert without_acl["scans"]["OPTIONS"]["default_acl"] is None
    # Empty optional values (as in a copied .env) mean "not set", not an empty endpoint.
    empty = storages_from_settings(
        AWS_STORAGE_BUCKET_NAME="instagender-media", AWS_S3_ENDPOINT_URL="", AWS_S3_REGION_NAME=""
    )
    assert empty["scans"]["OPTIONS"]["endpoint_url"] is None
    assert empty["scans"]["OPTIONS"]["region_name"] is None


def test_objects_are_private_and_presigned_urls_are_short_lived(s3):
    client, bucket, endpoint = s3
    jpeg = scan_jpeg(seed=21)
    name = storages["scans"].save("ab/scan.jpg", ContentFile(jpeg))
    key = f"scans/{name}"
    assert client.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(jpeg)

    grants = client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
    assert [grant["Permission"] for grant in grants] == ["FULL_CONTROL"]
    assert grants[0]["Grantee"]["Type"] == "CanonicalUser"  # the owner only, no AllUsers grant

    anonymous = requests.get(f"{endpoint}/{bucket}/{key}", timeout=10)
    assert anonymous.status_code == 403
    assert anonymous.content != jpeg

    url = storages["scans"].url(name)
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == [str(QUERYSTRING_EXPIRE)]
    signed_at = datetime.datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.UTC
    )
    assert abs((datetime.datetime.now(datetime.UTC) - signed_at).total_seconds()) < 60
    assert "X-Amz-Signature" in query
    presigned = requests.get(url, timeout=10)
    assert presigned.status_code == 200
    assert presigned.content == jpeg


def test_originals_and_models_have_no_url_at_all(s3):
    client, bucket, endpoint = s3
    name = storages["originals"].save("original.png", ContentFile(b"\x89PNG original bytes"))
    with pytest.raises(NotImplementedError):
        storages["originals"].url(name)
    with pytest.raises(NotImplementedError):
        storages["models"].url("model.tflite")
    # The application itself still reads them.
    with storages["originals"].open(name) as handle:
        assert handle.read() == b"\x89PNG original bytes"
    anonymous = requests.get(f"{endpoint}/{bucket}/originals/{name}", timeout=10)
    assert anonymous.status_code == 403


def test_uploads_work_without_an_acl_header_for_buckets_with_acls_disabled(s3, settings):
    client, bucket, endpoint = s3
    settings.STORAGES = {
        alias: {**config, "OPTIONS": {**config.get("OPTIONS", {}), "default_acl": None}}
        for alias, config in settings.STORAGES.items()
    }
    name = storages["scans"].save("no-acl.jpg", ContentFile(scan_jpeg(seed=22)))
    assert requests.get(f"{endpoint}/{bucket}/scans/{name}", timeout=10).status_code == 403
    assert requests.get(storages["scans"].url(name), timeout=10).status_code == 200


@pytest.mark.django_db
def test_the_scan_view_sends_the_owner_to_a_presigned_url_and_never_links_the_original(
    s3, user, other_user, client
):
    from babies.services import baby_create, scan_create

    _, bucket, endpoint = s3
    baby = baby_create(owner=user, name="Kim", due_date=datetime.date.today() + datetime.timedelta(days=60))
    jpeg = scan_jpeg(seed=23)
    scan, created = scan_create(
        baby=baby, uploaded_file=SimpleUploadedFile("scan.jpg", jpeg, content_type="image/jpeg")
    )
    assert created
    assert scan.original.name and scan.image.name

    client.force_login(user)
    response = client.get(reverse("babies:scan_image", args=[scan.pk]))
    assert response.status_code == 302
    assert response["Cache-Control"] == "private, no-store"
    location = response["Location"]
    assert location.startswith(f"{endpoint}/{bucket}/scans/")
    assert parse_qs(urlsplit(location).query)["X-Amz-Expires"] == [str(QUERYSTRING_EXPIRE)]
    image = requests.get(location, timeout=10)
    assert image.status_code == 200
    assert image.content.startswith(b"\xff\xd8\xff")

    # Nothing the parent sees points at the original.
    pages = [
        client.get(reverse("babies:dashboard")).content.decode(),
        client.get(reverse("babies:baby_detail", args=[baby.pk])).content.decode(),
    ]
    for page in pages:
        assert scan.original.name not in page
        assert "/originals/" not in page
    anonymous = requests.get(f"{endpoint}/{bucket}/originals/{scan.original.name}", timeout=10)
    assert anonymous.status_code == 403

    client.force_login(other_user)
    assert client.get(reverse("babies:scan_image", args=[scan.pk])).status_code == 404
