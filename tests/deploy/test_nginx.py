"""nginx with deploy/nginx/templates/default.conf.template (rendered for local ports) over real TLS,
in front of the gunicorn of test_gunicorn.py: what a parent's browser meets in production."""

from __future__ import annotations

import re
import secrets
import socket
import ssl
import time

import pytest
import requests

from deploy.nginx.render import TEMPLATE, placeholders
from tests.deploy.helpers import (
    Browser,
    add_baby,
    free_port,
    scan_jpeg,
    sign_up,
    start_nginx,
    stop,
    upload_scan,
)

pytestmark = pytest.mark.slow


def parent(nginx_server, mail_dir) -> Browser:
    browser = Browser(
        nginx_server.https_url,
        origin=nginx_server.https_url,
        behind_fake_proxy=False,
        verify=str(nginx_server.certificate),
    )
    email = f"parent-{secrets.token_hex(4)}@instagender.test"
    sign_up(browser, email=email, password=secrets.token_urlsafe(16), mail_dir=mail_dir)
    return browser


@pytest.fixture(scope="module")
def uploaded(nginx_server, mail_dir):
    """A parent with one baby and one scan, uploaded through nginx."""
    browser = parent(nginx_server, mail_dir)
    baby_id = add_baby(browser, name="Alex")
    response = upload_scan(browser, baby_id=baby_id, data=scan_jpeg(seed=11))
    assert response.status_code == 201, response.text
    yield browser, baby_id, response.json()
    browser.close()


def test_the_template_has_no_placeholder_the_test_or_compose_leaves_unset(nginx_server):
    rendered = nginx_server.config.read_text()
    assert not placeholders(rendered)
    assert "${" not in rendered
    assert placeholders(TEMPLATE.read_text()) == {
        "NGINX_SERVER_NAME",
        "NGINX_HTTP_PORT",
        "NGINX_HTTPS_PORT",
        "NGINX_UPSTREAM",
        "NGINX_RESOLVER",
        "NGINX_MEDIA_ROOT",
        "NGINX_CLIENT_MAX_BODY_SIZE",
        "NGINX_TLS_CERTIFICATE",
        "NGINX_TLS_CERTIFICATE_KEY",
        "NGINX_ACCESS_LOG",
    }


def test_plain_http_redirects_to_https_and_nginx_has_its_own_health_check(nginx_server):
    response = requests.get(f"{nginx_server.http_url}/dashboard/?x=1", allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"] == "https://127.0.0.1/dashboard/?x=1"
    health = requests.get(f"{nginx_server.http_url}/nginx-health", timeout=10)
    assert health.status_code == 200
    assert health.text == "ok\n"
    assert "nginx/" not in health.headers.get("Server", "")  # server_tokens off


def test_an_unknown_host_name_is_refused_at_the_tls_handshake(nginx_server):
    context = ssl.create_default_context(cafile=str(nginx_server.certificate))
    context.check_hostname = False
    with (
        socket.create_connection(("127.0.0.1", nginx_server.https_port), timeout=5) as raw,
        pytest.raises(ssl.SSLError),
        context.wrap_socket(raw, server_hostname="not-instagender.example"),
    ):
        pass


def test_a_host_header_that_is_not_ours_never_reaches_django(nginx_server):
    with pytest.raises(requests.ConnectionError):
        requests.get(
            f"{nginx_server.https_url}/",
            headers={"Host": "not-instagender.example"},
            verify=str(nginx_server.certificate),
            timeout=10,
        )


def test_django_sees_https_and_the_request_id_matches_nginx_log(nginx_server):
    request_id = f"deploytest-{secrets.token_hex(6)}"
    response = requests.get(
        f"{nginx_server.https_url}/",
        headers={"X-Request-ID": request_id},
        verify=str(nginx_server.certificate),
        timeout=10,
    )
    assert response.status_code == 200  # no redirect loop: Django trusts X-Forwarded-Proto from nginx
    assert "Strict-Transport-Security" in response.headers
    assert response.headers["X-Request-ID"] == request_id
    deadline = time.monotonic() + 5
    while request_id not in nginx_server.access_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    line = next(line for line in nginx_server.access_log.read_text().splitlines() if request_id in line)
    assert re.match(
        rf"time=\S+ level=INFO logger=nginx request_id={request_id} method=GET uri=\"/\" status=200", line
    )


def test_static_files_pass_through_with_whitenoise_cache_headers(nginx_server):
    page = requests.get(
        f"{nginx_server.https_url}/accounts/login/", verify=str(nginx_server.certificate), timeout=10
    )
    path = re.search(r'href="(/static/instagender/site\.[0-9a-f]{12}\.css)"', page.text).group(1)
    response = requests.get(
        f"{nginx_server.https_url}{path}",
        headers={"Accept-Encoding": "gzip"},
        verify=str(nginx_server.certificate),
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/css")
    assert response.headers["Cache-Control"] == "max-age=315360000, public, immutable"
    assert response.headers["Content-Encoding"] == "gzip"
    missing = requests.get(
        f"{nginx_server.https_url}/static/instagender/nothing-here.css",
        verify=str(nginx_server.certificate),
        timeout=10,
    )
    assert missing.status_code == 404


def test_a_parent_gets_their_own_jpeg_through_x_accel_redirect(uploaded, nginx_server):
    browser, _, payload = uploaded
    response = browser.get(payload["url"])
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    assert "X-Accel-Redirect" not in response.headers  # nginx consumed it
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "private, max-age=3600"
    assert response.content.startswith(b"\xff\xd8\xff")
    stored = list((nginx_server.media_root / "scans").rglob("*.jpg"))
    assert response.content in {path.read_bytes() for path in stored}

    thumbnail = browser.get(payload["thumbnail_url"])
    assert thumbnail.status_code == 200
    assert thumbnail.content.startswith(b"\xff\xd8\xff")


def test_the_internal_media_location_cannot_be_requested_directly(uploaded, nginx_server):
    browser, _, _ = uploaded
    stored = next((nginx_server.media_root / "scans").rglob("*.jpg"))
    name = stored.relative_to(nginx_server.media_root / "scans").as_posix()
    for path in (f"/protected/scans/{name}", "/protected/scans/", f"/protected/originals/{name}"):
        response = browser.get(path)  # even signed in
        assert response.status_code == 404, path
        assert not response.content.startswith(b"\xff\xd8\xff")


def test_originals_are_never_served(uploaded, nginx_server):
    """Only the scans folder is mapped: even a forged X-Accel path to an original would 404."""
    browser, _, payload = uploaded
    originals = list((nginx_server.media_root / "originals").rglob("*"))
    assert [path for path in originals if path.is_file()], "the upload should have kept its original"
    config = nginx_server.config.read_text()
    assert "alias " + str(nginx_server.media_root) + "/scans/;" in config
    assert config.count("alias ") == 1
    detail = browser.get(f"/babies/{payload['baby_id']}/")
    assert detail.status_code == 200
    assert "/protected/" not in detail.text
    for path in originals:
        assert path.name not in detail.text


def test_another_parents_jpeg_is_a_404(uploaded, nginx_server, mail_dir):
    _, _, payload = uploaded
    stranger = parent(nginx_server, mail_dir)
    try:
        for url in (payload["url"], payload["thumbnail_url"]):
            response = stranger.get(url)
            assert response.status_code == 404, url
            assert not response.content.startswith(b"\xff\xd8\xff")
    finally:
        stranger.close()
    anonymous = requests.get(
        f"{nginx_server.https_url}{payload['url']}",
        verify=str(nginx_server.certificate),
        allow_redirects=False,
        timeout=10,
    )
    assert anonymous.status_code == 302
    assert "/accounts/login/" in anonymous.headers["Location"]


@pytest.mark.parametrize(
    ("accept", "content_type", "sentence"),
    [
        ("*/*", "application/json", "This file is too large to upload."),
        ("application/json", "application/json", "This file is too large to upload."),
        ("text/html,application/xhtml+xml,*/*;q=0.8", "text/html", "This file is too large"),
    ],
)
def test_an_upload_over_the_limit_gets_a_clear_413(uploaded, accept, content_type, sentence):
    browser, baby_id, _ = uploaded
    too_big = scan_jpeg(seed=12) + secrets.token_bytes(3 * 1024 * 1024)  # nginx's limit here: 2m
    response = upload_scan(browser, baby_id=baby_id, data=too_big, accept=accept)
    assert response.status_code == 413
    assert response.headers["Content-Type"].startswith(content_type)
    if content_type == "application/json":
        assert response.json()["error"].startswith(sentence)
    else:
        assert sentence in response.text
        assert "<title>File too large - Instagender</title>" in response.text


def test_an_upload_under_the_limit_still_reaches_django(uploaded):
    browser, baby_id, _ = uploaded
    response = upload_scan(browser, baby_id=baby_id, data=scan_jpeg(seed=13, size=(640, 480)))
    assert response.status_code == 201, response.text


def test_nginx_answers_a_friendly_503_when_gunicorn_is_gone(nginx_server, tmp_path):
    """The same template with an upstream where nothing listens (a web container restarting)."""
    proxy = start_nginx(
        tmp_path,
        upstream=f"127.0.0.1:{free_port()}",
        media_root=nginx_server.media_root,
        certificate=nginx_server.certificate,
        key=nginx_server.certificate.with_name("privkey.pem"),
    )
    try:
        url = f"{proxy.https_url}/dashboard/"
        as_json = requests.get(url, verify=str(proxy.certificate), timeout=5)
        assert as_json.status_code == 503
        assert as_json.json() == {
            "error": "Instagender is being updated or is busy. Please try again in a minute."
        }
        as_page = requests.get(url, headers={"Accept": "text/html"}, verify=str(proxy.certificate), timeout=5)
        assert as_page.status_code == 503
        assert as_page.headers["Content-Type"].startswith("text/html")
        assert "Back in a minute" in as_page.text
    finally:
        stop(proxy.process)
