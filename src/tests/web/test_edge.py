"""The web's edge checked from outside, through the web process as served: every public endpoint's
security headers, HTTPS under DJANGO_HTTPS=1, no server version; and clients that hold connections
open or send their bodies a byte a second do not stop anyone else from being served."""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
import uuid
from collections.abc import Iterator

import pytest

from eventlog.access.api_keys import create_api_key
from tests.served import ServedClient, ServedResponse, ServedWeb, serving

pytestmark = pytest.mark.django_db(transaction=True)  # the web process reads what a test commits

EVENT = b'{"event_type": "edge"}'
# Every public endpoint: method, path, whether it is sent the key, and its answer's status.
ENDPOINTS: list[tuple[str, str, bool, int]] = [
    ("POST", "/api/v1/events", True, 202),
    ("POST", "/api/v1/events", False, 401),
    ("GET", "/api/v1/events?limit=1", True, 200),
    ("GET", f"/api/v1/events/{uuid.uuid4()}", True, 404),
    ("GET", "/api/v1/events/counts", True, 200),
    ("GET", "/api/v1/events/export?format=csv", True, 200),
    ("GET", "/api/v1/stats", True, 200),
    ("GET", "/api/v1/openapi.json", False, 200),
    ("GET", "/metrics", False, 200),
    ("GET", "/healthz", False, 200),
    ("GET", "/readyz", False, 200),
    ("GET", "/", False, 302),  # the status page: to the admin's login
    ("GET", "/events/", False, 302),
    ("GET", "/admin/login/", False, 200),
    ("GET", "/static/admin/css/base.css", False, 200),
    ("GET", "/no-such-page", False, 404),
]
# Django's own defaults, the same on every answer.
EVERY_ANSWER = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
HSTS = "max-age=31536000; includeSubDomains; preload"  # core/settings.py under DJANGO_HTTPS
PROBES = {"/healthz", "/readyz", "/metrics"}  # answered over plain HTTP too (SECURE_REDIRECT_EXEMPT)


@pytest.fixture(scope="module")
def https_web(
    tmp_path_factory: pytest.TempPathFactory, collected_static: None, clickhouse_server: object
) -> Iterator[ServedWeb]:
    """The web process as production runs it behind its TLS-terminating proxy."""
    with serving(tmp_path_factory.mktemp("https"), DJANGO_HTTPS="1") as web:
        yield web


@pytest.fixture
def key() -> str:
    return create_api_key("edge", scopes=("ingest", "read"))[1]


def call(http: ServedClient, method: str, path: str, key: str | None, **headers: str) -> ServedResponse:
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if method == "POST":
        return http.request(method, path, EVENT, {"Content-Type": "application/json", **headers})
    return http.request(method, path, headers=headers)


def assert_no_server_version(response: ServedResponse) -> None:
    assert "X-Powered-By" not in response
    server = response.headers.get("Server", "")
    assert not re.search(r"[\d/]", server), server  # a name at most, never a version


@pytest.mark.parametrize(("method", "path", "keyed", "status"), ENDPOINTS)
def test_every_public_endpoint_gives_djangos_security_headers_and_no_version(
    served_web: ServedWeb, key: str, method: str, path: str, keyed: bool, status: int
) -> None:
    response = call(served_web.client(), method, path, key if keyed else None)
    assert response.status_code == status, response.content
    assert {name: response.headers.get(name) for name in EVERY_ANSWER} == EVERY_ANSWER
    assert "Strict-Transport-Security" not in response  # plain HTTP: HSTS only means something on HTTPS
    assert_no_server_version(response)


@pytest.mark.parametrize(("method", "path", "keyed", "status"), ENDPOINTS)
def test_under_django_https_each_endpoint_redirects_plain_http_and_gives_hsts_on_https(
    https_web: ServedWeb, key: str, method: str, path: str, keyed: bool, status: int
) -> None:
    http = https_web.client()
    with_query = path + ("&" if "?" in path else "?") + "q=1"
    plain = call(http, method, with_query, key if keyed else None)
    if path in PROBES:
        assert plain.status_code == 200
    else:
        assert plain.status_code == 301
        assert plain["Location"] == f"https://127.0.0.1:{https_web.port}{with_query}"
    secure = call(http, method, path, key if keyed else None, **{"X-Forwarded-Proto": "https"})
    assert secure.status_code == status, secure.content
    assert secure["Strict-Transport-Security"] == HSTS
    assert {name: secure.headers.get(name) for name in EVERY_ANSWER} == EVERY_ANSWER
    assert_no_server_version(secure)


BODY_TIMEOUT = 3  # WEB_BODY_TIMEOUT_SECONDS of the test's web process
SLOW_CLIENTS = 20  # more than the web's threads (2 processes of 4)


@pytest.fixture(scope="module")
def impatient_web(tmp_path_factory: pytest.TempPathFactory, served_web: ServedWeb) -> Iterator[ServedWeb]:
    """A web process that waits BODY_TIMEOUT seconds for a body."""
    with serving(tmp_path_factory.mktemp("impatient"), WEB_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT)) as web:
        yield web


def answer(connection: socket.socket) -> tuple[int, bytes]:
    """The status and body of the next answer on a raw connection."""
    response = http.client.HTTPResponse(connection)
    response.begin()
    return response.status, response.read()


def ask_health(connection: socket.socket) -> int:
    connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return answer(connection)[0]


def idle_connections(port: int, count: int) -> list[socket.socket]:
    """Keep-alive connections that each asked one thing and then say nothing."""
    connections = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
    assert {ask_health(connection) for connection in connections} == {200}
    return connections


def slow_bodies(port: int, key: str, count: int) -> list[socket.socket]:
    """POSTs whose headers say 40 bytes of body, of which one has been sent."""
    connections = []
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", port), timeout=10)
        connection.sendall(
            f"POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 40\r\n\r\n[".encode()
        )
        connections.append(connection)
    return connections


def test_idle_connections_and_bodies_sent_a_byte_a_second_do_not_stop_other_clients(
    impatient_web: ServedWeb, key: str
) -> None:
    idle = idle_connections(impatient_web.port, 200)
    slow = slow_bodies(impatient_web.port, key, SLOW_CLIENTS)
    started, answered = time.monotonic(), []
    other = ServedClient(impatient_web.port, timeout=5)  # under WSGI straight, this timed out
    for second in range(BODY_TIMEOUT - 1):
        for connection in slow:
            connection.sendall(b" ")  # a byte a second
        answered.append(other.get("/healthz").status_code)
        answered.append(call(other, "POST", "/api/v1/events", key).status_code)
        time.sleep(max(started + second + 1 - time.monotonic(), 0))
    assert answered == [200, 202] * (BODY_TIMEOUT - 1)
    # The slow ones are cut off once their time is up, each with an answer that says why.
    for connection in slow:
        response = http.client.HTTPResponse(connection)
        response.begin()
        assert response.status == 408
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        error = json.loads(response.read())["error"]
        assert error == f"the request's body did not arrive within {BODY_TIMEOUT} s"
    assert time.monotonic() - started < BODY_TIMEOUT + 2
    assert {ask_health(connection) for connection in idle[:5]} == {200}  # still open, still served
    for connection in idle + slow:
        connection.close()


def post_head(port: int, key: str, length: int, *extra: str) -> socket.socket:
    """A POST's head, declaring a body of `length` bytes, and none of the body."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = ["POST /api/v1/events HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {key}",
            "Content-Type: application/json", f"Content-Length: {length}", *extra]  # fmt: skip
    connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    return connection


def test_a_client_waiting_for_a_go_ahead_with_a_body_too_large_gets_its_413_at_once(
    served_web: ServedWeb, key: str
) -> None:
    connection = post_head(served_web.port, key, 10 * 1024 * 1024, "Expect: 100-continue")
    started = time.monotonic()
    status, body = answer(connection)  # nothing of the body was sent
    assert (status, json.loads(body)) == (413, {"error": "body larger than 5242880 bytes"})
    assert time.monotonic() - started < 2
    connection.close()


def test_a_body_over_the_limit_to_another_path_gets_the_fronts_413_never_a_shortened_body(
    served_web: ServedWeb,
) -> None:
    """Only ingest is given a body cut at its limit (it reads no further); a form would be parsed
    from the part kept as if it were all."""
    form = b"username=a&password=" + b"x" * 6_000_000
    answered = served_web.client().post("/admin/login/", form, "application/x-www-form-urlencoded")
    assert (answered.status_code, answered.json()) == (413, {"error": "body larger than 5242880 bytes"})
    assert answered["X-Content-Type-Options"] == "nosniff"


def test_bodies_in_flight_are_bounded_per_process_and_past_it_answered_503(
    impatient_web: ServedWeb, key: str
) -> None:
    """Each process holds at most 32 bodies of ingest's largest size (core/asgi.py): of 70 declared
    at once, whatever way the two processes share them, at least 6 are turned away."""
    waiting = [post_head(impatient_web.port, key, 6_000_000) for _ in range(70)]
    answers = [answer(connection) for connection in waiting]  # the 503s at once, the rest at 408
    statuses = [status for status, _ in answers]
    assert statuses.count(503) >= 6
    assert set(statuses) == {503, 408}
    refused = json.loads(answers[statuses.index(503)][1])
    assert refused == {"error": "too many request bodies in flight; try again"}
    for connection in waiting:
        connection.close()
