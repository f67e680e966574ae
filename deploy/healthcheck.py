"""Docker HEALTHCHECK for the web container: exit 0 when /healthz answers 200, 1 otherwise.

The slim image has no curl, and a request to 127.0.0.1 would fail Django's ALLOWED_HOSTS check, so
this sends the first allowed host name and says the original request was HTTPS (as nginx does),
which also keeps SECURE_SSL_REDIRECT from answering with a redirect.
"""

import http.client
import os
import sys


def allowed_host() -> str:
    hosts = [host.strip() for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if host.strip()]
    for host in hosts:
        if host != "*":
            return host.lstrip(".")  # ".example.org" allows example.org and its subdomains
    return "localhost"


def main() -> int:
    bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000").split(",")[0]
    port = int(os.environ.get("HEALTHCHECK_PORT", bind.rsplit(":", 1)[-1]))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(
            "GET",
            "/healthz",
            headers={"Host": allowed_host(), "X-Forwarded-Proto": "https", "X-Request-ID": "healthcheck"},
        )
        response = connection.getresponse()
        body = response.read(200).decode("utf-8", "replace")
    except OSError as error:
        print(f"healthcheck: no answer from 127.0.0.1:{port}: {error}")
        return 1
    finally:
        connection.close()
    if response.status != 200:
        print(f"healthcheck: /healthz answered {response.status}: {body}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
