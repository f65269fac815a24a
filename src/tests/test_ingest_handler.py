"""Django's request cycle with only ingest's middleware (core/ingest_handler.py), called as the web
server calls it, against Django's full stack: the same answers, status, body and headers alike."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.wsgi import get_wsgi_application

from core.ingest_handler import IngestDispatch, IngestHandler
from eventlog.access.api_keys import create_api_key
from eventlog.models import OutboxEvent

pytestmark = pytest.mark.django_db(transaction=True)  # the handlers manage their own connections

# Per request, not the same twice: the request id, and the date.
VARYING = {"X-Request-ID"}


def call(application: Any, body: bytes, **environ: str) -> tuple[str, dict[str, str], bytes]:
    request = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/events", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1:8000", "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http", "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json",
        **environ,
    }  # fmt: skip
    answered: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answered["status"] = status
        answered["headers"] = {name: value for name, value in headers if name not in VARYING}

    content = b"".join(application(request, start_response))
    return answered["status"], answered["headers"], content


@pytest.mark.parametrize(
    ("events", "environ"),
    [
        ([{"event_type": "a"}], {}),
        ([{"event_type": ""}], {}),
        ({"event_type": "a"}, {"HTTP_AUTHORIZATION": "Bearer wrong"}),
        ({"event_type": "a"}, {"CONTENT_LENGTH": str(10**9)}),
        ({"event_type": "a"}, {"CONTENT_TYPE": "text/plain"}),
        ({"event_type": "a"}, {"HTTP_HOST": "evil.example.com"}),
    ],
)
def test_ingest_through_the_lean_handler_answers_as_djangos_full_stack(
    events: Any, environ: dict[str, str]
) -> None:
    key = create_api_key("lean")[1]
    body = json.dumps(events).encode()
    request = {"HTTP_AUTHORIZATION": f"Bearer {key}", **environ}
    django = get_wsgi_application()
    full = call(django, body, **request)
    lean = call(IngestDispatch(IngestHandler(), django), body, **request)
    assert lean == full
    OutboxEvent.objects.all().delete()
