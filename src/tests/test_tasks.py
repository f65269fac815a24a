"""The Celery task shell: retry policy as declared, and failures reported to Sentry."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sentry_sdk
from clickhouse_connect.driver.client import Client
from django.conf import settings

from core.env import load_config
from core.sentry import init_sentry
from eventlog.errors import ClickHouseUnavailable, RetryPending
from eventlog.outbox.events import NewEvent, emit_events
from eventlog.tasks import relay_outbox_task
from tests.conftest import event_log_counts

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_relay_task_retries_clickhouse_errors_with_the_specs_backoff() -> None:
    task = relay_outbox_task
    assert task.autoretry_for == (ClickHouseUnavailable,)
    assert task.dont_autoretry_for == task.throws == (RetryPending,)
    assert (task.retry_backoff, task.retry_backoff_max, task.retry_jitter) == (True, 600, True)
    assert task.max_retries == 10


class SentryReceiver(BaseHTTPRequestHandler):
    """Stands in for sentry.io on loopback: keeps every envelope the real SDK sends."""

    envelopes: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.envelopes.append(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def sentry_envelopes() -> Iterator[list[bytes]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SentryReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dsn = f"http://public@127.0.0.1:{server.server_address[1]}/1"
    environ = {
        "DJANGO_SECRET_KEY": "x",
        "CLICKHOUSE_URL": settings.EVENTLOG["CLICKHOUSE_URL"],
        "SENTRY_DSN": dsn,
    }
    assert init_sentry(load_config(environ, env_file=None))
    SentryReceiver.envelopes = []
    yield SentryReceiver.envelopes
    sentry_sdk.init()  # no DSN: off again for the other tests
    server.shutdown()


def test_a_failed_insert_reaches_sentry_and_leaves_the_events_for_the_next_run(
    clickhouse: Client, sentry_envelopes: list[bytes]
) -> None:
    emit_events([NewEvent("order_paid") for _ in range(20)])
    clickhouse.command("DETACH TABLE event_log")
    try:
        with pytest.raises(ClickHouseUnavailable):
            relay_outbox_task()  # called directly, Celery re-raises instead of scheduling a retry
        sentry_sdk.flush()
    finally:
        clickhouse.command("ATTACH TABLE event_log")
    assert any(b"ClickHouseUnavailable" in e and b"UNKNOWN_TABLE" in e for e in sentry_envelopes)
    # The failure closed the backoff gate for beat's ticks; Celery's retry passes it.
    assert relay_outbox_task() == {"skipped": "backing off"}
    assert relay_outbox_task.apply(retries=1).get() == {"batches": 1, "events": 20, "dead_lettered": 0}
    assert event_log_counts(clickhouse) == (20, 20)
