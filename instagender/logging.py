"""Logging helpers: every line carries the id of the request that produced it."""

import contextvars
import logging
import re
import uuid

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# What an incoming X-Request-ID may be. Anything else (spaces, quotes, "key=value" pairs, control
# characters, a long string) could forge or break the key=value log lines, so a new id is made.
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        if request_id == "-":
            # Django logs a 4xx/5xx response ("Service Unavailable: /path") after the middleware
            # has returned; the record then carries the request, which carries the id.
            request_id = getattr(getattr(record, "request", None), "request_id", "-")
        record.request_id = request_id
        return True


class RequestIdMiddleware:
    """Takes the proxy's X-Request-ID when it is a safe token (or makes one) and echoes it on the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if SAFE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response
