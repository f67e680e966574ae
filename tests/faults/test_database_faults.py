"""Fault injection: PostgreSQL stopped in the middle of a parent's request, under real gunicorn.

The test makes a PostgreSQL cluster of its own (``pg_createcluster``; root only, as in CI),
releases the app into it as a deploy does (``collectstatic``, ``deploy/release.sh``) and runs
gunicorn with production settings (``DJANGO_DEBUG=0``, no ``CACHE_URL``: the database cache is
the default). A parent signs up, adds a baby, uploads a scan and gets a prediction over HTTP.

Then the cluster is stopped while a prediction and an upload are each inside the database: the
test holds a SHARE lock on the table they insert into, waits until PostgreSQL shows the
request's INSERT waiting for it (the network has run, the scan's files are written), and stops
the cluster. What must hold:

- the parent sees a 503 page with a sentence (JSON for the upload script), never a 500 or a
  traceback, on every page and action while the database is down;
- the operators see the cause in the log, with the request id;
- after ``pg_ctlcluster start`` everything works again without restarting gunicorn, and nothing
  is half-done: no prediction, scan, baby or file from the interrupted requests.

A second gunicorn (another "container") on the same database shows the per-account limits count
across servers with the default cache.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import requests

from babies.tests.factories import FILES_PER_SCAN
from tests.deploy.helpers import (
    PYTHON,
    Browser,
    add_baby,
    missing,
    production_environment,
    run,
    scan_jpeg,
    sign_up,
    start_gunicorn,
    stop,
    upload_scan,
    wait_for,
)

pytestmark = pytest.mark.slow

PG_VERSION = "15"
PASSWORD = "a long and unguessable test password 7"
UNAVAILABLE = "We cannot reach our database at the moment, so nothing was saved."


# --- The cluster ----------------------------------------------------------------------------
def _free_port() -> int:
    # In a random order: other fault tests may be making clusters of their own at the same time.
    for port in random.sample(range(5440, 5500), 60):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port in 5440-5499")


class Cluster:
    """A PostgreSQL cluster of the test's own, started and stopped on purpose."""

    def __init__(self):
        self.name = f"instagender_faults_{secrets.token_hex(3)}"
        self.port = _free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/instagender"

    def _ctl(self, *args: str) -> None:
        subprocess.run(["pg_ctlcluster", PG_VERSION, self.name, *args], check=True, capture_output=True)

    def create(self) -> None:
        subprocess.run(
            ["pg_createcluster", PG_VERSION, self.name, "-p", str(self.port), "-o", "fsync=off"]
            + ["--", "--auth=trust", "--no-sync"],
            check=True,
            capture_output=True,
        )
        self.start()
        with self.connect("postgres") as connection:
            connection.execute("CREATE DATABASE instagender")

    def start(self) -> None:
        self._ctl("start")
        wait_for(self.ready, timeout=30, what=f"cluster {self.name} accepting connections")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` is what a restart does to open connections; ``immediate`` is a crash."""
        self._ctl("stop", "-m", mode)

    def ready(self) -> bool:
        try:
            with self.connect("postgres"):
                return True
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def connect(self, database: str = "instagender", *, autocommit: bool = True):
        import psycopg

        return psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/{database}",
            autocommit=autocommit,
            connect_timeout=3,
        )

    def drop(self) -> None:
        subprocess.run(["pg_dropcluster", "--stop", PG_VERSION, self.name], check=False, capture_output=True)

    def count(self, table: str, where: str = "TRUE") -> int:
        with self.connect() as connection:
            return connection.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]  # noqa: S608


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0 or not shutil.which("pg_createcluster"):
        missing("pg_createcluster as root is needed to stop a PostgreSQL cluster on purpose")
    cluster = Cluster()
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.drop()


# --- The app, released and served as in production --------------------------------------------
@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def production_env(cluster, root) -> dict[str, str]:
    # No CACHE_URL: production's default (the database cache) is what is under test.
    env = production_environment(database_url=cluster.url, root=root, RATE_LIMIT_SCAN_UPLOAD="4/h/user")
    run([PYTHON, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"], env=env)
    run(["sh", "deploy/release.sh"], env=env)
    # The tiny mean-pixel model (no TensorFlow), switched on through the services.
    run(
        [
            PYTHON,
            "manage.py",
            "shell",
            "-c",
            "from predictions.tests.predict_support import tiny_model_version; tiny_model_version()",
        ],
        env=env,
    )
    return env


@pytest.fixture(scope="module")
def gunicorn(production_env, root):
    server = start_gunicorn(production_env, root / "gunicorn.log")
    yield server
    stop(server.process)


@pytest.fixture(scope="module")
def second_gunicorn(production_env, root, gunicorn):
    server = start_gunicorn(production_env, root / "gunicorn-2.log")
    yield server
    stop(server.process)


def browser_for(server) -> Browser:
    browser = Browser(server.url, origin="https://localhost", behind_fake_proxy=True)
    browser.headers["Host"] = "localhost"
    return browser


def new_parent(server, production_env) -> tuple[Browser, int]:
    browser = browser_for(server)
    mail_dir = Path(production_env["EMAIL_URL"].removeprefix("filemail:///"))
    sign_up(browser, email=f"parent-{secrets.token_hex(4)}@example.com", password=PASSWORD, mail_dir=mail_dir)
    return browser, add_baby(browser, name="Ada")


def predict(browser: Browser, baby_id: int, request_id: str | None = None):
    browser.get("/dashboard/")
    headers = {"Accept": "text/html"} | ({"X-Request-ID": request_id} if request_id else {})
    return browser.post(f"/babies/{baby_id}/predict/", data={"next": "/dashboard/"}, headers=headers)


def assert_unavailable_page(response, what: str) -> None:
    assert response.status_code == 503, (what, response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith("text/html"), what
    assert UNAVAILABLE in response.text, what
    assert "Traceback" not in response.text and "Server Error" not in response.text, what


def stored_files(media_root: Path) -> set[str]:
    return {
        str(path.relative_to(media_root))
        for folder in ("originals", "scans")
        if (media_root / folder).exists()
        for path in (media_root / folder).rglob("*")
        if path.is_file()
    }


def files_in_rows(cluster: Cluster) -> set[str]:
    with cluster.connect() as connection:
        rows = connection.execute(
            "SELECT original, image, thumbnail, model_input FROM babies_scan"
        ).fetchall()
    return {
        f"{folder}/{name}"
        for original, image, thumbnail, model_input in rows
        for folder, name in (
            ("originals", original),
            ("scans", image),
            ("scans", thumbnail),
            ("scans", model_input),
        )
        if name
    }


def stop_while_waiting(cluster: Cluster, table: str, request) -> requests.Response:
    """Run ``request`` (a callable) while holding a SHARE lock on ``table``; once its INSERT waits
    for the lock (everything before it has run), stop the cluster. Returns its response."""
    locker = cluster.connect(autocommit=False)
    locker.execute(f"LOCK TABLE {table} IN SHARE MODE")
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(request)

        def write_is_waiting() -> bool:
            if future.done():
                raise AssertionError(f"the request finished before it waited: {future.result().status_code}")
            row = locker.execute(
                "SELECT count(*) FROM pg_locks JOIN pg_class ON pg_class.oid = pg_locks.relation "
                "WHERE NOT pg_locks.granted AND pg_class.relname = %s",
                [table],
            ).fetchone()
            return row[0] == 1

        wait_for(write_is_waiting, timeout=30, what=f"a write to {table} waiting for the lock")
        # Immediate: every backend quits at once, the lock holder without releasing its lock. In
        # a fast stop the holder's rollback releases the lock first, and the waiting INSERT may
        # commit before its own backend is told to end (the request then simply succeeds).
        cluster.stop("immediate")
        response = future.result(timeout=30)
    with contextlib.suppress(Exception):  # the server is gone, and this connection with it
        locker.close()
    return response


# --- The test -------------------------------------------------------------------------------
def test_postgres_stopped_mid_request_is_a_503_with_a_sentence_and_nothing_is_half_done(
    cluster, gunicorn, production_env
):
    media_root = Path(production_env["MEDIA_ROOT"])
    browser, baby_id = new_parent(gunicorn, production_env)
    first = upload_scan(browser, baby_id=baby_id, data=scan_jpeg(seed=1))
    assert first.status_code == 201, first.text
    scan_id = first.json()["id"]
    assert predict(browser, baby_id).status_code == 302
    babies_before, predictions_before = cluster.count("babies_baby"), cluster.count("predictions_prediction")
    files_before = stored_files(media_root)
    assert files_before == files_in_rows(cluster) and len(files_before) == FILES_PER_SCAN

    # 1. A prediction: the network has run, its INSERT waits, PostgreSQL stops.
    request_id = f"faults-{secrets.token_hex(4)}"
    response = stop_while_waiting(
        cluster,
        "predictions_prediction",
        lambda: predict(browser, baby_id, request_id),
    )
    assert_unavailable_page(response, "predict, stopped mid-request")
    assert response.headers["X-Request-ID"] == request_id

    # 2. While it is down, every page and action says so in a sentence.
    assert_unavailable_page(browser.get("/dashboard/"), "dashboard")
    assert_unavailable_page(browser.get(f"/babies/{baby_id}/"), "baby page")
    assert_unavailable_page(browser.get(f"/scans/{scan_id}/image.jpg"), "scan image")
    assert_unavailable_page(predict(browser, baby_id), "predict")
    token = browser.cookies.get("csrftoken")
    assert_unavailable_page(
        browser.post(
            "/babies/new/", data={"csrfmiddlewaretoken": token, "name": "Bo", "due_date": "2027-01-01"}
        ),
        "add a baby",
    )
    assert_unavailable_page(
        browser.post("/accounts/settings/export/", data={"csrfmiddlewaretoken": token}), "export"
    )
    upload = browser.post(
        f"/babies/{baby_id}/scans/",
        files={"file": ("scan.jpg", scan_jpeg(seed=2), "image/jpeg")},
        data={"gestational_week": "20"},
        headers={"Accept": "application/json"},
    )
    assert upload.status_code == 503 and upload.json()["error"].startswith(UNAVAILABLE), upload.text
    stranger = browser_for(gunicorn)
    # The login form needs no session, but the Site (allauth puts it in the page) is read from
    # the database once per worker: a worker that has not served it yet says it is unavailable.
    login_page = stranger.get("/accounts/login/")
    if login_page.status_code == 200:  # then logging in, which needs the database, says so
        assert_unavailable_page(
            stranger.post("/accounts/login/", data={"login": "someone@example.com", "password": PASSWORD}),
            "log in",
        )
    else:
        assert_unavailable_page(login_page, "login page")
    health = browser.get("/healthz")
    assert health.status_code == 503 and health.json()["database"] == "unreachable"

    # 3. Back up: the same gunicorn serves again, and the interrupted prediction left nothing.
    cluster.start()
    assert browser.get("/dashboard/").status_code == 200
    assert cluster.count("predictions_prediction") == predictions_before
    assert cluster.count("babies_baby") == babies_before

    # 4. An upload: its files are written, its INSERT waits, PostgreSQL stops.
    response = stop_while_waiting(
        cluster, "babies_scan", lambda: upload_scan(browser, baby_id=baby_id, data=scan_jpeg(seed=3))
    )
    assert response.status_code == 503, response.text
    assert response.json()["error"].startswith(UNAVAILABLE)
    cluster.start()
    assert cluster.count("babies_scan") == 1
    assert stored_files(media_root) == files_before == files_in_rows(cluster)  # no file without its row

    # 5. Everything works again, without a restart of gunicorn.
    again = upload_scan(browser, baby_id=baby_id, data=scan_jpeg(seed=3))
    assert again.status_code == 201, again.text
    assert predict(browser, baby_id).status_code == 302
    assert cluster.count("predictions_prediction") == predictions_before + 1
    assert cluster.count("babies_scan") == 2
    assert stored_files(media_root) == files_in_rows(cluster)

    # The operators see why, with the request id, and no 500 was ever answered.
    log = gunicorn.log.read_text()
    assert re.search(
        rf"level=ERROR logger=instagender\.middleware request_id={request_id} "
        rf"message=database unavailable during POST /babies/{baby_id}/predict/: ",
        log,
    ), log[-3000:]
    django_line = f"logger=django.request request_id={request_id} message=Service Unavailable: "
    assert f"{django_line}/babies/{baby_id}/predict/" in log
    assert "server closed the connection unexpectedly" in log or "SIGQUIT" in log  # stopped mid-INSERT
    assert " status=500 " not in log and "Internal Server Error" not in log


def test_per_account_limits_count_across_servers_with_the_default_cache(
    cluster, gunicorn, second_gunicorn, production_env
):
    """Two gunicorn servers (two containers) share the limits: 4 uploads an hour, whichever serves
    (counted in the database), and 5 failed logins per address (allauth's, in the default cache)."""
    browser, baby_id = new_parent(gunicorn, production_env)
    other = browser_for(second_gunicorn)
    other.cookies.update(browser.cookies)
    statuses = []
    for seed, server in zip(range(10, 15), [browser, other, browser, other, other], strict=True):
        statuses.append(upload_scan(server, baby_id=baby_id, data=scan_jpeg(seed=seed)).status_code)
    assert statuses == [201, 201, 201, 201, 429]
    refused = upload_scan(browser, baby_id=baby_id, data=scan_jpeg(seed=20))
    assert refused.status_code == 429
    assert refused.json()["error"].startswith("You have uploaded a lot of scans in a short time")
    assert "each account can upload 4 scans an hour" in refused.json()["error"]

    # allauth's failed-login limit (5 per address) counts across the servers too.
    address = f"victim-{secrets.token_hex(4)}@example.com"
    answers = []
    for server in [gunicorn, second_gunicorn] * 3:
        guesser = browser_for(server)
        token = guesser.form_token("/accounts/login/")
        data = {"csrfmiddlewaretoken": token, "login": address, "password": "wrong guess"}
        answers.append("Too many failed login attempts" in guesser.post("/accounts/login/", data=data).text)
    assert answers == [False] * 5 + [True]

    # The parent's uploads that went ahead, in the database both servers share (refused: not counted).
    owner = f"user_id = (SELECT owner_id FROM babies_baby WHERE id = {int(baby_id)})"  # noqa: S608
    assert cluster.count("accounts_countedaction", f"action = 'scan_upload' AND {owner}") == 4

    # allauth's counters are in the table the release step created (no CACHE_URL: the default).
    assert "CACHE_URL" not in production_env
    with cluster.connect() as connection:
        keys = [row[0] for row in connection.execute("SELECT cache_key FROM instagender_cache").fetchall()]
    assert any(":allauth:rl:" in key for key in keys), keys
