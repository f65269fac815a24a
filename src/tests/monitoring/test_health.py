"""GET /healthz and GET /readyz as served (tests/served.py), against the real PostgreSQL, Redis and
ClickHouse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis

from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.models import OutboxEvent
from eventlog.monitoring.health import readiness
from eventlog.outbox.events import NewEvent, emit_events
from tests.served import ServedClient

pytestmark = pytest.mark.django_db(transaction=True)  # the web process reads what a test commits


def test_healthz_answers_without_touching_anything(served: ServedClient) -> None:
    response = served.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_is_200_when_postgresql_redis_and_clickhouse_answer(served: ServedClient) -> None:
    response = served.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True
    assert body["checks"]["clickhouse"] == "ok"
    assert body["checks"]["outbox"] == {"pending": 0, "dead_letters": 0, "lag_seconds": 0.0}


def test_readiness_gives_clickhouses_error_when_it_cannot_be_reached(writer: EventLogWriter) -> None:
    unreachable = EventLogWriter("http://default:@127.0.0.1:1/default")  # nothing listens on port 1
    result = readiness(Redis.from_url("redis://127.0.0.1:6379/15"), unreachable, max_lag_seconds=60)
    assert result.ready is False
    assert result.reasons == [result.reasons[0]]
    assert result.reasons[0].startswith("ClickHouse: ")
    assert "Connection refused" in result.reasons[0]


def test_readiness_gives_the_servers_answer_to_a_wrong_password(writer: EventLogWriter) -> None:
    wrong = EventLogWriter(writer.url.replace("eventlog:", "eventlog:wrong", 1))
    result = readiness(Redis.from_url("redis://127.0.0.1:6379/15"), wrong, max_lag_seconds=60)
    assert result.ready is False
    assert "516" in result.reasons[0]
    assert "Authentication failed" in result.reasons[0]


def test_readyz_is_503_when_the_oldest_pending_event_is_older_than_the_limit(served: ServedClient) -> None:
    emit_events([NewEvent("late")])
    OutboxEvent.objects.update(created_at=datetime.now(UTC) - timedelta(minutes=10))
    response = served.get("/readyz")
    assert response.status_code == 503
    reason = response.json()["reasons"][0]
    assert reason.startswith("lag: the oldest pending event is 600 s old (limit 300 s)"), reason  # default


def test_readiness_reports_redis_down_as_a_reason(writer: EventLogWriter) -> None:
    result = readiness(
        Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1), writer, max_lag_seconds=60
    )
    assert result.ready is False
    assert result.reasons[-1].startswith("Redis:")
