"""GET /healthz and GET /readyz, against the real PostgreSQL, Redis and ClickHouse."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client as HttpClient
from redis import Redis

from eventlog.clickhouse import EventLogWriter
from eventlog.events import NewEvent, emit_events
from eventlog.health import REPORT_KEY, check_clickhouse, readiness
from eventlog.models import OutboxEvent
from eventlog.runtime import redis_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_report() -> Iterator[None]:
    redis_client().delete(REPORT_KEY)
    yield
    redis_client().delete(REPORT_KEY)


def test_healthz_answers_without_touching_anything() -> None:
    response = HttpClient().get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_is_503_until_a_worker_has_reached_clickhouse(writer: EventLogWriter) -> None:
    http = HttpClient()
    response = http.get("/readyz")
    assert response.status_code == 503
    assert "no worker reported reaching it" in response.json()["reasons"][0]
    check_clickhouse(writer, redis_client())
    response = http.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True
    assert body["checks"]["clickhouse"]["reachable"] is True
    assert body["checks"]["outbox"] == {"pending": 0, "dead_letters": 0, "lag_seconds": 0.0}


def test_readyz_gives_clickhouses_error_when_a_worker_could_not_reach_it() -> None:
    unreachable = EventLogWriter("http://default:@127.0.0.1:1/default")  # nothing listens on port 1
    report = check_clickhouse(unreachable, redis_client())
    assert report["reachable"] is False
    response = HttpClient().get("/readyz")
    assert response.status_code == 503
    assert (
        response.json()["reasons"][0].startswith("ClickHouse: ClickHouse unreachable")
        or "ClickHouse" in (response.json()["reasons"][0])
    )


def test_readyz_is_503_when_the_oldest_pending_event_is_older_than_the_limit(
    writer: EventLogWriter, settings: Any
) -> None:
    settings.EVENTLOG = dataclasses.replace(settings.EVENTLOG, ready_max_lag_seconds=60.0)
    check_clickhouse(writer, redis_client())
    emit_events([NewEvent("late")])
    OutboxEvent.objects.update(created_at=datetime.now(UTC) - timedelta(minutes=5))
    response = HttpClient().get("/readyz")
    assert response.status_code == 503
    assert response.json()["reasons"][0].startswith("lag: the oldest pending event is 300 s old (limit 60 s)")


def test_readiness_reports_redis_down_as_a_reason() -> None:
    result = readiness(Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1), max_lag_seconds=60)
    assert result.ready is False
    assert result.reasons[-1].startswith("Redis:")
