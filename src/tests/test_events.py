from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from eventlog.errors import InvalidEvents
from eventlog.events import NewEvent, emit_event, emit_events
from eventlog.models import OutboxEvent

pytestmark = pytest.mark.django_db


def test_emit_events_writes_all_events_with_one_statement() -> None:
    events = [NewEvent("order_paid", {"order": i}) for i in range(500)]
    with CaptureQueriesContext(connection) as queries:
        result = emit_events(events)
    assert (result.accepted, result.duplicates) == (500, 0)
    assert len(queries) == 1
    assert OutboxEvent.objects.count() == 500


def test_emitted_event_keeps_every_field_and_microseconds() -> None:
    when = datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=timezone(timedelta(hours=2)))
    event = NewEvent(
        "user_created", {"email": "a@example.com"}, event_date_time=when, environment="eu", metadata_version=7
    )
    assert emit_event(event) is True
    row = OutboxEvent.objects.get(event_id=event.event_id)
    assert row.event_type == "user_created"
    assert row.event_date_time == when
    assert row.event_date_time.astimezone(UTC).microsecond == 123456
    assert (row.environment, row.event_context, row.metadata_version) == ("eu", {"email": "a@example.com"}, 7)
    assert row.failed_at is None


def test_environment_defaults_to_the_configured_one() -> None:
    event = NewEvent("ping")
    emit_event(event)
    assert OutboxEvent.objects.get(event_id=event.event_id).environment == "test"


def test_a_repeated_event_id_is_a_no_op_not_an_error() -> None:
    event_id = uuid.uuid4()
    assert emit_event(NewEvent("a", event_id=event_id)) is True
    assert emit_event(NewEvent("b", event_id=event_id)) is False
    result = emit_events([NewEvent("c", event_id=event_id), NewEvent("d"), NewEvent("d2", event_id=event_id)])
    assert (result.accepted, result.duplicates) == (1, 2)
    assert OutboxEvent.objects.get(event_id=event_id).event_type == "a"


def test_a_rollback_of_the_callers_transaction_leaves_no_event() -> None:
    def business_change() -> None:
        with transaction.atomic():
            emit_events([NewEvent("order_paid"), NewEvent("order_shipped")])
            raise RuntimeError("the business change failed")

    with pytest.raises(RuntimeError):
        business_change()
    assert OutboxEvent.objects.count() == 0


def test_one_invalid_event_rejects_the_whole_call_and_writes_nothing() -> None:
    events = [
        NewEvent("fine"),
        NewEvent(""),
        NewEvent("x" * 256),
        NewEvent("naive", event_date_time=datetime(2026, 1, 1)),
        NewEvent("old", event_date_time=datetime(1800, 1, 1, tzinfo=UTC)),
        NewEvent("neg", metadata_version=-1),
        NewEvent("nul", {"text": "a\x00b"}),
        NewEvent("nan", {"x": float("nan")}),
        NewEvent("surrogate", {"text": "\ud800"}),
    ]
    with pytest.raises(InvalidEvents) as caught:
        emit_events(events)
    assert sorted({p.index for p in caught.value.problems}) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert OutboxEvent.objects.count() == 0
