"""POST /api/v1/events answered before Django's request cycle, the larger part of the web process's
work for a one-event request (docs/benchmarks.md); every other request goes to Django unchanged.

What Django's stack does for this endpoint is done here too, in the same order: the request id and
access line (core/middleware.py), the Host check against ALLOWED_HOSTS, the HTTPS redirect, HSTS and
nosniff headers (SecurityMiddleware, with DJANGO_HTTPS), the database connection's lifecycle
(request_started / request_finished), and an unexpected error as a 500 reported to Sentry and logged.
The endpoint itself is eventlog/web/ingest.py, shared with the Django view.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import sentry_sdk
import structlog
from django.conf import settings
from django.db import close_old_connections
from django.http.request import split_domain_port, validate_host
from django.utils.http import parse_header_parameters

from core.middleware import log_request, start_request
from eventlog.runtime import rate_limiter
from eventlog.web.ingest import Answer, Limits, ingest

PATH = "/api/v1/events"
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

log = structlog.get_logger("eventlog.request")


class IngestFastPath:
    def __init__(self, django: WSGIApp) -> None:
        self.django = django

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.django(environ, start_response)
        request_id = start_request(environ.get("HTTP_X_REQUEST_ID", ""))
        started = time.perf_counter()
        answer, extra = self.answer(environ)
        body = json.dumps(answer.body).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body)),
                   "X-Request-ID": request_id, **extra, **answer.headers}  # fmt: skip
        start_response(f"{answer.status} {HTTPStatus(answer.status).phrase}", list(headers.items()))
        log_request("POST", PATH, answer.status, started)
        return [body]

    def answer(self, environ: dict[str, Any]) -> tuple[Answer, dict[str, str]]:
        """The answer, and the security headers for it."""
        host = (
            environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
        )
        if not validate_host(split_domain_port(host)[0], settings.ALLOWED_HOSTS):
            return Answer(400, {"error": "invalid Host header"}), {}
        secure = is_secure(environ)
        if getattr(settings, "SECURE_SSL_REDIRECT", False) and not secure:
            return Answer(301, {"error": "use HTTPS"}, {"Location": f"https://{host}{PATH}"}), {}
        headers = security_headers(secure)
        close_old_connections()
        try:
            return ingest(
                authorization=environ.get("HTTP_AUTHORIZATION"),
                content_type=parse_header_parameters(environ.get("CONTENT_TYPE", ""))[0],
                content_length=environ.get("CONTENT_LENGTH"),
                read=environ["wsgi.input"].read,
                limits=Limits.from_settings(),
                limiter=rate_limiter(),
            ), headers
        except Exception:  # the boundary, as Django's handler is: a 500, reported, never a crash
            sentry_sdk.capture_exception()
            log.exception("ingest failed")
            return Answer(500, {"error": "internal error"}), headers
        finally:
            close_old_connections()


def security_headers(secure: bool) -> dict[str, str]:
    """SecurityMiddleware's headers: nosniff, and HSTS on HTTPS when configured."""
    headers = {"X-Content-Type-Options": "nosniff"}
    seconds: int = getattr(settings, "SECURE_HSTS_SECONDS", 0)
    if secure and seconds:
        parts = [f"max-age={seconds}"]
        if getattr(settings, "SECURE_HSTS_INCLUDE_SUBDOMAINS", False):
            parts.append("includeSubDomains")
        if getattr(settings, "SECURE_HSTS_PRELOAD", False):
            parts.append("preload")
        headers["Strict-Transport-Security"] = "; ".join(parts)
    return headers


def is_secure(environ: dict[str, Any]) -> bool:
    """HTTPS as Django sees it: the server's scheme, or the proxy's header when one is configured."""
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        header, value = proxy_header
        return bool(environ.get(header) == value)
    return bool(environ.get("wsgi.url_scheme") == "https")
