from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction

from eventlog.errors import InvalidEvents
from eventlog.models import OutboxEvent
from eventlog.outbox.events import (
    COPY_FROM_EVENTS,
    CheckedEvent,
    NewEvent,
    check,
    emit_event,
    emit_events,
    new_event_ids,
)

pytestmark = pytest.mark.django_db
SRC = Path(__file__).resolve().parents[2]


def test_a_small_batch_is_written_by_one_statement_prepared_once_per_connection() -> None:
    for _ in range(3):
        events = [NewEvent("order_paid", {"order": i}) for i in range(COPY_FROM_EVENTS - 1)]
        result = emit_events(events)
        assert (result.accepted, result.duplicates) == (COPY_FROM_EVENTS - 1, 0)
    assert OutboxEvent.objects.count() == 3 * (COPY_FROM_EVENTS - 1)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%jsonb_to_recordset%"]
        )
        assert cursor.fetchone()[0] == 1


AWKWARD_TEXT = 'tab\there, line\nbreak, CR\r, back\\slash \\N, "quotes", ünïcödé, 🎉, \\.'


@pytest.mark.parametrize("count", [1, COPY_FROM_EVENTS, 500])
def test_every_field_survives_either_write_path_exactly(count: int) -> None:
    when = datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=timezone(timedelta(hours=2)))
    events = [
        NewEvent(f"{AWKWARD_TEXT}{i}", {"text": AWKWARD_TEXT, "n": i, "nested": {"list": [1.5, None, True]}},
                 event_date_time=when, environment=AWKWARD_TEXT, metadata_version=2**63 - 1)
        for i in range(count)
    ]  # fmt: skip
    assert emit_events(events).accepted == count
    rows = {row.event_id: row for row in OutboxEvent.objects.all()}
    for event in events:
        row = rows[event.event_id]
        assert (row.event_type, row.environment, row.event_context) == (
            event.event_type, AWKWARD_TEXT, event.event_context
        )  # fmt: skip
        assert (row.event_date_time, row.metadata_version) == (when, 2**63 - 1)


def test_a_large_batch_holding_duplicates_writes_each_new_event_once() -> None:
    recorded = NewEvent("first")
    emit_event(recorded)
    repeated = NewEvent("twice")
    events = [recorded, repeated, repeated, *(NewEvent("new") for _ in range(COPY_FROM_EVENTS))]
    result = emit_events(events)
    assert (result.accepted, result.duplicates) == (COPY_FROM_EVENTS + 1, 2)
    assert OutboxEvent.objects.count() == COPY_FROM_EVENTS + 2
    assert OutboxEvent.objects.get(event_id=recorded.event_id).event_type == "first"


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


@pytest.mark.parametrize("count", [2, COPY_FROM_EVENTS])
def test_a_rollback_of_the_callers_transaction_leaves_no_event(count: int) -> None:
    def business_change() -> None:
        with transaction.atomic():
            emit_events([NewEvent("order_paid") for _ in range(count)])
            raise RuntimeError("the business change failed")

    with pytest.raises(RuntimeError):
        business_change()
    assert OutboxEvent.objects.count() == 0


# With COPY_FROM_EVENTS valid events first, the invalid ones are found after rows were already sent.
@pytest.mark.parametrize("sent_first", [0, COPY_FROM_EVENTS])
def test_one_invalid_event_rejects_the_whole_call_and_writes_nothing(sent_first: int) -> None:
    events = [
        *(NewEvent("sent") for _ in range(sent_first)),
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
    assert sorted({p.index - sent_first for p in caught.value.problems}) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert OutboxEvent.objects.count() == 0
    # The caller's transaction goes on: only the failed call was undone.
    emit_events([NewEvent("after") for _ in range(COPY_FROM_EVENTS)])
    assert OutboxEvent.objects.count() == COPY_FROM_EVENTS


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_an_invalid_event_behind_copied_rows_writes_nothing() -> None:
    events = [*(NewEvent("sent") for _ in range(COPY_FROM_EVENTS)), NewEvent("")]
    assert not connection.in_atomic_block  # autocommit: COPY is a transaction of its own
    with pytest.raises(InvalidEvents) as caught:
        emit_events(events)
    assert [p.index for p in caught.value.problems] == [COPY_FROM_EVENTS]
    assert OutboxEvent.objects.count() == 0
    assert emit_events([NewEvent("after") for _ in range(COPY_FROM_EVENTS)]).accepted == COPY_FROM_EVENTS


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_a_large_batch_holding_a_duplicate_writes_each_new_event_once() -> None:
    recorded = NewEvent("first")
    emit_event(recorded)
    events = [*(NewEvent("new") for _ in range(COPY_FROM_EVENTS)), recorded]
    assert not connection.in_atomic_block  # autocommit: COPY is a transaction of its own
    result = emit_events(events)
    assert (result.accepted, result.duplicates) == (COPY_FROM_EVENTS, 1)
    assert OutboxEvent.objects.count() == COPY_FROM_EVENTS + 1


def test_event_ids_made_here_are_unique_version_7_and_ordered_by_creation_time() -> None:
    first = new_event_ids(1_000)
    time.sleep(0.002)
    later = [NewEvent("a").event_id for _ in range(3)]
    ids = first + later
    assert {(event_id.version, event_id.variant) for event_id in ids} == {(7, uuid.RFC_4122)}
    assert len(set(ids)) == len(ids)
    assert max(first) < min(later)  # the index on event_id grows at its right edge
    now_ms = time.time_ns() // 1_000_000
    assert all(now_ms - 1_000 < event_id.int >> 80 <= now_ms for event_id in ids)


def prepared_inserts() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%jsonb_to_recordset%'"
        )
        return int(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_the_insert_is_a_prepared_statement_unless_prepared_statements_are_off(settings: Any) -> None:
    """Behind a transaction-pooling proxy a connection's prepared statement is not the next
    transaction's: PREPARED_STATEMENTS=False must leave none on the connection."""
    connection.close()
    emit_events([NewEvent("prepared")])
    assert prepared_inserts() == 1
    settings.EVENTLOG = {**settings.EVENTLOG, "PREPARED_STATEMENTS": False}
    connection.close()
    emit_events([NewEvent("unprepared")])
    emit_events([NewEvent("unprepared")])
    assert prepared_inserts() == 0
    assert OutboxEvent.objects.filter(event_type="unprepared").count() == 2


def test_checking_an_event_gives_a_checked_event_and_leaves_the_event_as_it_was() -> None:
    event = NewEvent("order_paid", {"amount": "12.50", "items": [1, 2]})
    fields_before = dict(vars(event))
    checked, problems = check(event)
    assert problems == []
    assert isinstance(checked, CheckedEvent)
    assert checked.context_json == '{"amount": "12.50", "items": [1, 2]}'
    assert (checked.event_id, checked.event_type, checked.environment) == (event.event_id, "order_paid", None)
    assert vars(event) == fields_before  # nothing cached or marked on the event itself
    assert check(checked) == (checked, [])
    assert check(NewEvent(""))[0] is None


@pytest.mark.django_db(transaction=True, databases=["default", "mirror"])
@pytest.mark.parametrize("count", [2, COPY_FROM_EVENTS])
def test_events_join_the_transaction_of_the_connection_using_names(count: int) -> None:
    """'mirror' is a second connection to the outbox's database: the events are written on it, in
    its transaction, and not on the outbox's own connection."""

    def business_change() -> None:
        with transaction.atomic(using="mirror"):
            emit_events([NewEvent("order_paid") for _ in range(count)], using="mirror")
            assert not connection.in_atomic_block
            raise RuntimeError("the business change failed")

    with pytest.raises(RuntimeError):
        business_change()
    assert OutboxEvent.objects.count() == 0
    with transaction.atomic(using="mirror"):
        emit_events([NewEvent("order_paid") for _ in range(count)], using="mirror")
        assert OutboxEvent.objects.count() == 0  # not committed yet: another connection
    assert OutboxEvent.objects.count() == count


def test_a_connection_to_another_database_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "two_databases.py").write_text(
        "from tests.settings import *  # noqa\n"
        "DATABASES['default']['NAME'] = 'postgres'\n"
        "DATABASES['reports'] = {**DATABASES['default'], 'NAME': 'template1'}\n"
    )
    emit = (
        "import django; django.setup()\n"
        "from eventlog.outbox.events import NewEvent, emit_event\n"
        "emit_event(NewEvent('order_paid'), using='reports')\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "two_databases", "PYTHONPATH": f"{tmp_path}:{SRC}"}
    run = subprocess.run([sys.executable, "-c", emit], env=env, capture_output=True, text=True, check=False)
    assert "ValueError: emit_events(using='reports'): that database is not the outbox's" in run.stderr
