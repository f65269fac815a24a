"""POST /api/v1/events answered before Django's request cycle, the larger part of the web process's
work for a one-event request (docs/benchmarks.md); every other request goes to Django unchanged.

What Django's stack does for this endpoint is done here too: the request id and access line
(core/middleware.py), the headers of SecurityMiddleware and XFrameOptionsMiddleware (computed by
them, once per scheme), the body read no further than its Content-Length, the database connection's lifecycle
(request_started / request_finished), and an unexpected error as a 500 reported to Sentry and
logged. A request Django would turn away before any view (a Host not allowed, plain HTTP when HTTPS
is required) goes to Django, which answers and logs it as it does any other. The endpoint itself is
eventlog/web/ingest.py, shared with the Django view. tests/test_ingest_parity.py holds the answers
to Django's full stack's, and lists the differences accepted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import sentry_sdk
from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port, validate_host
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.http import parse_header_parameters
from django.utils.log import log_response
from sentry_sdk.types import Event

from core.middleware import log_request, start_request
from eventlog.runtime import rate_limiter
from eventlog.web.ingest import Answer, Limits, ingest

PATH = "/api/v1/events"
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class IngestFastPath:
    def __init__(self, django: WSGIApp) -> None:
        self.django = django
        # Computed once: the same for every request of one scheme.
        self.headers = {secure: security_headers(secure) for secure in (False, True)}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if (
            environ.get("PATH_INFO") != PATH
            or environ.get("REQUEST_METHOD") != "POST"
            or not host_allowed(environ)
            or redirects_to_https(environ)
        ):
            return self.django(environ, start_response)
        # A scope of its own per request, as Sentry's Django integration gives every other request.
        with sentry_sdk.isolation_scope() as scope:
            scope.add_event_processor(_described_request)
            return self.serve(environ, start_response)

    def serve(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request_id = start_request(environ.get("HTTP_X_REQUEST_ID", ""))
        started = time.perf_counter()
        answer = self.answer(environ)
        body = json.dumps(answer.body).encode()
        headers = {
            "Content-Type": "application/json", "Content-Length": str(len(body)), "X-Request-ID": request_id,
            **self.headers[is_secure(environ)], **answer.headers,
        }  # fmt: skip
        start_response(f"{answer.status} {HTTPStatus(answer.status).phrase}", list(headers.items()))
        log_request("POST", PATH, answer.status, started)
        return [body]

    def answer(self, environ: dict[str, Any]) -> Answer:
        """ingest's answer, logged as Django's handler logs a view's (django.utils.log.log_response:
        a warning on django.request for a 4xx, an error with the exception for a 500)."""
        close_old_connections()
        try:
            answer = ingest(
                authorization=environ.get("HTTP_AUTHORIZATION"),
                content_type=parse_header_parameters(environ.get("CONTENT_TYPE", ""))[0],
                content_length=environ.get("CONTENT_LENGTH"),
                read=body(environ).read,
                limits=Limits.from_settings(),
                limiter=rate_limiter(),
            )
        except Exception as exc:  # the boundary, as Django's handler is: a 500, reported, never a crash
            sentry_sdk.capture_exception(exc)
            log_response("Internal Server Error: %s", PATH, response=HttpResponse(status=500), exception=exc)
            return Answer(500, {"error": "internal error"})  # as eventlog.web.views.server_error
        finally:
            close_old_connections()
        if answer.status >= 400:
            phrase = HTTPStatus(answer.status).phrase
            log_response("%s: %s", phrase, PATH, response=HttpResponse(status=answer.status))
        return answer


def _described_request(event: Event, hint: dict[str, Any]) -> Event:
    """What Sentry is told of the request: its method and path (its id is a tag), never its
    headers (the API key) or its body."""
    event["request"] = {"method": "POST", "url": PATH}
    return event


def host_allowed(environ: dict[str, Any]) -> bool:
    """The Host check of Django's request.get_host(), against ALLOWED_HOSTS."""
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
    return validate_host(split_domain_port(host)[0], settings.ALLOWED_HOSTS)


def redirects_to_https(environ: dict[str, Any]) -> bool:
    """SecurityMiddleware would redirect this request to HTTPS (SECURE_REDIRECT_EXEMPT: not ours)."""
    return bool(settings.SECURE_SSL_REDIRECT) and not is_secure(environ)


def body(environ: dict[str, Any]) -> Any:
    """wsgi.input, read no further than Content-Length, as Django's WSGIRequest reads it. Without a
    Content-Length (a chunked body the server decodes) the whole stream, up to ingest's limit: Django
    would read nothing at all (tests/test_ingest_parity.py lists the difference)."""
    length = environ.get("CONTENT_LENGTH")
    if length is None:
        return environ["wsgi.input"]
    try:
        limit = int(length)
    except ValueError:
        limit = 0
    return LimitedStream(environ["wsgi.input"], limit)


class _Scheme(HttpRequest):
    def __init__(self, secure: bool) -> None:
        super().__init__()
        self.secure = secure

    def is_secure(self) -> bool:
        return self.secure


def security_headers(secure: bool) -> dict[str, str]:
    """The headers Django's SecurityMiddleware and XFrameOptionsMiddleware give a response on HTTPS
    (`secure`) or HTTP, from Django's own code: they depend on the settings and the scheme only."""
    response = HttpResponse()
    request = _Scheme(secure)
    SecurityMiddleware(lambda request: response).process_response(request, response)
    XFrameOptionsMiddleware(lambda request: response).process_response(request, response)
    return {name: value for name, value in response.items() if name != "Content-Type"}


def is_secure(environ: dict[str, Any]) -> bool:
    """HTTPS as Django's HttpRequest.scheme sees it: the first value of the proxy's header when one
    is configured and sent, else the server's scheme."""
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        header, secure_value = proxy_header
        value = environ.get(header)
        if value is not None:
            return bool(value.split(",", 1)[0].strip() == secure_value)
    return bool(environ.get("wsgi.url_scheme") == "https")
