"""Sixteen uploads of the same scan at the same moment, on PostgreSQL through real gunicorn
workers and threads: one row, one set of files, every parent's request answered.

So that the uploads really race (rather than the later ones finding the first one's row), the
test holds a PostgreSQL lock that lets each upload check for a duplicate and write its files but
stops its ``INSERT``; once all sixteen wait there it lets them go, and the unique constraint
decides.
"""

from __future__ import annotations

from collections import Counter

import pytest

from babies.tests.factories import FILES_PER_SCAN
from tests.faults.media_server import (
    app,
    gunicorn,
    in_thread,
    parent_browser,
    scan_inserts_blocked,
    scan_jpeg,
    upload,
    uploads_waiting_on_the_lock,
    wait_until,
)

pytestmark = pytest.mark.slow

UPLOADS = 16


def test_sixteen_concurrent_uploads_of_the_same_scan_store_it_once_and_leave_no_file(tmp_path):
    log = tmp_path / "gunicorn.log"
    # Two workers of sixteen threads: the kernel may hand most requests to one worker, and a
    # request queued behind threads that wait on the lock would never reach its INSERT.
    with app(tmp_path) as application, gunicorn(application, log, workers=2, threads=UPLOADS) as server:
        session, baby_id = application.parent_with_baby()
        data = scan_jpeg(seed=16, size=(640, 480))
        browsers = [parent_browser(server.url, session, behind_fake_proxy=True) for _ in range(UPLOADS)]

        with scan_inserts_blocked(application):
            started = [in_thread(upload, browser, baby_id, data, timeout=120) for browser in browsers]
            wait_until(
                lambda: uploads_waiting_on_the_lock(application) == UPLOADS,
                timeout=90,
                what=f"{UPLOADS} uploads waiting to INSERT",
            )
            assert len(application.stored_files()) == FILES_PER_SCAN * UPLOADS  # every one wrote its files
        for thread, _ in started:
            thread.join(timeout=120)
        responses = [outcome["result"] for _, outcome in started]

        assert Counter(response.status_code for response in responses) == {201: 1, 200: UPLOADS - 1}
        answers = [response.json() for response in responses]
        assert len({answer["id"] for answer in answers}) == 1
        duplicates = [answer for answer in answers if answer["duplicate"]]
        assert len(duplicates) == UPLOADS - 1
        assert all("already uploaded this scan" in answer["message"] for answer in duplicates)

        # The losers removed their own files at once; the winner's reservations went on commit.
        assert len(application.scan_files()) == FILES_PER_SCAN
        assert application.stored_files() == application.scan_files()
        assert application.open_ledger_entries() == []

        cron = application.cron_round()
        assert cron.returncode == 0, cron.stdout + cron.stderr
        assert application.stored_files() == application.scan_files()
        assert "Traceback" not in log.read_text()
