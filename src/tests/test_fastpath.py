"""The web server's fast path for POST /api/v1/events (core/fastpath.py), called as the server calls
it: with a WSGI environ, in front of the real Django application."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.wsgi import get_wsgi_application
from django.db import connection

from core.fastpath import IngestFastPath
from eventlog.access.api_keys import create_api_key
from eventlog.models import OutboxEvent
from tests.wsgi import wsgi_request

pytestmark = pytest.mark.django_db(transaction=True)  # the fast path manages its own connection

Response = tuple[int, dict[str, str], Any]


def call(method: str, path: str, body: bytes = b"", **environ: str) -> Response:
    request = wsgi_request(body, method, path, **environ)
    answered: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answered["status"], answered["headers"] = int(status.split()[0]), dict(headers)

    body_out = b"".join(IngestFastPath(get_wsgi_application())(request, start_response))
    content = (
        json.loads(body_out) if answered["headers"].get("Content-Type") == "application/json" else body_out
    )
    return answered["status"], answered["headers"], content


def post(key: str, events: Any, **environ: str) -> Response:
    return call(
        "POST", "/api/v1/events", json.dumps(events).encode(), HTTP_AUTHORIZATION=f"Bearer {key}", **environ
    )


def test_events_are_accepted_as_through_django_with_a_request_id() -> None:
    key = create_api_key("fast")[1]
    status, headers, body = post(key, [{"event_type": "a"}, {"event_type": "b"}], HTTP_X_REQUEST_ID="req-9")
    assert (status, body) == (202, {"accepted": 2, "duplicates": 0})
    assert headers["X-Request-ID"] == "req-9"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert OutboxEvent.objects.count() == 2


def test_bad_keys_bad_events_and_large_bodies_get_the_views_answers() -> None:
    key = create_api_key("fast")[1]
    status, headers, body = post("wrong", {"event_type": "a"})
    assert (status, headers["WWW-Authenticate"]) == (401, 'Bearer realm="eventlog"')
    status, _, body = post(key, [{"event_type": "ok"}, {"event_type": ""}])
    assert (status, body["problems"][0]["index"]) == (400, 1)
    status, _, _ = post(key, {"event_type": "a"}, CONTENT_LENGTH=str(10**9))
    assert status == 413
    assert OutboxEvent.objects.count() == 0


def test_a_host_not_allowed_is_djangos_to_refuse_and_log(capfd: pytest.CaptureFixture[str]) -> None:
    status, _, body = post(create_api_key("fast")[1], {"event_type": "a"}, HTTP_HOST="evil.example.com")
    assert status == 400
    assert b"Bad Request (400)" in body
    assert '"logger": "django.security.DisallowedHost"' in capfd.readouterr().err
    assert OutboxEvent.objects.count() == 0


def test_the_https_redirect_is_djangos_with_the_query_string_and_ssl_host(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_SSL_HOST = "secure.example.com"
    status, headers, _ = post(create_api_key("fast")[1], {"event_type": "a"}, QUERY_STRING="a=1")
    assert (status, headers["Location"]) == (301, "https://secure.example.com/api/v1/events?a=1")


def test_every_other_request_is_djangos() -> None:
    assert call("GET", "/healthz")[0] == 200
    assert call("GET", "/api/v1/events")[0] == 401  # the read API: Django's, with no key
    assert call("PUT", "/api/v1/events")[0] == 405


def test_with_https_required_plain_http_is_redirected_and_https_gets_hsts(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS, settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = 3600, True
    key = create_api_key("fast")[1]
    status, headers, _ = post(key, {"event_type": "a"})
    assert (status, headers["Location"]) == (301, "https://127.0.0.1:8000/api/v1/events")
    status, headers, _ = post(key, {"event_type": "a"}, HTTP_X_FORWARDED_PROTO="https")
    assert (status, headers["Strict-Transport-Security"]) == (202, "max-age=3600; includeSubDomains")


def test_a_database_failure_is_a_500_answer_not_a_crash() -> None:
    key = create_api_key("fast")[1]
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE eventlog_outbox_event RENAME TO eventlog_outbox_event_away")
    try:
        status, _, body = post(key, {"event_type": "a"})
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE eventlog_outbox_event_away RENAME TO eventlog_outbox_event")
    assert (status, body) == (500, {"error": "internal error"})
    assert post(key, {"event_type": "a"})[0] == 202  # and the next request is fine
