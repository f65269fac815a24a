"""Web middleware: a request id on every log line of a request, and one access line per request."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import sentry_sdk
import structlog
from django.http import HttpRequest, HttpResponse

# A caller's X-Request-ID is kept when it is a plain token (so that ids join across services),
# else replaced: it goes into every log line, so it must not be able to forge one.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

log = structlog.get_logger("eventlog.request")


class RequestIdMiddleware:
    """Binds `request_id` for the request's log lines, returns it as X-Request-ID, and logs the
    request (method, path without the query string, status, duration): never headers or bodies."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = start_request(request.headers.get("X-Request-ID", ""))
        started = time.perf_counter()
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        log_request(request.method or "", request.path, response.status_code, started)
        return response


def plain_request_id(given_id: str) -> str:
    """The caller's request id when it is a plain token, else a new one."""
    return given_id if _REQUEST_ID.match(given_id) else uuid.uuid4().hex


def start_request(given_id: str) -> str:
    """The request's id (the caller's when it is a plain token), bound for every log line of it."""
    request_id = plain_request_id(given_id)
    # Cleared here, not on the way out: Django logs a 4xx or 5xx after the middleware returns, and
    # that line belongs to the request too. The next request on this thread starts afresh.
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    # An error of this request reaches Sentry with its id (a no-op without SENTRY_DSN).
    sentry_sdk.get_isolation_scope().set_tag("request_id", request_id)
    return request_id


def log_request(method: str, path: str, status: int, started: float) -> None:
    """The access line: method, path without the query string, status, duration; never headers."""
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    log.info("request", method=method, path=path, status=status, duration_ms=duration_ms)
