"""POST /api/v1/events through Django's own request cycle with only the middleware ingest needs.

Django's WSGIHandler does everything it does for any request (request_started and request_finished,
so the database connection's lifecycle; DisallowedHost logged to django.security; an exception
turned into a 500 and reported by Sentry's Django integration; response headers), but runs the
middleware in INGEST_MIDDLEWARE only: the session, CSRF, authentication and messages middleware of
the full stack do nothing for a request authenticated by an API key. The bench's http_ingest_single
measures it beside the full stack and the hand-written fast path (core/fastpath.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.core.handlers.wsgi import WSGIHandler
from django.test.utils import override_settings

from core.fastpath import PATH

# The full stack's middleware that applies to ingest, in the full stack's order (core/settings.py).
INGEST_MIDDLEWARE = [
    "core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",  # Content-Length: a keep-alive client needs it
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class IngestHandler(WSGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        # Django builds its middleware chain from settings.MIDDLEWARE, once, here.
        with override_settings(MIDDLEWARE=INGEST_MIDDLEWARE):
            super().load_middleware(is_async)


class IngestDispatch:
    """POST /api/v1/events to `ingest`; every other request to `django`."""

    def __init__(self, ingest: WSGIApp, django: WSGIApp) -> None:
        self.ingest = ingest
        self.django = django

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == PATH and environ.get("REQUEST_METHOD") == "POST":
            return self.ingest(environ, start_response)
        return self.django(environ, start_response)
