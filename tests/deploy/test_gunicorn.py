"""gunicorn with deploy/gunicorn.conf.py and production settings (DEBUG=0) on a real PostgreSQL.

The test plays the part of nginx here (it sends ``X-Forwarded-Proto: https``); test_nginx.py puts
the real nginx in front.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time

import pytest
import requests

from tests.deploy.helpers import (
    PYTHON,
    REPO,
    Browser,
    add_baby,
    run,
    scan_jpeg,
    sign_up,
    start_gunicorn,
    stop,
    upload_scan,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def visitor(gunicorn_server):
    with Browser(gunicorn_server.url, origin="https://localhost", behind_fake_proxy=True) as session:
        session.headers["Host"] = "localhost"
        yield session


def test_release_step_checks_migrates_and_creates_the_cache_table(released, production_env):
    assert "release step finished" in released.stdout
    # Idempotent: a second deploy runs it again without harm.
    again = run(["sh", "deploy/release.sh"], env=production_env)
    assert "No migrations to apply." in again.stdout


def test_check_deploy_is_clean_with_the_compose_environment(production_env):
    result = run(
        [PYTHON, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env=production_env, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_settings_refuse_to_start_without_a_secret_key(production_env):
    env = {**production_env, "DJANGO_SECRET_KEY": ""}
    result = run([PYTHON, "manage.py", "check"], env=env, check=False)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_healthz_answers_and_the_container_healthcheck_agrees(gunicorn_server, visitor):
    response = visitor.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert response.headers["Cache-Control"].startswith("max-age=0")

    # The image's HEALTHCHECK command, run as Docker would (it finds the port from GUNICORN_BIND).
    healthcheck = subprocess.run(
        [PYTHON, "deploy/healthcheck.py"], cwd=REPO, env=gunicorn_server.env, capture_output=True, text=True
    )
    assert healthcheck.returncode == 0, healthcheck.stdout
    # ... and it fails when nothing answers.
    nobody = {**gunicorn_server.env, "HEALTHCHECK_PORT": "9"}
    failing = subprocess.run(
        [PYTHON, "deploy/healthcheck.py"], cwd=REPO, env=nobody, capture_output=True, text=True
    )
    assert failing.returncode == 1
    assert "no answer" in failing.stdout


def test_plain_http_is_redirected_to_https_except_the_health_check(gunicorn_server):
    headers = {"Host": "localhost"}
    home = requests.get(f"{gunicorn_server.url}/", headers=headers, allow_redirects=False, timeout=10)
    assert home.status_code == 301
    assert home.headers["Location"] == "https://localhost/"
    health = requests.get(f"{gunicorn_server.url}/healthz", headers=headers, timeout=10)
    assert health.status_code == 200


def test_https_responses_carry_the_security_headers(visitor):
    response = visitor.get("/")
    assert response.status_code == 200
    assert "max-age=31536000" in response.headers["Strict-Transport-Security"]
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_static_files_are_hashed_and_served_by_whitenoise(visitor, production_env):
    page = visitor.get("/accounts/login/").text
    match = re.search(r'href="(/static/vendor/bootstrap/css/bootstrap\.min\.[0-9a-f]{12}\.css)"', page)
    assert match, "the page should link the hashed (manifest) name of bootstrap.min.css"
    response = visitor.get(match.group(1), headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "max-age=315360000, public, immutable"
    assert response.headers["Content-Encoding"] == "gzip"


def test_sign_up_confirm_log_in_and_upload_over_http(visitor, mail_dir, gunicorn_server):
    email = f"parent-{secrets.token_hex(4)}@instagender.test"
    sign_up(visitor, email=email, password=secrets.token_urlsafe(16), mail_dir=mail_dir)

    baby_id = add_baby(visitor, name="Robin")
    response = upload_scan(visitor, baby_id=baby_id, data=scan_jpeg(seed=1))
    assert response.status_code == 201, response.text
    payload = response.json()
    assert payload["url"] == f"/scans/{payload['id']}/image.jpg"

    # Without nginx in front the answer is only the header nginx acts on.
    image = visitor.get(payload["url"])
    assert image.status_code == 200
    assert image.headers["X-Accel-Redirect"].startswith("/protected/scans/")
    assert image.content == b""


def test_upload_without_csrf_token_is_refused(visitor, mail_dir):
    email = f"parent-{secrets.token_hex(4)}@instagender.test"
    sign_up(visitor, email=email, password=secrets.token_urlsafe(16), mail_dir=mail_dir)
    baby_id = add_baby(visitor, name="Sam")
    visitor.get("/dashboard/")  # the real csrftoken cookie; the header below does not match it
    response = visitor.post(
        f"/babies/{baby_id}/scans/",
        files={"file": ("scan.jpg", scan_jpeg(seed=2), "image/jpeg")},
        headers={"X-CSRFToken": "y" * 32},
    )
    assert response.status_code == 403


def test_log_lines_are_structured_and_carry_the_request_id(gunicorn_server):
    request_id = f"deploytest-{secrets.token_hex(6)}"
    # A Host that is not allowed makes Django log an error inside the request.
    response = requests.get(
        f"{gunicorn_server.url}/",
        headers={"Host": "evil.example", "X-Forwarded-Proto": "https", "X-Request-ID": request_id},
        timeout=10,
    )
    assert response.status_code == 400
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [line for line in gunicorn_server.log.read_text().splitlines() if request_id in line]
        if len(lines) >= 2:
            break
        time.sleep(0.1)
    django_line = next(line for line in lines if "logger=django.security.DisallowedHost" in line)
    assert re.match(
        r"time=\S+ \S+ level=ERROR logger=django\.security\.DisallowedHost request_id=", django_line
    )
    assert f"request_id={request_id} message=Invalid HTTP_HOST header" in django_line
    access_line = next(line for line in lines if "logger=gunicorn.access" in line)
    assert "method=GET" in access_line
    assert "status=400" in access_line
    assert f"request_id={request_id}" in access_line


# --- 500s: the error mail and the log line, under gunicorn -------------------------------------
@pytest.fixture(scope="module")
def gunicorn_with_error_view(production_env, released, deploy_root):
    env = {**production_env, "DJANGO_SETTINGS_MODULE": "tests.deploy.error_view_settings"}
    server = start_gunicorn(env, deploy_root / "gunicorn-error-view.log")
    yield server
    stop(server.process)


def test_a_server_error_is_logged_with_its_traceback_and_mailed_to_the_admins(
    gunicorn_with_error_view, mail_dir
):
    request_id = f"deploytest-{secrets.token_hex(6)}"
    started = time.time() - 1
    response = requests.get(
        f"{gunicorn_with_error_view.url}/deploy-test/server-error/",
        headers={"Host": "localhost", "X-Forwarded-Proto": "https", "X-Request-ID": request_id},
        timeout=10,
    )
    assert response.status_code == 500
    assert "Traceback" not in response.text  # DEBUG is off: no details for the visitor

    log = gunicorn_with_error_view.log.read_text()
    assert re.search(
        rf"level=ERROR logger=django\.request request_id={request_id} message=Internal Server Error: "
        r"/deploy-test/server-error/",
        log,
    )
    assert "RuntimeError: deploy test: a deliberate server error" in log

    mails = [
        path.read_text(errors="replace").replace("\n ", " ")  # unfold long headers
        for path in mail_dir.glob("*.log")
        if path.stat().st_mtime >= started
    ]
    to_operators = [mail for mail in mails if "To: operators@instagender.test" in mail]
    assert any(
        "Subject: [Instagender] ERROR (EXTERNAL IP): Internal Server Error: /deploy-test/server-error/"
        in mail
        for mail in to_operators
    ), to_operators


def test_a_bad_host_header_is_logged_but_not_mailed(gunicorn_server, mail_dir):
    started = time.time() - 1
    response = requests.get(
        f"{gunicorn_server.url}/",
        headers={"Host": "scanner.example", "X-Forwarded-Proto": "https"},
        timeout=10,
    )
    assert response.status_code == 400
    time.sleep(0.5)
    recent = [
        path.read_text(errors="replace") for path in mail_dir.glob("*.log") if path.stat().st_mtime >= started
    ]
    assert not [mail for mail in recent if "scanner.example" in mail]
    assert "Invalid HTTP_HOST header: 'scanner.example'" in gunicorn_server.log.read_text()


def test_gunicorn_configuration_comes_from_the_environment(gunicorn_server):
    result = subprocess.run(
        [
            PYTHON,
            "-c",
            "import runpy, json; c = runpy.run_path('deploy/gunicorn.conf.py'); "
            "print(json.dumps({k: c[k] for k in ('workers', 'threads', 'worker_class', 'timeout', 'bind')}))",
        ],
        cwd=REPO,
        env={
            **gunicorn_server.env,
            "GUNICORN_WORKERS": "5",
            "GUNICORN_THREADS": "1",
            "GUNICORN_TIMEOUT": "12",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    config = json.loads(result.stdout)
    assert config == {
        "workers": 5,
        "threads": 1,
        "worker_class": "sync",
        "timeout": 12,
        "bind": [f"127.0.0.1:{gunicorn_server.port}"],
    }
    broken = subprocess.run(
        [PYTHON, "-c", "import runpy; runpy.run_path('deploy/gunicorn.conf.py')"],
        cwd=REPO,
        env={**gunicorn_server.env, "GUNICORN_WORKERS": "four"},
        capture_output=True,
        text=True,
    )
    assert broken.returncode != 0
    assert "GUNICORN_WORKERS must be a whole number" in broken.stderr
