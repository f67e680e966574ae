"""A client's X-Request-ID reaches the logs only when it is a safe token (nginx and Django agree)."""

from __future__ import annotations

import re
import time

import pytest
import requests

pytestmark = pytest.mark.slow


def _log_line_for(nginx_server, marker: str) -> str:
    deadline = time.monotonic() + 5
    while marker not in nginx_server.access_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    return next(line for line in nginx_server.access_log.read_text().splitlines() if marker in line)


@pytest.mark.parametrize(
    "incoming",
    ['forged" level=ERROR logger=nginx', "two words", "a" * 65, "request_id=abc"],
)
def test_an_unsafe_request_id_is_replaced_by_nginx_before_it_is_logged(nginx_server, incoming):
    marker = f"request-id-test-{time.monotonic_ns()}"
    response = requests.get(
        f"{nginx_server.https_url}/?{marker}",
        headers={"X-Request-ID": incoming},
        verify=str(nginx_server.certificate),
        timeout=10,
    )
    assert response.status_code == 200
    made = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)  # nginx's own $request_id, passed on to Django
    line = _log_line_for(nginx_server, marker)
    assert line.startswith("time=") and f" request_id={made} method=GET " in line
    assert incoming not in line
