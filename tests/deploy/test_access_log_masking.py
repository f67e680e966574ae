"""The signed token of an outcome link never reaches an access log: the real gunicorn (with
deploy/gunicorn.conf.py) and the real nginx (with the rendered template) write ``/outcome/***/``."""

from __future__ import annotations

import secrets
import time

import pytest
import requests

pytestmark = pytest.mark.slow


def fake_token() -> str:
    """Shaped like ``django.core.signing.dumps`` output; unique, so a leak is easy to find."""
    return f"eyJiIjo{secrets.token_urlsafe(12)}:1v{secrets.token_hex(3)}:{secrets.token_urlsafe(20)}"


def lines_with(log, needle: str, *, count: int = 1) -> list[str]:
    deadline = time.monotonic() + 5
    while True:
        lines = [line for line in log.read_text(errors="replace").splitlines() if needle in line]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/outcome/{token}/?oc=True", "/outcome/***/"),
        ("/outcome/{token}/thanks/", "/outcome/***/thanks/"),
    ],
)
def test_gunicorn_access_log_masks_the_outcome_token(gunicorn_server, path, logged):
    token = fake_token()
    request_id = f"deploytest-{secrets.token_hex(6)}"
    response = requests.get(
        f"{gunicorn_server.url}{path.format(token=token)}",
        headers={"Host": "localhost", "X-Forwarded-Proto": "https", "X-Request-ID": request_id},
        timeout=10,
    )
    assert response.status_code == 400  # a made-up token: the "link does not work" page
    assert "This link does not work" in response.text

    (line,) = [line for line in lines_with(gunicorn_server.log, request_id) if "gunicorn.access" in line]
    assert f'path="{logged}"' in line
    assert token not in gunicorn_server.log.read_text()
    assert token.split(":")[0] not in gunicorn_server.log.read_text()


def test_nginx_access_log_masks_the_outcome_token_and_keeps_the_rest(nginx_server, gunicorn_server):
    token = fake_token()
    request_id = f"deploytest-{secrets.token_hex(6)}"
    response = requests.get(
        f"{nginx_server.https_url}/outcome/{token}/?oc=False",
        headers={"X-Request-ID": request_id},
        verify=str(nginx_server.certificate),
        timeout=10,
    )
    assert response.status_code == 400
    (line,) = lines_with(nginx_server.access_log, request_id)
    assert 'method=GET uri="/outcome/***/?oc=False" status=400' in line
    assert token not in nginx_server.access_log.read_text()
    # gunicorn behind it masks it too.
    (access,) = [line for line in lines_with(gunicorn_server.log, request_id) if "gunicorn.access" in line]
    assert 'path="/outcome/***/"' in access
    assert token not in gunicorn_server.log.read_text()

    # Other paths are logged as they are.
    other_id = f"deploytest-{secrets.token_hex(6)}"
    requests.get(
        f"{nginx_server.https_url}/accounts/login/?next=/outcome/",
        headers={"X-Request-ID": other_id},
        verify=str(nginx_server.certificate),
        timeout=10,
    )
    (other,) = lines_with(nginx_server.access_log, other_id)
    assert 'uri="/accounts/login/?next=/outcome/"' in other
