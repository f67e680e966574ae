"""gunicorn settings, every one from the environment (the image runs `gunicorn -c deploy/gunicorn.conf.py`).

Workers are processes (each loads the LiteRT model once, about 100 MB); threads let one worker
wait on the database or an upload while another request runs. nginx buffers request bodies, so a
slow phone upload never holds a worker. Log lines go to stdout in the same ``key=value`` shape as
Django's, and the access line carries the request id that nginx and Django also log.

The signed token of an outcome link (``/outcome/<token>/``) authorises an answer without a login,
so no log line shows it: every line gunicorn writes (access and error) has it replaced by ``***``.
"""

import logging
import os
import re


def _int(name: str, default: int) -> int:
    """An integer from the environment; a typo stops the server instead of being ignored."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, not {raw!r}.") from None


def _default_workers() -> int:
    # CPUs this process may run on (a container's cpuset), two workers each, at most eight.
    return min(2 * len(os.sched_getaffinity(0)) + 1, 8)


bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000").split(",")  # noqa: S104 (inside a container)
workers = _int("GUNICORN_WORKERS", _default_workers())
threads = _int("GUNICORN_THREADS", 4)
worker_class = "gthread" if threads > 1 else "sync"
# Scans are decoded and predicted in the request: give it time, but less than nginx's proxy timeout.
timeout = _int("GUNICORN_TIMEOUT", 60)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Recycle workers now and then so a slow leak in an image library cannot grow for ever.
max_requests = _int("GUNICORN_MAX_REQUESTS", 1000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 100)
# The heartbeat file on tmpfs: on an overlay disk fchmod can stall a worker (gunicorn's FAQ).
_SHM = "/dev/shm"  # noqa: S108 (tmpfs, as gunicorn recommends; not a shared temp file)
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", _SHM if os.path.isdir(_SHM) else None)
# Off by default: each worker imports the app itself, so no database connection or model
# interpreter opened at import time is ever shared across a fork.
preload_app = os.environ.get("GUNICORN_PRELOAD_APP", "0") in {"1", "true", "True"}
# The runtime control socket is for hand-run servers; containers are managed from outside.
control_socket_disable = True
# Only the proxy may set X-Forwarded-*; inside compose only nginx reaches this port.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# The path segment after /outcome/ is a signed token (predictions.outcome_links).
OUTCOME_TOKEN = re.compile(r"(/outcome/)[^/?#\s\"]+")


def mask_tokens(text: str) -> str:
    return OUTCOME_TOKEN.sub(r"\1***", text)


class MaskTokens(logging.Filter):
    """Formats the record's message once and writes it back with tokens masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_tokens(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
access_log_format = (
    'method=%(m)s path="%(U)s" status=%(s)s bytes=%(B)s duration_ms=%(M)s '
    'request_id=%({x-request-id}o)s client="%({x-forwarded-for}i)s" user_agent="%(a)s"'
)
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_tokens": {"()": MaskTokens}},
    "formatters": {
        "line": {
            "format": "time=%(asctime)s level=%(levelname)s logger=%(name)s message=%(message)s",
        },
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "line",
            "stream": "ext://sys.stdout",
            "filters": ["mask_tokens"],
        },
    },
    "root": {"handlers": ["stdout"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": loglevel.upper(), "propagate": False},
        "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
    },
}
