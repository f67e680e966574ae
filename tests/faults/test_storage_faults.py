"""Media storage that cannot be written: a real read-only mount, a real full disk, S3 down.

MEDIA_ROOT is a tmpfs of 8 MB mounted by the test (root only, as in CI), remounted read-only or
filled up; the S3 case stops a local S3 server (moto) under the app. The parent's requests go
through the views; "cron" is the two file commands of deploy/cron/jobs.sh.
"""

from __future__ import annotations

import io
import os
import subprocess

import boto3
import numpy as np
import pytest
from django.core.files.storage import storages
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from moto.server import ThreadedMotoServer
from PIL import Image

from accounts.tests.factories import UserFactory
from babies import services
from babies.files import FILES_PENDING_MESSAGE, StorageUnavailable, walk
from babies.models import FileDeletion, Scan
from babies.tests.factories import FILES_PER_SCAN, BabyFactory, create_scan, image_bytes, stored_files, upload
from tests.deploy.helpers import free_port, missing
from tests.deploy.test_s3_storage import REGION, storages_from_settings

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def media_mount(settings, tmp_path):
    """MEDIA_ROOT on a tmpfs of its own (8 MB), unmounted afterwards."""
    if os.geteuid() != 0:
        missing("mounting a tmpfs needs root (CI runs as root)")
    root = tmp_path / "media"
    root.mkdir(exist_ok=True)
    _mount("-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(root))
    settings.MEDIA_ROOT = root
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def _cron() -> None:
    """One cron round's file jobs; each raises CommandError if it could not finish."""
    call_command("finish_file_deletions")
    call_command("reconcile_media")


def _files_of_rows() -> list[str]:
    return sorted(
        f"{alias}/{name}" for scan in Scan.objects.all() for alias, name in services._scan_files(scan)
    )


def _upload(client, baby):
    return client.post(
        reverse("babies:scan_upload", args=[baby.pk]),
        {"file": upload(_noise_png())},
        HTTP_ACCEPT="application/json",
    )


def _noise_png(side: int = 600) -> bytes:
    """About a megabyte that does not compress: it cannot fit into a few hundred kilobytes."""
    pixels = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_read_only_storage_delays_deletions_honestly_and_cron_finishes_them(media_mount, client, password):
    parent = UserFactory()
    baby = BabyFactory(owner=parent)
    deleted_scan, kept_scan = create_scan(baby), create_scan(baby)
    leaving = UserFactory()
    create_scan(BabyFactory(owner=leaving))
    assert len(stored_files(media_mount)) == 3 * FILES_PER_SCAN
    _mount("-o", "remount,ro", str(media_mount))

    # A scan deleted: the row goes, the parent is told the files are not erased yet, and why.
    client.force_login(parent)
    response = client.post(reverse("babies:scan_delete", args=[deleted_scan.pk]), follow=True)
    html = response.content.decode()
    assert response.status_code == 200
    assert f"The scan was removed from {baby.display_name}. {FILES_PENDING_MESSAGE}" in html.replace(
        "&#x27;", "'"
    )
    assert not Scan.objects.filter(pk=deleted_scan.pk).exists()

    # An upload: a sentence, not a 500; no row.
    response = _upload(client, baby)
    assert (response.status_code, response.json()) == (503, {"error": StorageUnavailable.message})
    assert Scan.objects.filter(baby=baby).count() == 1

    # A whole account deleted: gone, and told that some files are still being erased.
    client.force_login(leaving)
    response = client.post(reverse("account_delete"), {"password": password}, follow=True)
    assert "except some picture files that our storage could not erase just now" in response.content.decode()

    # Nothing could be erased: every file is still there, and the ledger holds each one.
    assert len(stored_files(media_mount)) == 3 * FILES_PER_SCAN
    failing = FileDeletion.objects.filter(done_at__isnull=True, reason=FileDeletion.Reason.DELETED)
    assert failing.count() == 2 * FILES_PER_SCAN
    assert all("Read-only file system" in entry.last_error for entry in failing)

    # The failed upload could not even clean up after itself (deleting needs a writable disk),
    # so the names it reserved (all of them, before its first byte) are due at once rather than
    # in an hour.
    reservations = FileDeletion.objects.filter(done_at__isnull=True, reason=FileDeletion.Reason.UPLOAD)
    assert reservations.count() == FILES_PER_SCAN
    assert all("Read-only file system" in entry.last_error for entry in reservations)

    # Cron while the storage is still read-only: it says so (non-zero exit) and keeps them.
    with pytest.raises(CommandError, match=f"{3 * FILES_PER_SCAN} file\\(s\\) could not be deleted"):
        call_command("finish_file_deletions")

    _mount("-o", "remount,rw", str(media_mount))
    _cron()
    assert stored_files(media_mount) == _files_of_rows()
    assert _files_of_rows() == sorted(f"{alias}/{name}" for alias, name in services._scan_files(kept_scan))
    assert not FileDeletion.objects.filter(done_at__isnull=True).exists()
    with storages["scans"].open(kept_scan.image.name) as handle:  # what stays is intact
        assert Image.open(handle).size == (kept_scan.width, kept_scan.height)


def test_a_full_disk_fails_the_upload_with_a_sentence_and_leaves_no_partial_file(
    media_mount, client, monkeypatch
):
    parent = UserFactory()
    baby = BabyFactory(owner=parent)
    client.force_login(parent)
    create_scan(baby, data=image_bytes())
    before = stored_files(media_mount)

    # Fill the disk but for 300 KB: the next original (about 1 MB) starts, then runs out of space.
    stats = os.statvfs(media_mount)
    free = stats.f_bavail * stats.f_frsize
    (media_mount / "filler").write_bytes(b"\0" * (free - 300 * 1024))
    partial_sizes = {}
    originals = storages["originals"]
    real_delete = originals.delete

    def observed_delete(name):  # only looks: how much of the file had reached the disk
        path = originals.path(name)
        partial_sizes[name] = os.path.getsize(path) if os.path.exists(path) else None
        real_delete(name)

    monkeypatch.setattr(originals, "delete", observed_delete)

    response = _upload(client, baby)

    assert (response.status_code, response.json()) == (503, {"error": StorageUnavailable.message})
    (size,) = partial_sizes.values()
    assert size and 0 < size < len(_noise_png())  # a real partial file, found under its reserved name
    assert stored_files(media_mount) == sorted([*before, "filler"])
    assert Scan.objects.count() == 1
    assert not FileDeletion.objects.filter(done_at__isnull=True).exists()

    # Space again: the same upload succeeds; cron finds nothing to do and nothing is missing.
    (media_mount / "filler").unlink()
    assert _upload(client, baby).status_code == 201
    _cron()
    assert stored_files(media_mount) == _files_of_rows()
    assert len(_files_of_rows()) == 2 * FILES_PER_SCAN


# --- S3 --------------------------------------------------------------------------------------
@pytest.fixture
def s3_that_goes_down(settings, monkeypatch):
    """The project's S3 storages on a local S3 server (moto) that the test can stop and restart.

    Stopping it is a real S3 outage for the app: every request fails to connect. moto keeps its
    objects in the test process, so a server restarted on the same port has them back.
    """
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "instagender-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "instagender-test-secret")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # fail at once instead of retrying for seconds
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"

    class Server:
        def __init__(self):
            self.server = None

        def start(self):
            self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            self.server.start()

        def stop(self):
            self.server.stop()

    server = Server()
    server.start()
    boto3.client("s3", endpoint_url=endpoint, region_name=REGION).create_bucket(
        Bucket="instagender-faults", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    settings.STORAGE_BACKEND = "s3"
    settings.STORAGES = storages_from_settings(
        AWS_STORAGE_BUCKET_NAME="instagender-faults",
        AWS_S3_ENDPOINT_URL=endpoint,
        AWS_S3_REGION_NAME=REGION,
        AWS_S3_ADDRESSING_STYLE="path",
    )
    yield server
    server.server.stop()


def _s3_files() -> list[str]:
    return sorted(f"{alias}/{name}" for alias in ("originals", "scans") for name in walk(storages[alias]))


def test_an_s3_outage_during_a_deletion_is_retried_by_cron_until_the_files_are_gone(
    s3_that_goes_down, client
):
    parent = UserFactory()
    baby = BabyFactory(owner=parent)
    deleted_scan, kept_scan = create_scan(baby), create_scan(baby)
    assert len(_s3_files()) == 2 * FILES_PER_SCAN

    s3_that_goes_down.stop()
    client.force_login(parent)
    response = client.post(reverse("babies:scan_delete", args=[deleted_scan.pk]), follow=True)
    assert FILES_PENDING_MESSAGE in response.content.decode().replace("&#x27;", "'")
    assert not Scan.objects.filter(pk=deleted_scan.pk).exists()
    failing = FileDeletion.objects.filter(done_at__isnull=True)
    assert failing.count() == FILES_PER_SCAN
    assert all("Could not connect" in entry.last_error for entry in failing)
    with pytest.raises(CommandError, match=f"{FILES_PER_SCAN} file\\(s\\) could not be deleted"):
        call_command("finish_file_deletions")

    s3_that_goes_down.start()
    assert len(_s3_files()) == 2 * FILES_PER_SCAN  # nothing was erased while S3 was down
    _cron()
    assert (
        _s3_files()
        == _files_of_rows()
        == sorted(f"{alias}/{name}" for alias, name in services._scan_files(kept_scan))
    )
    assert not FileDeletion.objects.filter(done_at__isnull=True).exists()
