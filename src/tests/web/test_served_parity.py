"""POST /api/v1/events over real HTTP to the web process as served (the buffering front, then the
fast path) against the same front serving Django's full stack: the same status, body and headers
for every kind of request of tests/test_ingest_parity.py, under plain HTTP and behind the HTTPS
proxy, with the one difference that suite accepts."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from eventlog.access.api_keys import create_api_key
from tests.served import ServedWeb, serving
from tests.test_ingest_parity import GOOD, READ_WITHOUT_CONTENT_LENGTH, REQUESTS

pytestmark = pytest.mark.django_db(transaction=True)  # the web processes read what a test commits

# Headers that differ from one answer to the next, whoever gives it.
VARYING = {"x-request-id", "date"}
Answer = tuple[int, dict[str, str], bytes]


@pytest.fixture(scope="module", params=["http", "https"])
def served_pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, served_web: ServedWeb
) -> Iterator[tuple[ServedWeb, ServedWeb]]:
    """The served application and Django's full stack behind the same front, plain or behind the
    TLS-terminating proxy (DJANGO_HTTPS=1)."""
    # Should a body not come whole (a Content-Length longer than the body sent), a 408 after this
    # many seconds rather than the default minute.
    overrides = {"WEB_BODY_TIMEOUT_SECONDS": "2"}
    if request.param == "https":
        overrides["DJANGO_HTTPS"] = "1"
    directory = tmp_path_factory.mktemp(f"parity-{request.param}")
    with (
        serving(directory / "served", **overrides) as served,
        serving(directory / "django", "core.asgi:django_application", **overrides) as django,
    ):
        yield served, django


# The environ's variables a client sends as headers (the rest: the method, path, body and length).
HEADERS = {"HTTP_HOST": "Host", "CONTENT_TYPE": "Content-Type", "HTTP_AUTHORIZATION": "Authorization",
           "HTTP_X_FORWARDED_PROTO": "X-Forwarded-Proto", "HTTP_EXPECT": "Expect"}  # fmt: skip


def as_http(environ: dict[str, str], body: bytes) -> tuple[str, str, dict[str, str], bytes]:
    """The request tests/test_ingest_parity.py describes as a WSGI environ, as a client sends it over
    HTTP (method, path, headers, body): no Content-Length (CONTENT_LENGTH="") is no body unless
    chunked. The Host is the same for both processes (as tests/wsgi.py's), whatever their ports."""
    environ = {"HTTP_HOST": "127.0.0.1:8000", "CONTENT_TYPE": "application/json", **environ}
    headers = {header: environ[name] for name, header in HEADERS.items() if environ.get(name)}
    query = environ.get("QUERY_STRING")
    path = "/api/v1/events" + (f"?{query}" if query else "")
    length = environ.get("CONTENT_LENGTH", str(len(body)))
    if "HTTP_TRANSFER_ENCODING" in environ:
        headers["Transfer-Encoding"] = "chunked"
        body = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    elif length:
        headers["Content-Length"] = length
    else:
        body = b""
    return environ.get("REQUEST_METHOD", "POST"), path, headers, body


def send(web: ServedWeb, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", web.port, timeout=60)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        answered = {name.lower(): value for name, value in response.getheaders()}
        return response.status, {n: v for n, v in answered.items() if n not in VARYING}, response.read()
    finally:
        connection.close()  # a Content-Length shorter than the body leaves the rest unread


@pytest.mark.parametrize(("name", "body", "environ"), REQUESTS, ids=[name for name, _, _ in REQUESTS])
def test_the_served_application_answers_as_djangos_full_stack_served(
    served_pair: tuple[ServedWeb, ServedWeb], name: str, body: bytes, environ: dict[str, str]
) -> None:
    key = create_api_key("served-parity")[1]
    environ = {"HTTP_AUTHORIZATION": f"Bearer {key}", **environ}
    served, django = (send(web, *as_http(environ, body)) for web in served_pair)
    assert served[0] != 408  # the front's own answer to a body that never came: nothing compared
    if name in READ_WITHOUT_CONTENT_LENGTH and served != django:
        assert (served[0], django[0]) == (202, 400)  # chunked: the fast path reads it, Django does not
        return
    assert served == django


@pytest.mark.usefixtures("outbox_gone")
def test_a_failure_inside_ingest_is_the_same_json_500_served(
    served_pair: tuple[ServedWeb, ServedWeb],
) -> None:
    key = create_api_key("served-parity")[1]
    environ = {"HTTP_AUTHORIZATION": f"Bearer {key}", "HTTP_X_FORWARDED_PROTO": "https"}
    served, django = (send(web, *as_http(environ, GOOD)) for web in served_pair)
    assert (served[0], json.loads(served[2])) == (500, {"error": "internal error"})
    assert served == django
