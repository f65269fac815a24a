from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest
from clickhouse_connect.driver.client import Client
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.errors import ClickHouseUnavailable
from eventlog.models import RelayBatch, RelayCursor
from eventlog.monitoring.stats import outbox_stats
from eventlog.outbox.events import NewEvent, emit_events
from eventlog.relay.delivery import WINDOW, claim_batch, relay_outbox
from tests.conftest import event_log, event_log_counts

pytestmark = pytest.mark.django_db(transaction=True)


def emit(n: int, event_type: str = "order_paid") -> list[NewEvent]:
    events = [NewEvent(event_type, {"n": i}) for i in range(n)]
    emit_events(events)
    return events


def test_relay_delivers_every_event_once_in_batches_and_marks_them_processed(
    writer: EventLogWriter, clickhouse: Client
) -> None:
    emit(2_500)
    result = relay_outbox(writer, batch_size=1_000, max_batches=10)
    assert (result.batches, result.events) == (3, 2_500)
    assert event_log_counts(clickhouse) == (2_500, 2_500)
    assert list(RelayBatch.objects.values_list("state", "row_count").order_by("id")) == [
        ("delivered", 1000),
        ("delivered", 1000),
        ("delivered", 500),
    ]
    assert outbox_stats()["pending"] == 0
    assert outbox_stats()["processed"] == 2_500
    assert relay_outbox(writer, batch_size=1_000, max_batches=10).events == 0
    assert event_log_counts(clickhouse) == (2_500, 2_500)


def test_relayed_rows_carry_every_column_unchanged(writer: EventLogWriter, clickhouse: Client) -> None:
    when = datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    event = NewEvent("signup", {"email": "é@example.com", "tags": [1, 2]}, event_date_time=when,
                     environment="eu-1", metadata_version=2**63 - 1)  # fmt: skip
    emit_events([event])
    relay_outbox(writer, batch_size=10, max_batches=1)
    [row] = event_log(clickhouse)
    assert row["event_id"] == event.event_id
    assert (row["event_type"], row["environment"], row["metadata_version"]) == ("signup", "eu-1", 2**63 - 1)
    assert row["event_date_time"].replace(tzinfo=UTC) == when
    assert row["event_context"] == '{"tags": [1, 2], "email": "é@example.com"}'


def test_max_batches_bounds_one_run_and_the_next_run_continues(
    writer: EventLogWriter, clickhouse: Client
) -> None:
    emit(350)
    assert relay_outbox(writer, batch_size=100, max_batches=2).events == 200
    assert outbox_stats()["pending"] == 150
    assert relay_outbox(writer, batch_size=100, max_batches=2).events == 150
    assert event_log_counts(clickhouse) == (350, 350)


def test_a_failed_insert_leaves_events_pending_and_the_next_run_delivers_them(
    writer: EventLogWriter, clickhouse: Client
) -> None:
    emit(300)
    clickhouse.command("DETACH TABLE event_log")  # a real fault of the real engine
    try:
        with pytest.raises(ClickHouseUnavailable):
            relay_outbox(writer, batch_size=1000, max_batches=5)
        stats = outbox_stats()
        assert (stats["pending"], stats["processed"]) == (300, 0)
        batch = RelayBatch.objects.get()
        assert (batch.state, batch.attempts) == ("claimed", 1)
        assert "UNKNOWN_TABLE" in batch.last_error
        assert not RelayBatch.objects.filter(state="delivered").exists()
    finally:
        clickhouse.command("ATTACH TABLE event_log")
    emit(50)
    result = relay_outbox(writer, batch_size=1000, max_batches=5)
    assert result.events == 350
    assert event_log_counts(clickhouse) == (350, 350)
    assert outbox_stats()["processed"] == 350


@pytest.mark.parametrize(
    "when",
    [
        datetime(1900, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 2, 0, 0, 0, 500_000, tzinfo=UTC),
        datetime(2026, 3, 4, 5, 6, 7, 1, tzinfo=UTC),
        datetime(2299, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ],
)
def test_event_times_arrive_to_the_microsecond_whatever_the_sessions_date_style(
    writer: EventLogWriter, clickhouse: Client, when: datetime
) -> None:
    emit_events([NewEvent("signup", event_date_time=when)])
    with connection.cursor() as cursor:
        cursor.execute("SET DateStyle = 'SQL, MDY'")  # a server configured otherwise changes nothing
    try:
        assert relay_outbox(writer, batch_size=10, max_batches=1).events == 1
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET DateStyle")
    [row] = event_log(clickhouse)
    assert row["event_date_time"].replace(tzinfo=UTC) == when


def test_a_batch_inserted_but_not_settled_is_resent_and_lands_once(
    writer: EventLogWriter, clickhouse: Client
) -> None:
    emit(400)
    batch_id = claim_batch(1000)
    assert batch_id is not None
    # The relay died after ClickHouse acknowledged the insert but before it marked the batch.
    batch = RelayBatch.objects.get(id=batch_id)
    window = {"low": batch.low_snapshot, "high": batch.high_snapshot, "after_txid": str(batch.after_txid),
              "after_id": batch.after_id}  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT event_id, event_type, event_date_time, environment, event_context::text, metadata_version"
            f" FROM eventlog_outbox_event WHERE {WINDOW} ORDER BY txid, id",
            window,
        )
        rows = cursor.fetchall()
    writer.write_batch([list(c) for c in zip(*rows, strict=True)], token=str(batch.token))
    assert relay_outbox(writer, batch_size=1000, max_batches=5).events == 400
    assert event_log_counts(clickhouse) == (400, 400)


def test_a_batch_that_takes_the_rest_of_its_window_leaves_it_used_up_for_the_next_claim() -> None:
    emit(10)
    first = claim_batch(100)
    cursor = RelayCursor.objects.get()
    assert cursor.low_snapshot == cursor.high_snapshot == RelayBatch.objects.get(id=first).high_snapshot
    emit(5)
    with CaptureQueriesContext(connection) as queries:
        second = claim_batch(100)
    # Straight to the next window: one search for events, not a first one in the used-up window.
    assert sum("WITH next AS MATERIALIZED" in query["sql"] for query in queries) == 1
    batch = RelayBatch.objects.get(id=second)
    assert (batch.row_count, batch.low_snapshot) == (5, cursor.high_snapshot)


def test_a_relay_run_settles_without_waiting_for_the_disk_only_in_its_own_transaction(
    writer: EventLogWriter,
) -> None:
    emit(10)
    with CaptureQueriesContext(connection) as queries:
        relay_outbox(writer, batch_size=100, max_batches=1)
    assert "SET LOCAL synchronous_commit = off" in [query["sql"] for query in queries]


def test_a_relay_run_inside_a_callers_transaction_leaves_its_commit_durable(writer: EventLogWriter) -> None:
    emit(10)
    with transaction.atomic():
        assert relay_outbox(writer, batch_size=100, max_batches=1).events == 10
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('synchronous_commit')")
            assert cursor.fetchone()[0] == "on"


def test_an_event_committed_late_with_a_smaller_id_is_not_skipped(
    writer: EventLogWriter, clickhouse: Client
) -> None:
    """A slow transaction takes its id first and commits after later events were relayed."""
    slow = connections.create_connection("default")
    try:
        slow.set_autocommit(False)
        with slow.cursor() as cursor:
            cursor.execute(
                "INSERT INTO eventlog_outbox_event (event_id, event_type, event_date_time, environment,"
                " event_context, metadata_version) VALUES (gen_random_uuid(), 'slow', now(), 't', '{}', 1)"
            )
        emit(100)  # later ids, committed first
        # A transaction still open holds nothing up: what is committed is relayed ...
        assert relay_outbox(writer, batch_size=1000, max_batches=5).events == 100
        slow.commit()
    finally:
        slow.close()
    # ... and the slow one's event, committed after them, is not skipped.
    assert relay_outbox(writer, batch_size=1000, max_batches=5).events == 1
    assert event_log_counts(clickhouse) == (101, 101)
    assert [row["event_type"] for row in event_log(clickhouse)].count("slow") == 1


def test_concurrent_relay_threads_never_insert_an_event_twice_or_skip_one(
    writer: EventLogWriter, clickhouse: Client
) -> None:
    produced = 0
    stop = threading.Event()
    barrier = threading.Barrier(5)
    errors: list[BaseException] = []

    def relay() -> None:
        try:
            barrier.wait()
            while not stop.is_set():
                relay_outbox(writer, batch_size=700, max_batches=3)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=relay) for _ in range(4)]
    for thread in threads:
        thread.start()
    barrier.wait()
    for _ in range(40):  # events keep arriving while four relays compete for them
        emit_events([NewEvent("order_paid") for _ in range(500)])
        produced += 500
    stop.set()
    for thread in threads:
        thread.join()
    # Drained run by run, as beat's ticks would: a run ends after a batch shorter than batch_size
    # (relay_outbox), and with four relays at once such a batch can be the rest of an older window
    # while a newer one holds events committed before the run; the next run takes them.
    while relay_outbox(writer, batch_size=10_000, max_batches=10).events:
        pass
    assert errors == []
    assert event_log_counts(clickhouse) == (produced, produced)
    assert outbox_stats()["processed"] == produced


def test_text_with_spaces_quotes_commas_and_line_breaks_arrives_unchanged(
    writer: EventLogWriter, clickhouse: Client
) -> None:
    awkward = [
        " leading",
        "trailing ",
        '"quoted"',
        "'single'",
        "a,b",
        "line\nbreak",
        "tab\tx",
        "back\\slash",
        "",
    ]
    emit_events(
        [NewEvent(f"t{i} {text}", {"text": text}, environment=text) for i, text in enumerate(awkward)]
    )
    relay_outbox(writer, batch_size=100, max_batches=1)
    rows = {row["event_type"]: row for row in event_log(clickhouse)}
    for i, text in enumerate(awkward):
        row = rows[f"t{i} {text}"]
        assert row["environment"] == text
        assert json.loads(row["event_context"]) == {"text": text}
