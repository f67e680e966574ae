"""A real app for the file fault tests: its own PostgreSQL database, gunicorn (production
settings) and, where a test needs what a parent's browser gets, nginx in front of it.

No page is rendered on the way (a parent is logged in by a session made with ``manage.py
shell``, and the CSRF cookie is the client's own), so the static files need not be collected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import requests

from tests.deploy.helpers import (
    BIN,
    PYTHON,
    REPO,
    Browser,
    Server,
    create_database,
    drop_database,
    free_port,
    missing,
    postgres_base_url,
    production_environment,
    run,
    scan_jpeg,
    stop,
    wait_for,
    with_database,
)

__all__ = ["REPO", "scan_jpeg", "stop", "wait_for"]


@dataclasses.dataclass
class App:
    env: dict[str, str]
    database_url: str
    media_root: Path

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.database_url.replace("postgres://", "postgresql://", 1), autocommit=True)

    def manage(self, *args: str, check: bool = True):
        return run([PYTHON, "manage.py", *args], env=self.env, check=check)

    def cron_round(self):
        """One round of the cron service: deploy/cron/jobs.sh, as the container runs it."""
        return run(["sh", "deploy/cron/jobs.sh"], env=self.env, check=False)

    def parent_with_baby(self) -> tuple[str, int]:
        """A verified parent with one baby; returns a session key for them and the baby's id."""
        email = f"parent-{secrets.token_hex(4)}@instagender.test"
        code = f"""
import datetime, json
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.test import Client
from babies.services import baby_create
user = get_user_model().objects.create_user(email={email!r}, password=None)
EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
baby = baby_create(owner=user, due_date=datetime.date.today() + datetime.timedelta(days=90))
client = Client()
client.force_login(user)
print(json.dumps({{"session": client.cookies["sessionid"].value, "baby": baby.pk}}))
"""
        result = self.manage("shell", "-c", code)
        made = json.loads(result.stdout.strip().splitlines()[-1])
        return made["session"], made["baby"]

    def stored_files(self) -> list[str]:
        root = self.media_root
        return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())

    def scan_files(self) -> list[str]:
        """The files the scan rows name, as paths under MEDIA_ROOT."""
        with self.connect() as connection:
            rows = connection.execute(
                "SELECT original, image, thumbnail, model_input FROM babies_scan"
            ).fetchall()
        return sorted(
            f"{alias}/{name}"
            for row in rows
            for alias, name in zip(("originals", "scans", "scans", "scans"), row, strict=True)
        )

    def open_ledger_entries(self) -> list[tuple[str, str, str]]:
        with self.connect() as connection:
            return connection.execute(
                "SELECT storage, name, reason FROM babies_filedeletion WHERE done_at IS NULL ORDER BY id"
            ).fetchall()


@contextlib.contextmanager
def app(tmp_path: Path):
    """A migrated database of its own and the environment compose gives the web container."""
    base_url = postgres_base_url()
    try:
        name = create_database(base_url)
    except Exception as error:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        missing(f"PostgreSQL is not reachable at {base_url}: {error}")
    database_url = with_database(base_url, name)
    env = production_environment(database_url=database_url, root=tmp_path, PRIVATE_MEDIA_SERVING="x-accel")
    media_root = Path(env["MEDIA_ROOT"])
    application = App(env=env, database_url=database_url, media_root=media_root)
    try:
        application.manage("migrate", "--noinput", "--verbosity", "0")
        application.manage("createcachetable", "--verbosity", "0")  # production keeps rate limits there
        yield application
    finally:
        drop_database(base_url, name)


@contextlib.contextmanager
def gunicorn(application: App, log: Path, *, workers: int, threads: int):
    """gunicorn with deploy/gunicorn.conf.py, ``workers`` processes of ``threads`` threads."""
    port = free_port()
    env = {
        **application.env,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
        "GUNICORN_TIMEOUT": "60",
    }
    with log.open("ab") as output:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "--config", "deploy/gunicorn.conf.py", "instagender.wsgi:application"],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Server(url=f"http://127.0.0.1:{port}", port=port, log=log, process=process, env=env)
    try:

        def healthy() -> bool:
            response = requests.get(
                f"{server.url}/healthz",
                headers={"Host": "localhost", "X-Forwarded-Proto": "https"},
                timeout=2,
            )
            return response.status_code == 200

        wait_for(healthy, timeout=60, what="gunicorn answering /healthz", process=process, log=log)
        yield server
    finally:
        stop(process)


def parent_browser(base_url: str, session: str, *, behind_fake_proxy: bool, verify=True) -> Browser:
    """A browser logged in as the parent, with a CSRF cookie of its own (as Django accepts)."""
    browser = Browser(
        base_url, origin="https://localhost", behind_fake_proxy=behind_fake_proxy, verify=verify
    )
    browser.headers["Host"] = "localhost"
    browser.cookies.set("sessionid", session)
    browser.cookies.set("csrftoken", secrets.token_hex(16))
    return browser


def upload(browser: Browser, baby_id: int, data: bytes, **kwargs):
    """The crop modal's POST, as ``static/babies/upload.js`` sends it."""
    return browser.post(
        f"/babies/{baby_id}/scans/",
        files={"file": ("scan.jpg", data, "image/jpeg")},
        data={"crop_box": "", "gestational_week": "20"},
        headers={"Accept": "application/json"},
        **kwargs,
    )


@contextlib.contextmanager
def scan_inserts_blocked(application: App):
    """Hold a lock that lets uploads read and write their files but stops their scan INSERT.

    ``SHARE ROW EXCLUSIVE`` conflicts with the ``ROW EXCLUSIVE`` an INSERT takes and with
    nothing a SELECT takes, so every upload runs up to the moment its row is written and
    waits there, with its files on disk: the window between writing files and committing.
    """
    connection = application.connect()
    connection.execute("BEGIN")
    connection.execute("LOCK TABLE babies_scan IN SHARE ROW EXCLUSIVE MODE")
    try:
        yield
    finally:
        connection.execute("ROLLBACK")
        connection.close()


def uploads_waiting_on_the_lock(application: App) -> int:
    with application.connect() as connection:
        (count,) = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE 'INSERT INTO \"babies_scan\"%'"
        ).fetchone()
    return count


def worker_pids(master_pid: int) -> list[int]:
    """gunicorn's worker processes: the master's children."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return [int(pid) for pid in children]


def in_thread(function, *args, **kwargs):
    """Run ``function`` in a thread; returns the thread and a dict that gets its result or error."""
    outcome: dict = {}

    def target():
        try:
            outcome["result"] = function(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def wait_until(predicate, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not happen within {timeout}s")
