"""Dashboard benchmark: requests per second for the dashboard on gunicorn, next to ``/healthz``.

Run from the repository root:  .venv/bin/python bench/dashboard.py [--requests 2000] [--babies 1,2,5,20]
                               .venv/bin/python bench/dashboard.py --smoke   (few requests, tiny model)

The set-up production has: gunicorn with ``deploy/gunicorn.conf.py`` (2 workers, its default
threads), ``DJANGO_DEBUG=0`` with a secret key (hashed static files collected by whitenoise, the
cached template loader), and PostgreSQL: a throwaway database ``instagender_perf_bench`` on
127.0.0.1:5432 (``--database-url`` to choose another; dropped afterwards). Without a reachable
PostgreSQL, ``--smoke`` falls back to SQLite and says so; a full run refuses.

Not timed: the demo recipe trained small (``train_model`` in a child process, TensorFlow never in
this one), switched on with ``--override-gate`` when the gate refuses so small a model (printed);
for each count of babies, one parent whose babies each have two synthetic scans at a usable week
and a prediction from that model, so every card shows thumbnails and a prediction with the
model's figures, as a parent's does. The parents' session cookies come from Django's test client.

Timed: ``ab`` (apache2-utils) with 16 concurrent connections, the parent's dashboard and then
``/healthz`` on the same server (which answers after one database query, so the ratio says what
the dashboard costs above the bare request). Without ``ab`` a Python load generator with 16
threads does the same (slower, and it competes with gunicorn for the CPU: said in the output).
Every response is checked: a dashboard that answers anything but 200 stops the benchmark.

Twice: as production runs, where each worker keeps a parent's drawn cards until something on
them changes (``babies.card_cache``; a load of one parent's page measures that kept path), then
with ``DASHBOARD_CARDS_KEPT=0``, the cards read and drawn on every request, as on a parent's
first visit after a change ("drawn every time").

Goals (issue 13): at least 300 req/s with 2 babies and 150 req/s with 20 on a quiet 2-core machine.
``--smoke``: 1 and 2 babies, 200 requests each, a tiny model: checks the whole path.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchsetup import configure_django, manage, train_small_demo_model  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/instagender_perf_bench"
CONCURRENCY = 16
WORKERS = 2
SMOKE_BABIES = {"train": 60, "val": 20, "test": 20}
BENCH_BABIES = {"train": 120, "val": 40, "test": 40}
OVERRIDE_REASON = "benchmark: measures speed, not accuracy"


# --- Database -------------------------------------------------------------------------------
def _admin_connection(database_url: str):
    import psycopg

    server, name = database_url.rsplit("/", 1)
    return psycopg.connect(server + "/postgres", autocommit=True, connect_timeout=3), name


def create_database(database_url: str) -> bool:
    """A fresh, empty database; False when no PostgreSQL answers."""
    try:
        connection, name = _admin_connection(database_url)
    except Exception as exc:  # psycopg.OperationalError and friends: nothing listens
        print(f"set-up: PostgreSQL not reachable ({type(exc).__name__})")
        return False
    with connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return True


def drop_database(database_url: str) -> None:
    from django.db import connections

    connections.close_all()
    connection, name = _admin_connection(database_url)
    with connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- Data -------------------------------------------------------------------------------------
def parent_with_babies(count: int) -> str:
    """A parent whose ``count`` babies have two usable scans and a prediction each; the session id."""
    from django.conf import settings
    from django.test import Client

    from accounts.models import User
    from babies.models import Baby
    from ml.synthetic import SyntheticConfig
    from predictions.services import prediction_create, synthetic_babies_create

    user = User.objects.create_user(email=f"parent-of-{count}@example.com", password=None)
    usable = SyntheticConfig(min_gestational_week=settings.PREDICTION_MIN_GESTATIONAL_WEEK)
    synthetic_babies_create(owner=user, babies=count, scans_per_baby=2, seed=count, config=usable)
    for baby in Baby.objects.filter(owner=user):
        prediction_create(baby=baby)
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def activate_small_model(workdir: Path, *, smoke: bool) -> None:
    from predictions.services import model_version_gate

    version = train_small_demo_model(
        workdir,
        babies=SMOKE_BABIES if smoke else BENCH_BABIES,
        epochs=1 if smoke else 2,
        name="Synthetic demo model (dashboard benchmark)",
    )
    if model_version_gate(version).passed:
        manage("activate_model", str(version.pk), "--reason", "benchmark")
        print("set-up: it passes the quality gate and was activated")
    else:
        manage("activate_model", str(version.pk), "--override-gate", "--reason", OVERRIDE_REASON)
        print(f'set-up: the gate refused it; activated with --override-gate --reason "{OVERRIDE_REASON}"')


# --- Server -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(port: int, *, keep_cards: bool = True) -> subprocess.Popen:
    env = {**os.environ, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": str(WORKERS)}
    if not keep_cards:
        env["DASHBOARD_CARDS_KEPT"] = "0"  # babies.card_cache draws the cards on every request
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "instagender.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.3)
    server.terminate()
    raise SystemExit("gunicorn did not answer /healthz within 60 s")


def get(url: str, session: str | None) -> tuple[int, bytes]:
    # Only http://127.0.0.1 URLs built here.
    request = urllib.request.Request(url, headers={"Cookie": f"sessionid={session}"} if session else {})  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return response.status, response.read()


# --- Load -------------------------------------------------------------------------------------
def load_with_ab(url: str, requests: int, session: str | None) -> float:
    command = ["ab", "-q", "-n", str(requests), "-c", str(CONCURRENCY)]
    if session:
        command += ["-C", f"sessionid={session}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    failed = re.search(r"Failed requests:\s+(\d+)", output)
    non_2xx = re.search(r"Non-2xx responses:\s+(\d+)", output)
    if (failed and int(failed.group(1))) or non_2xx:
        raise SystemExit(f"{url}: failed or non-2xx responses under load:\n{output}")
    return float(re.search(r"Requests per second:\s+([\d.]+)", output).group(1))


def load_with_threads(url: str, requests: int, session: str | None) -> float:
    remaining = iter(range(requests))
    lock = threading.Lock()
    errors = []

    def worker():
        while True:
            with lock:
                if next(remaining, None) is None:
                    return
            status, _ = get(url, session)
            if status != 200:
                errors.append(status)

    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{url}: {len(errors)} responses were not 200")
    return requests / elapsed


# --- Main -------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement")
    parser.add_argument("--babies", default="1,2,5,20", help="comma-separated counts of babies")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--smoke", action="store_true", help="1 and 2 babies, 200 requests: checks the path")
    args = parser.parse_args()
    counts = [1, 2] if args.smoke else [int(count) for count in args.babies.split(",")]
    requests = 200 if args.smoke else args.requests

    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        workdir = Path(tmp)
        database_url = args.database_url
        on_postgres = create_database(database_url)
        if not on_postgres:
            if not args.smoke:
                raise SystemExit(
                    "bench/dashboard.py needs PostgreSQL (--database-url); --smoke can do without"
                )
            database_url = None
            print("set-up: --smoke falls back to SQLite; its figures say nothing about production")
        os.environ["MODEL_EVALUATION_BABIES"] = "60" if args.smoke else "3000"
        configure_django(workdir, database_url=database_url)
        try:
            run(
                workdir,
                counts,
                requests,
                smoke=args.smoke,
                database=("PostgreSQL" if on_postgres else "SQLite"),
            )
        finally:
            if on_postgres:
                drop_database(database_url)


def run(workdir: Path, counts: list[int], requests: int, *, smoke: bool, database: str) -> None:
    from django.core.management import call_command

    call_command("collectstatic", "--noinput", verbosity=0)
    activate_small_model(workdir, smoke=smoke)
    sessions = {count: parent_with_babies(count) for count in counts}
    load = load_with_ab if shutil.which("ab") else load_with_threads
    generator = "ab" if load is load_with_ab else "16 Python threads in this process (no ab found)"

    print(
        f"gunicorn deploy/gunicorn.conf.py, {WORKERS} workers, DJANGO_DEBUG=0, {database}; "
        f"{generator}, {CONCURRENCY} connections, {requests} requests each"
    )
    # First as production runs (each worker keeps a parent's drawn cards until something on
    # them changes, babies.card_cache), then with the cards drawn on every request: what a
    # parent's first visit after a change costs.
    rates = {}
    for keep_cards in (True, False):
        port = free_port()
        server = start_gunicorn(port, keep_cards=keep_cards)
        try:
            # /healthz once, on the first server: the setting changes nothing there.
            rates[keep_cards] = measure(
                f"http://127.0.0.1:{port}", sessions, requests, load, health=keep_cards
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(
        f"{'babies':>6} {'dashboard req/s':>16} {'drawn every time':>17} {'/healthz req/s':>15} "
        f"{'dashboard/healthz':>18}"
    )
    for count in sessions:
        kept, health = rates[True][count]
        drawn, _ = rates[False][count]
        print(f"{count:>6} {kept:>16.0f} {drawn:>17.0f} {health:>15.0f} {kept / health:>17.0%}")
    print(
        "goals: >= 300 req/s with 2 babies, >= 150 req/s with 20 (quiet 2-core machine); "
        f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        + (" (smoke run: figures mean little)" if smoke else "")
    )


def measure(
    base: str, sessions: dict[int, str], requests: int, load, *, health: bool
) -> dict[int, tuple[float, float | None]]:
    """{babies: (dashboard req/s, /healthz req/s or None without ``health``)} on the server at ``base``."""
    for count, session in sessions.items():
        status, body = get(f"{base}/dashboard/", session)
        cards = body.count(b'data-testid="baby-card"')
        if status != 200 or cards != count:
            raise SystemExit(f"dashboard of the parent of {count}: status {status}, {cards} cards")
    load(f"{base}/healthz", min(requests, 200), None)  # warm-up: every worker connected
    rates = {}
    for count, session in sessions.items():
        load(f"{base}/dashboard/", min(requests, 100), session)  # warm-up of this page
        dashboard = load(f"{base}/dashboard/", requests, session)
        rates[count] = (dashboard, load(f"{base}/healthz", requests, None) if health else None)
    return rates


if __name__ == "__main__":
    main()
