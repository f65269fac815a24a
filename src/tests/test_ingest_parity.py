"""POST /api/v1/events as the web server serves it (core/fastpath.py) and through Django's stack with
only ingest's middleware (core/ingest_handler.py), each called as the web server calls it, against
Django's full stack: the same status, body and headers for every kind of request."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.wsgi import get_wsgi_application

from core.fastpath import IngestFastPath
from core.ingest_handler import IngestDispatch, IngestHandler
from eventlog.access.api_keys import create_api_key
from eventlog.models import OutboxEvent
from tests.wsgi import wsgi_request

pytestmark = pytest.mark.django_db(transaction=True)  # the handlers manage their own connections

# Headers that differ from one request to the next.
VARYING = {"X-Request-ID"}
KEY = "key"  # replaced by a real key in each test
GOOD = json.dumps([{"event_type": "order_paid"}]).encode()

# (name, body, environ): every kind of request the parity holds for.
REQUESTS: list[tuple[str, bytes, dict[str, str]]] = [
    ("accepted", GOOD, {}),
    ("one event as an object", b'{"event_type": "order_paid"}', {}),
    ("an invalid event", json.dumps([{"event_type": ""}]).encode(), {}),
    ("not JSON", b"[{", {}),
    ("a wrong key", GOOD, {"HTTP_AUTHORIZATION": "Bearer evl_wrong"}),
    ("no key", GOOD, {"HTTP_AUTHORIZATION": ""}),
    # Expect: the served web answers before reading a body it would cut (a client not waiting for
    # 100 Continue would have to send the gigabyte).
    (
        "a body over the limit, by its Content-Length",
        GOOD,
        {"CONTENT_LENGTH": str(10**9), "HTTP_EXPECT": "100-continue"},
    ),
    ("a body over the limit, sent", b"[" + b'{"event_type":"x"},' * 300_000 + b"{}]", {}),
    ("a Content-Length shorter than the body", GOOD, {"CONTENT_LENGTH": "10"}),
    ("no Content-Length", GOOD, {"CONTENT_LENGTH": ""}),
    ("chunked", GOOD, {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked"}),
    ("another media type", GOOD, {"CONTENT_TYPE": "text/plain"}),
    ("a query string", GOOD, {"QUERY_STRING": "a=1&b=2"}),
    ("a Host not allowed", GOOD, {"HTTP_HOST": "evil.example.com"}),
    ("a Host with a port not allowed", GOOD, {"HTTP_HOST": "evil.example.com:8000"}),
    ("HTTPS behind the proxy", GOOD, {"HTTP_X_FORWARDED_PROTO": "https"}),
    (
        "HTTPS behind the proxy, with the client's own value after",
        GOOD,
        {"HTTP_X_FORWARDED_PROTO": "https, http"},
    ),
    ("HTTP behind the proxy, with a client's https after", GOOD, {"HTTP_X_FORWARDED_PROTO": "http, https"}),
    ("another method", GOOD, {"REQUEST_METHOD": "PUT"}),
]


# The one difference accepted: a body without a Content-Length (chunked, decoded by the server).
# Django's WSGIRequest reads no body at all then (its stream has length 0: a 400, "not JSON"); the
# fast path reads it, up to INGEST_MAX_BYTES, and accepts its events. Clients send chunked bodies
# when they stream them (requests with a generator, curl -T -).
READ_WITHOUT_CONTENT_LENGTH = {"no Content-Length", "chunked"}


def call(application: Any, body: bytes, environ: dict[str, str]) -> tuple[str, dict[str, str], bytes]:
    request = wsgi_request(body, **environ)
    answered: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answered["status"] = status
        answered["headers"] = {name: value for name, value in headers if name not in VARYING}

    content = b"".join(application(request, start_response))
    return answered["status"], answered["headers"], content


def applications() -> dict[str, Any]:
    django = get_wsgi_application()
    return {
        "full": django,
        "lean": IngestDispatch(IngestHandler(), django),
        "fast": IngestFastPath(django),
    }


def answers(body: bytes, environ: dict[str, str]) -> dict[str, tuple[str, dict[str, str], bytes]]:
    key = create_api_key("parity")[1]
    environ = {"HTTP_AUTHORIZATION": f"Bearer {key}", **environ}
    return {name: call(application, body, environ) for name, application in applications().items()}


@pytest.fixture(params=["http", "https"])
def proxy(request: pytest.FixtureRequest, settings: Any) -> str:
    """Behind a TLS-terminating proxy, as DJANGO_HTTPS=1 configures it, or plain HTTP."""
    if request.param == "https":
        settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
        settings.SECURE_SSL_REDIRECT = True
        settings.SECURE_HSTS_SECONDS = 31536000
        settings.SECURE_SSL_HOST = "secure.example.com"
    return str(request.param)


@pytest.mark.parametrize(("name", "body", "environ"), REQUESTS, ids=[name for name, _, _ in REQUESTS])
def test_every_way_to_serve_ingest_answers_as_djangos_full_stack(
    proxy: str, name: str, body: bytes, environ: dict[str, str]
) -> None:
    got = answers(body, environ)
    assert got["lean"] == got["full"]
    if name in READ_WITHOUT_CONTENT_LENGTH and got["full"][0].startswith("400"):
        assert got["fast"][0] == "202 Accepted"
        return
    assert got["fast"] == got["full"]
    assert OutboxEvent.objects.count() in (0, 3)  # each of the three wrote the event, or none did


@pytest.mark.usefixtures("outbox_gone")
def test_a_failure_inside_ingest_is_the_same_json_500_on_every_way(proxy: str) -> None:
    got = answers(GOOD, {"HTTP_X_FORWARDED_PROTO": "https"})  # not redirected, behind the proxy
    assert got["full"][0] == "500 Internal Server Error"
    assert json.loads(got["full"][2]) == {"error": "internal error"}
    assert got["lean"] == got["full"]
    assert got["fast"] == got["full"]
