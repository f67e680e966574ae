"""A gunicorn worker killed (SIGKILL) in the middle of an upload, between writing the scan's files
and committing its row: the parent gets nginx's sentence, nothing is lost, and the next cron round
once the upload's reservation is due leaves no file behind.

The kill lands in that window without any hook in the code: the test holds a PostgreSQL lock that
lets the upload read and write its files but stops its ``INSERT``, and kills the worker while it
waits there.
"""

from __future__ import annotations

import os
import signal

import pytest

from babies.tests.factories import FILES_PER_SCAN
from tests.deploy.helpers import self_signed_certificate, start_nginx
from tests.faults.media_server import (
    app,
    gunicorn,
    in_thread,
    parent_browser,
    scan_inserts_blocked,
    scan_jpeg,
    stop,
    upload,
    uploads_waiting_on_the_lock,
    wait_until,
    worker_pids,
)

pytestmark = pytest.mark.slow

NGINX_UNAVAILABLE = {"error": "Instagender is being updated or is busy. Please try again in a minute."}


def test_a_worker_killed_between_writing_files_and_committing_leaves_nothing_after_cron(tmp_path):
    with (
        app(tmp_path) as application,
        gunicorn(application, tmp_path / "gunicorn.log", workers=1, threads=2) as server,
    ):
        certificate, key = self_signed_certificate(tmp_path / "nginx" / "certs")
        proxy = start_nginx(
            tmp_path / "nginx",
            upstream=f"127.0.0.1:{server.port}",
            media_root=application.media_root,
            certificate=certificate,
            key=key,
        )
        try:
            session, baby_id = application.parent_with_baby()
            browser = parent_browser(
                proxy.https_url, session, behind_fake_proxy=False, verify=str(certificate)
            )
            data = scan_jpeg(seed=7, size=(640, 480))

            with scan_inserts_blocked(application):
                thread, outcome = in_thread(upload, browser, baby_id, data, timeout=60)
                wait_until(
                    lambda: uploads_waiting_on_the_lock(application) == 1,
                    timeout=30,
                    what="the upload's INSERT",
                )
                written = application.stored_files()
                assert len(written) == FILES_PER_SCAN  # every file of the scan on disk, no row yet
                reserved = {f"{alias}/{name}" for alias, name, reason in application.open_ledger_entries()}
                assert reserved == set(written)  # each name was in the ledger before its bytes
                (worker,) = worker_pids(server.process.pid)
                os.kill(worker, signal.SIGKILL)
                thread.join(timeout=60)

            # What the parent's page gets: nginx's sentence, as JSON for the upload script.
            response = outcome["result"]
            assert (response.status_code, response.json()) == (503, NGINX_UNAVAILABLE)
            assert application.scan_files() == []  # the row never committed

            # The parent tries again once gunicorn has a new worker: stored once, as usual.
            wait_until(
                lambda: worker_pids(server.process.pid) not in ([], [worker]), timeout=30, what="a new worker"
            )
            retry = upload(browser, baby_id, data, timeout=60)
            assert retry.status_code == 201, retry.text

            # A cron round at once leaves the killed upload's files: it might still be committing.
            first = application.cron_round()
            assert first.returncode == 0, first.stdout + first.stderr
            assert set(written) <= set(application.stored_files())

            # An hour later (the reservation is due) the next round removes them, and only them.
            with application.connect() as connection:
                connection.execute("UPDATE babies_filedeletion SET due_at = now() WHERE done_at IS NULL")
            second = application.cron_round()
            assert second.returncode == 0, second.stdout + second.stderr
            assert f"File deletions: {FILES_PER_SCAN} removed" in second.stdout
        finally:
            stop(proxy.process)

        assert application.stored_files() == application.scan_files()
        assert len(application.scan_files()) == FILES_PER_SCAN
        assert not set(written) & set(application.stored_files())
        assert application.open_ledger_entries() == []
