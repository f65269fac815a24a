"""Sentry, with the real SDK sending real envelopes to a local HTTP receiver standing in for Sentry."""

from __future__ import annotations

import dataclasses
import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from clickhouse_connect.driver.client import Client
from django.conf import settings
from django.core.wsgi import get_wsgi_application

from core.fastpath import IngestFastPath
from core.sentry import init_sentry
from eventlog.access.api_keys import create_api_key
from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.errors import ClickHouseUnavailable
from eventlog.monitoring.stats import outbox_stats
from eventlog.outbox.events import NewEvent, emit_events
from eventlog.runtime import relay_coordinator
from eventlog.scheduling.runs import run_scheduled_relay
from tests.conftest import wait_until
from tests.processes import new_database, process_env, reset_broker, running, start_worker
from tests.served import serving
from tests.wsgi import wsgi_request

pytestmark = pytest.mark.django_db(transaction=True)

Item = dict[str, Any]  # one envelope item's payload, with its header's type under "_type"


class Receiver(ThreadingHTTPServer):
    """Accepts what the SDK posts to /api/<project>/envelope/ and keeps every item."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.items: list[Item] = []
        self.lock = threading.Lock()

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.server_address[1]}/1"

    def wait_for(self, matches: Callable[[Item], bool], timeout: float = 30.0) -> Item:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [item for item in self.items if matches(item)]
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"no such item among {[item.get('_type') for item in self.items]}")


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        lines = body.split(b"\n")[1:]  # after the envelope's own header: item header, payload, ...
        items = [
            {**json.loads(payload), "_type": json.loads(header)["type"]}
            for header, payload in zip(lines[::2], lines[1::2], strict=False)
            if header.strip()
        ]
        with self.server.lock:
            self.server.items.extend(items)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture
def sentry_in_this_process(receiver: Receiver) -> Iterator[Receiver]:
    config = dataclasses.replace(settings.CONFIG, sentry_dsn=receiver.dsn, sentry_environment="tests")
    assert init_sentry(config)
    yield receiver
    sentry_sdk.flush()
    sentry_sdk.init()  # no DSN: off again for the other tests


def test_a_failed_insert_is_reported_with_its_batch_before_the_retry(
    writer: EventLogWriter, clickhouse: Client, sentry_in_this_process: Receiver
) -> None:
    emit_events([NewEvent("outage") for _ in range(5)])
    clickhouse.command("DETACH TABLE event_log")
    try:
        with pytest.raises(ClickHouseUnavailable) as caught:
            run_scheduled_relay(relay_coordinator(), writer, batch_size=100, max_batches=1, is_retry=False,
                                last_attempt=False)  # fmt: skip
    finally:
        clickhouse.command("ATTACH TABLE IF NOT EXISTS event_log")
    sentry_sdk.flush()
    event = sentry_in_this_process.wait_for(lambda item: item["_type"] == "event")
    assert event["exception"]["values"][-1]["type"] == "ClickHouseUnavailable"
    assert event["environment"] == "tests"
    assert event["contexts"]["relay_batch"] == {
        "batch_id": caught.value.batch_id, "row_count": 5, "clickhouse_code": caught.value.code
    }  # fmt: skip
    assert caught.value.code is not None
    assert event["tags"]["clickhouse_code"] == str(caught.value.code)


def test_each_relay_run_of_a_real_worker_is_a_transaction_with_its_batch_size(
    tmp_path: Path, receiver: Receiver
) -> None:
    env = process_env(new_database(), SENTRY_DSN=receiver.dsn, SENTRY_TRACES_SAMPLE_RATE="1.0",
                      RELAY_BATCH_SIZE="7")  # fmt: skip
    reset_broker()
    emit_events([NewEvent("traced") for _ in range(20)])
    with running(start_worker(env, tmp_path / "beat-schedule")):
        wait_until(lambda: outbox_stats()["processed"] == 20)
        run = receiver.wait_for(
            lambda item: (
                item["_type"] == "transaction"
                and item["transaction"] == "eventlog.relay_outbox"
                and item["contexts"]["trace"].get("data", {}).get("events", 0) > 0
            )
        )
    data = run["contexts"]["trace"]["data"]
    assert data["batch_size"] == 7
    assert data["batches"] >= 1
    assert data["events"] <= 7 * data["batches"]


SECRET_CONTEXT = "do-not-send-this-context"


@pytest.mark.usefixtures("outbox_gone")
@pytest.mark.parametrize("served_by", ["the fast path", "Django"])
def test_a_500_of_ingest_reaches_sentry_with_the_request_and_without_key_or_body(
    sentry_in_this_process: Receiver, served_by: str
) -> None:
    """Called as the web server calls the application (Sentry's WSGI middleware wraps Django's
    handler there, not in Django's test client)."""
    key = create_api_key("sentry")[1]
    body = json.dumps({"event_type": "a", "event_context": {"note": SECRET_CONTEXT}}).encode()
    environ = wsgi_request(body, HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_X_REQUEST_ID="req-500")
    django = get_wsgi_application()
    application = IngestFastPath(django) if served_by == "the fast path" else django
    statuses: list[str] = []
    b"".join(application(environ, lambda status, headers: statuses.append(status)))
    assert statuses == ["500 Internal Server Error"]
    sentry_sdk.flush()
    event = sentry_in_this_process.wait_for(lambda item: item["_type"] == "event")
    assert_reported_without_key_or_body(event, "req-500", key)


@pytest.mark.usefixtures("outbox_gone")
def test_a_500_of_the_served_web_process_reaches_sentry_with_the_request_and_without_key_or_body(
    receiver: Receiver, tmp_path: Path
) -> None:
    """The same, through the web process as served (the front, its threads, the fast path), its
    SDK started from SENTRY_DSN as production's is."""
    key = create_api_key("sentry")[1]
    body = json.dumps({"event_type": "a", "event_context": {"note": SECRET_CONTEXT}}).encode()
    with serving(tmp_path, SENTRY_DSN=receiver.dsn, SENTRY_ENVIRONMENT="tests") as web:
        headers = {"Authorization": f"Bearer {key}", "X-Request-ID": "req-served-500"}
        answer = web.client().post("/api/v1/events", body, headers=headers)
        assert answer.status_code == 500
        event = receiver.wait_for(lambda item: item["_type"] == "event")
    assert_reported_without_key_or_body(event, "req-served-500", key)


def assert_reported_without_key_or_body(event: Item, request_id: str, key: str) -> None:
    """Sentry's event names ingest's request (its id, method and path) and holds neither the API key
    nor anything of the events posted."""
    assert event["tags"]["request_id"] == request_id
    assert event["request"]["method"] == "POST"
    assert event["request"]["url"].endswith("/api/v1/events")
    sent = json.dumps(event)
    assert key not in sent
    assert SECRET_CONTEXT not in sent
