"""Logs: JSON or readable lines, a request id on the web's lines (read from the served web process's
output) and a batch id on the relay's, and never an API key or an event's contents."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from clickhouse_connect.driver.client import Client
from django.conf import settings

from core.logs import logging_settings
from eventlog.access.api_keys import create_api_key
from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.outbox.events import NewEvent, emit_events
from eventlog.relay.delivery import relay_outbox
from tests.relay.test_poison import rejecting_poison  # noqa: F401 (a fixture)
from tests.served import ServedClient, ServedResponse, ServedWeb, serving

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "s3cr3t-context-value"


class Captured:
    def __init__(self, log_format: str) -> None:
        config = dataclasses.replace(settings.CONFIG, log_format=log_format)
        formatter_settings = dict(logging_settings(config)["formatters"]["structured"])
        formatter_class = formatter_settings.pop("()")
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(formatter_class(**formatter_settings))

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]


@pytest.fixture
def captured_json() -> Iterator[Captured]:
    yield from capture("json")


def capture(log_format: str) -> Iterator[Captured]:
    captured = Captured(log_format)
    structlog.contextvars.clear_contextvars()  # an earlier test's request on this thread
    root = logging.getLogger()
    level = root.level
    root.addHandler(captured.handler)
    root.setLevel(logging.INFO)
    yield captured
    root.removeHandler(captured.handler)
    root.setLevel(level)


def post(http: ServedClient, key: str, request_id: str) -> ServedResponse:
    body = json.dumps([{"event_type": "logged", "event_context": {"field": SECRET}}, {"event_type": ""}])
    headers = {"Authorization": f"Bearer {key}", "X-Request-ID": request_id}
    return http.post("/api/v1/events", body, headers=headers)


def test_web_lines_carry_the_request_id_and_never_the_key_or_the_events(served_web: ServedWeb) -> None:
    key, start = create_api_key("logs")[1], served_web.log_size()
    response = post(served_web.client(), key, "req-42")
    assert response.status_code == 400  # one invalid event: Django logs a warning for the 400 too
    assert response["X-Request-ID"] == "req-42"
    lines = served_web.log_lines(since=start)
    assert {line["request_id"] for line in lines} == {"req-42"}
    assert {line["logger"] for line in lines} == {"eventlog.request", "django.request"}
    access = [line for line in lines if line["event"] == "request"]
    assert access == [{**access[0], "method": "POST", "path": "/api/v1/events", "status": 400}]
    text = served_web.log.read_text()
    assert key not in text
    assert SECRET not in text


def test_a_request_id_that_is_not_a_plain_token_is_replaced(served_web: ServedWeb) -> None:
    start = served_web.log_size()
    response = post(served_web.client(), create_api_key("forged")[1], 'x", "level": "critical')
    request_id = response["X-Request-ID"]
    assert len(request_id) == 32
    assert {line["request_id"] for line in served_web.log_lines(since=start)} == {request_id}


@pytest.mark.usefixtures("rejecting_poison")
def test_relay_lines_carry_the_batch_id_and_not_the_rejected_rows(
    writer: EventLogWriter, clickhouse: Client, captured_json: Captured
) -> None:
    emit_events([NewEvent("fine", {"field": SECRET}), NewEvent("poison", {"field": SECRET})])
    assert relay_outbox(writer, batch_size=10, max_batches=1).dead_lettered == 1
    lines = captured_json.lines()
    messages = {line["event"]: line for line in lines}
    assert messages["relay batch rejected, isolating the bad events"]["clickhouse_code"] == 469
    assert messages["events dead-lettered"]["events"] == 1
    assert messages["relay batch delivered"]["events"] == 1
    assert len({line["batch_id"] for line in lines}) == 1
    assert SECRET not in captured_json.text


def test_console_lines_are_for_people(tmp_path: Path) -> None:
    with serving(tmp_path, LOG_FORMAT="console") as web:
        post(web.client(), create_api_key("console")[1], "req-7")
    line = next(line for line in web.log.read_text().splitlines() if " request " in line and "req-7" in line)
    assert not line.startswith("{")
    assert "request_id=req-7" in line
    assert "status=400" in line
