"""Every error answer of ingest reaches the client that caused it, through the web server as it is
served in production (granian, core/processes.py), with the clients people use."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterable, Iterator

import pytest
import urllib3

from eventlog.access.api_keys import create_api_key
from tests.processes import new_database, process_env, running, start
from tests.test_processes import free_port, post_events

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 5 * 1024 * 1024  # INGEST_MAX_BYTES's default
TOO_LARGE = {"error": f"body larger than {LIMIT} bytes"}


@pytest.fixture(scope="module")
def web_port(tmp_path_factory: pytest.TempPathFactory, django_db_setup: None) -> Iterator[int]:
    """A web process as `make run` starts it, on a port of its own, for the module's tests (on the
    test database: set up first)."""
    port = free_port()
    beat = tmp_path_factory.mktemp("web") / "beat"
    with running(start("web", process_env(new_database()), beat, web_bind=f"127.0.0.1:{port}")):
        yield port


@pytest.fixture
def web(web_port: int) -> Iterator[tuple[int, str]]:
    """The web process's port and an ingest key of the test's (the database is emptied after each)."""
    key = create_api_key("served")[1]
    post_events(web_port, key, 1)  # up and answering
    yield web_port, key
    assert post_events(web_port, key, 1) == {"accepted": 1, "duplicates": 0}  # still serving


def oversized() -> bytes:
    """Events four times INGEST_MAX_BYTES: far more than the socket buffers take while the server
    has not read them, so a server that answers without reading leaves the client writing."""
    event = json.dumps({"event_type": "order_paid", "event_context": {"padding": "x" * 1000}})
    return ("[" + ",".join([event] * (4 * LIMIT // len(event))) + "]").encode()


def http_client_post(port: int, key: str, body: bytes | Iterable[bytes]) -> tuple[int, object]:
    """POST with http.client, which sends the whole body before it reads the answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        connection.request("POST", "/api/v1/events", body=body, headers=headers,
                           encode_chunked=not isinstance(body, bytes))  # fmt: skip
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_http_client_reads_the_413_of_a_body_over_the_limit(web: tuple[int, str]) -> None:
    assert http_client_post(*web, oversized()) == (413, TOO_LARGE)


def test_http_client_reads_the_413_of_a_chunked_body_over_the_limit(web: tuple[int, str]) -> None:
    body = oversized()
    chunks = (body[start : start + 65536] for start in range(0, len(body), 65536))
    assert http_client_post(*web, chunks) == (413, TOO_LARGE)


def test_http_client_reads_the_401_of_a_large_body_sent_with_a_wrong_key(web: tuple[int, str]) -> None:
    status, _ = http_client_post(web[0], "evl_not_a_key", oversized())
    assert status == 401


def test_urllib3_reads_the_413_of_a_body_over_the_limit(web: tuple[int, str]) -> None:
    port, key = web
    pool = urllib3.HTTPConnectionPool("127.0.0.1", port, retries=False, timeout=30)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    response = pool.request("POST", "/api/v1/events", body=oversized(), headers=headers)
    assert (response.status, response.json()) == (413, TOO_LARGE)
