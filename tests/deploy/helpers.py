"""Helpers for the deployment tests: ports, processes, a throwaway PostgreSQL database, TLS files,
and an HTTP client that behaves like a browser behind the proxy."""

from __future__ import annotations

import dataclasses
import datetime
import grp
import io
import ipaddress
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
BIN = Path(sys.executable).parent


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(reason: str):
    """A local run without a tool skips; CI must have every tool, so there it fails."""
    import pytest

    if in_ci():
        pytest.fail(f"{reason} (CI must run every deployment test)")
    pytest.skip(reason)


def production_environment(*, database_url: str, root: Path, **settings: str) -> dict[str, str]:
    """The environment compose gives the web container, pointed at this machine.

    Production settings (``DJANGO_DEBUG=0``, a fresh secret key), ``database_url``, e-mail written
    to files in ``root/mail``, media and collected static files under ``root``. What in the
    caller's own environment configures the app is left out, so only these count; ``settings``
    adds to them or overrides them.
    """
    (root / "mail").mkdir(parents=True, exist_ok=True)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "GUNICORN_", "AWS_", "PYTEST_", "CRON_", "RATE_LIMIT_"))
        and name not in {"DATABASE_URL", "CACHE_URL", "EMAIL_URL", "MEDIA_ROOT", "STATIC_ROOT"}
    }
    env.update(
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="instagender.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="localhost,127.0.0.1",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://localhost",
        DATABASE_URL=database_url,
        EMAIL_URL=f"filemail:///{root / 'mail'}",
        SITE_DOMAIN="localhost",
        STORAGE_BACKEND="local",
        MEDIA_ROOT=str(root / "media"),
        STATIC_ROOT=str(root / "static"),
    )
    env.update(settings)
    return env


def vendor_files() -> list[str]:
    """The npm files the images keep (deploy/vendor-files.txt), as paths under node_modules/."""
    lines = (REPO / "deploy" / "vendor-files.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def free_port() -> int:
    """A port nobody listens on now (never 8000: a developer's runserver may be there)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port != 8000:
            return port


def wait_for(predicate, *, timeout: float, what: str, process: subprocess.Popen | None = None, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {process.returncode}.\n{_tail(log)}")
        try:
            if predicate():
                return
        except (OSError, requests.RequestException):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not happen within {timeout}s.\n{_tail(log)}")


def _tail(log: Path | None, lines: int = 40) -> str:
    if log is None or not Path(log).exists():
        return ""
    return "\n".join(Path(log).read_text(errors="replace").splitlines()[-lines:])


def stop(process: subprocess.Popen, *, timeout: float = 15) -> None:
    """SIGTERM (a graceful stop for gunicorn and nginx), then SIGKILL if it hangs."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def run(args: list[str], *, env: dict[str, str], timeout: float = 300, check: bool = True):
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        output = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        raise AssertionError(f"{' '.join(args)} failed with {result.returncode}\n{output}")
    return result


# --- PostgreSQL --------------------------------------------------------------------------------
def postgres_base_url() -> str:
    """The server the suite uses (DATABASE_URL) or the local default, as a URL to its postgres db."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        url = "postgres://postgres@127.0.0.1:5432/postgres"
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/postgres", "", ""))


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))


def _admin_connection(base_url: str):
    import psycopg

    return psycopg.connect(
        base_url.replace("postgres://", "postgresql://", 1), autocommit=True, connect_timeout=5
    )


def create_database(base_url: str) -> str:
    name = f"instagender_deploytest_{secrets.token_hex(4)}"
    with _admin_connection(base_url) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(base_url: str, name: str) -> None:
    assert re.fullmatch(r"instagender_deploytest_[0-9a-f]+", name)
    with _admin_connection(base_url) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- TLS ----------------------------------------------------------------------------------------
def self_signed_certificate(directory: Path, host: str = "localhost") -> tuple[Path, Path]:
    """A certificate for ``host`` (and 127.0.0.1) that the test client trusts explicitly."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    certificate_path = directory / "fullchain.pem"
    key_path = directory / "privkey.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return certificate_path, key_path


# --- A browser-like client ----------------------------------------------------------------------
class Browser(requests.Session):
    """Keeps cookies, sends the CSRF token and Origin like a browser does.

    Talking to gunicorn directly the test plays nginx: it adds ``X-Forwarded-Proto: https``, and
    the cookie jar sends the (Secure) cookies over that plain connection, as the real browser would
    over TLS. Through nginx everything is real HTTPS.
    """

    def __init__(self, base_url: str, *, origin: str, behind_fake_proxy: bool, verify: str | bool = True):
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.origin = origin
        self.verify = verify
        self.behind_fake_proxy = behind_fake_proxy
        if behind_fake_proxy:
            self.headers["X-Forwarded-Proto"] = "https"
        self.headers["User-Agent"] = "instagender-deploy-test"

    def request(self, method, url, *args, **kwargs):
        if url.startswith("/"):
            url = self.base_url + url
        headers = kwargs.pop("headers", None) or {}
        if self.behind_fake_proxy and len(self.cookies):
            # requests drops Secure cookies on a plain connection; the real browser uses TLS.
            headers.setdefault("Cookie", "; ".join(f"{c.name}={c.value}" for c in self.cookies))
        if method.upper() not in {"GET", "HEAD", "OPTIONS"}:
            headers.setdefault("Origin", self.origin)
            headers.setdefault("Referer", self.origin + "/")
            token = self.cookies.get("csrftoken")
            if token:
                headers.setdefault("X-CSRFToken", token)
        kwargs.setdefault("verify", self.verify)  # else REQUESTS_CA_BUNDLE would win over the session's
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("timeout", 30)
        return super().request(method, url, *args, headers=headers, **kwargs)

    def form_token(self, path: str) -> str:
        response = self.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:500])
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.text)
        assert match, f"no CSRF token in {path}"
        return match.group(1)


def latest_mail(mail_dir: Path, *, to: str, after: float) -> str:
    """The newest mail to ``to`` written by Django's file backend after ``after`` (a timestamp)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        candidates = sorted(
            (path for path in mail_dir.glob("*.log") if path.stat().st_mtime >= after),
            key=lambda path: path.stat().st_mtime,
            reverse=True,
        )
        for path in candidates:
            text = path.read_text(errors="replace")
            if f"To: {to}" in text:
                return text
        time.sleep(0.1)
    raise AssertionError(f"no mail to {to} in {mail_dir}")


def sign_up(browser: Browser, *, email: str, password: str, mail_dir: Path) -> None:
    """Sign up, confirm the address from the e-mail, log in: the whole flow over HTTP."""
    started = time.time() - 1
    token = browser.form_token("/accounts/signup/")
    response = browser.post(
        "/accounts/signup/",
        data={"csrfmiddlewaretoken": token, "email": email, "password1": password, "password2": password},
    )
    assert response.status_code == 302, (response.status_code, response.text[:2000])

    mail = latest_mail(mail_dir, to=email, after=started)
    match = re.search(r"https?://[^\s/]+(/accounts/confirm-email/[^\s]+/)", mail.replace("=\n", ""))
    assert match, mail
    confirm_path = match.group(1)
    token = browser.form_token(confirm_path)
    response = browser.post(confirm_path, data={"csrfmiddlewaretoken": token})
    assert response.status_code == 302, (response.status_code, response.text[:2000])

    token = browser.form_token("/accounts/login/")
    response = browser.post(
        "/accounts/login/", data={"csrfmiddlewaretoken": token, "login": email, "password": password}
    )
    assert response.status_code == 302, (response.status_code, response.text[:2000])
    dashboard = browser.get("/dashboard/")
    assert dashboard.status_code == 200, dashboard.status_code


def add_baby(browser: Browser, *, name: str) -> int:
    """Add a baby through the dashboard's form; returns its id (from the redirect's anchor)."""
    token = browser.form_token("/babies/new/")
    due_date = (datetime.date.today() + datetime.timedelta(days=60)).isoformat()
    response = browser.post(
        "/babies/new/",
        data={"csrfmiddlewaretoken": token, "name": name, "due_date": due_date, "birth_date": ""},
    )
    assert response.status_code == 302, (response.status_code, response.text[:2000])
    match = re.search(r"#baby-(\d+)$", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def scan_jpeg(*, seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    """A small, unique, valid JPEG (the upload pipeline decodes and re-encodes it)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, (seed * 37 % 256, 20, 40))
    draw = ImageDraw.Draw(image)
    draw.ellipse((40 + seed % 50, 40, 200, 180), fill=(200, 200, 200))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def upload_scan(browser: Browser, *, baby_id: int, data: bytes, accept: str = "application/json"):
    browser.get("/dashboard/")  # as the page would: it holds the csrftoken cookie
    return browser.post(
        f"/babies/{baby_id}/scans/",
        files={"file": ("scan.jpg", data, "image/jpeg")},
        data={"crop_box": "", "gestational_week": "20"},
        headers={"Accept": accept},
    )


# --- gunicorn -------------------------------------------------------------------------------------
@dataclasses.dataclass
class Server:
    url: str
    port: int
    log: Path
    process: subprocess.Popen
    env: dict[str, str]


def start_gunicorn(env: dict[str, str], log: Path) -> Server:
    port = free_port()
    env = {
        **env,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "2",
        "GUNICORN_TIMEOUT": "30",
    }
    with log.open("ab") as output:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "--config", "deploy/gunicorn.conf.py", "instagender.wsgi:application"],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        response = requests.get(
            f"{url}/healthz", headers={"Host": "localhost", "X-Forwarded-Proto": "https"}, timeout=2
        )
        return response.status_code == 200

    try:
        wait_for(healthy, timeout=60, what="gunicorn answering /healthz", process=process, log=log)
    except BaseException:
        stop(process)
        raise
    return Server(url=url, port=port, log=log, process=process, env=env)


# --- nginx -----------------------------------------------------------------------------------------
@dataclasses.dataclass
class Proxy:
    https_url: str
    http_url: str
    https_port: int
    certificate: Path
    access_log: Path
    error_log: Path
    config: Path
    media_root: Path
    process: subprocess.Popen


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not found:
        missing("nginx is not installed (.ci/run installs it)")
    return found


def start_nginx(
    prefix: Path,
    *,
    upstream: str,
    media_root: Path,
    certificate: Path,
    key: Path,
    client_max_body_size: str = "2m",
) -> Proxy:
    """Render deploy/nginx's template for local ports and run nginx on it in the foreground.

    The main nginx.conf is the nginx image's, reduced to what a test needs (paths under ``prefix``).
    """
    from deploy.nginx.render import render

    nginx = nginx_binary()
    for folder in ("logs", "tmp", "conf.d"):
        (prefix / folder).mkdir(parents=True, exist_ok=True)
    http_port, https_port = free_port(), free_port()
    values = {
        "NGINX_SERVER_NAME": "localhost",
        "NGINX_HTTP_PORT": f"127.0.0.1:{http_port}",
        "NGINX_HTTPS_PORT": f"127.0.0.1:{https_port}",
        "NGINX_UPSTREAM": upstream,
        "NGINX_RESOLVER": "127.0.0.1",
        "NGINX_MEDIA_ROOT": str(media_root),
        "NGINX_CLIENT_MAX_BODY_SIZE": client_max_body_size,
        "NGINX_TLS_CERTIFICATE": str(certificate),
        "NGINX_TLS_CERTIFICATE_KEY": str(key),
        "NGINX_ACCESS_LOG": str(prefix / "logs" / "access.log"),
    }
    server_config = prefix / "conf.d" / "default.conf"
    server_config.write_text(render(values))
    # As root (CI), workers would drop to "nobody" and could not read the media files gunicorn
    # (root here) wrote; in compose they share the media group instead (see the Dockerfile).
    user_line = ""
    if os.geteuid() == 0:
        user_line = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};"
    tmp = prefix / "tmp"
    config = prefix / "nginx.conf"
    config.write_text(
        textwrap.dedent(
            f"""\
            {user_line}
            worker_processes 1;
            daemon off;
            pid {prefix / "nginx.pid"};
            error_log {prefix / "logs" / "error.log"} info;
            events {{ worker_connections 128; }}
            http {{
                default_type application/octet-stream;
                sendfile on;
                keepalive_timeout 65;
                client_body_temp_path {tmp / "body"};
                proxy_temp_path {tmp / "proxy"};
                fastcgi_temp_path {tmp / "fastcgi"};
                uwsgi_temp_path {tmp / "uwsgi"};
                scgi_temp_path {tmp / "scgi"};
                include {server_config};
            }}
            """
        )
    )
    checked = subprocess.run(
        [nginx, "-t", "-p", str(prefix), "-c", str(config)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    with (prefix / "logs" / "stderr.log").open("ab") as output:
        process = subprocess.Popen(
            [nginx, "-p", str(prefix), "-c", str(config)], stdout=output, stderr=output
        )
    proxy = Proxy(
        https_url=f"https://localhost:{https_port}",
        http_url=f"http://127.0.0.1:{http_port}",
        https_port=https_port,
        certificate=certificate,
        access_log=prefix / "logs" / "access.log",
        error_log=prefix / "logs" / "error.log",
        config=server_config,
        media_root=media_root,
        process=process,
    )
    try:
        wait_for(
            lambda: requests.get(f"{proxy.http_url}/nginx-health", timeout=2).status_code == 200,
            timeout=30,
            what="nginx answering /nginx-health",
            process=process,
            log=proxy.error_log,
        )
    except BaseException:
        stop(process)
        raise
    return proxy
