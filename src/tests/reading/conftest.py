"""Events stored straight into ClickHouse for the read side's tests, as the relay would store them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.reading.filters import Filters
from eventlog.reading.store import EventLogReader
from eventlog.runtime import event_log_reader

DAY = datetime(2026, 11, 20, tzinfo=UTC)


@dataclass(frozen=True)
class Stored:
    event_type: str = "order_placed"
    event_date_time: datetime = DAY
    environment: str = "production"
    event_context: dict[str, Any] = field(default_factory=dict)
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    metadata_version: int = 1


def store(writer: EventLogWriter, events: Iterable[Stored]) -> list[Stored]:
    """Insert `events` into event_log (one insert) and return them."""
    events = list(events)
    columns = [
        [uuid.UUID(event.event_id) for event in events],
        [event.event_type for event in events],
        [event.event_date_time for event in events],
        [event.environment for event in events],
        [json.dumps(event.event_context) for event in events],
        [event.metadata_version for event in events],
    ]
    writer.write_batch(columns, token=str(uuid.uuid4()))
    return events


def window(days: int = 1) -> Filters:
    return Filters(DAY - timedelta(days=days), DAY + timedelta(days=days))


def spread(
    count: int, start: datetime = DAY, step: timedelta = timedelta(seconds=1), **fields: Any
) -> list[Stored]:
    return [Stored(event_date_time=start + index * step, **fields) for index in range(count)]


@pytest.fixture
def reader(clickhouse: Client) -> EventLogReader:
    """The process's reader, on an empty event_log."""
    return event_log_reader()
