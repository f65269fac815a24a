"""The outbox's figures: exact while the backlog is small, estimated (and saying so) beyond, and a
processed count that follows deliveries and the purge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor

from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.models import RelayBatch
from eventlog.monitoring.stats import EXACT_PENDING_LIMIT, outbox_stats, processed_events
from eventlog.outbox.events import NewEvent, emit_events
from eventlog.relay.delivery import relay_outbox
from eventlog.relay.retention import purge_processed

pytestmark = pytest.mark.django_db(transaction=True)


def emit(count: int) -> None:
    for start in range(0, count, 1_000):
        emit_events([NewEvent("order_paid") for _ in range(min(1_000, count - start))])


def test_a_backlog_up_to_the_limit_is_counted_exactly() -> None:
    emit(EXACT_PENDING_LIMIT)
    stats = outbox_stats()
    assert (stats["pending"], stats["pending_is_estimate"]) == (EXACT_PENDING_LIMIT, False)


def test_a_larger_backlog_is_estimated_from_its_ids_counting_rolled_back_ones_too() -> None:
    emit(EXACT_PENDING_LIMIT + 1_000)
    with transaction.atomic():  # takes 500 ids past the events counted, writes nothing
        emit_events([NewEvent("order_paid") for _ in range(500)])
        transaction.set_rollback(True)
    emit(1_000)
    stats = outbox_stats()
    assert stats["pending_is_estimate"] is True
    assert stats["pending"] == EXACT_PENDING_LIMIT + 2_000 + 500
    assert 0 <= stats["oldest_pending_age_seconds"] < 60


def test_a_backlog_past_the_limit_in_the_relays_window_and_more_after_it_is_not_undercounted(
    writer: EventLogWriter, clickhouse: object
) -> None:
    """Seen in the outage test: the window's unread events lay between the two counts' rows and
    were left out (195,001 of 200,000)."""
    emit(EXACT_PENDING_LIMIT + 3_000)
    relay_outbox(writer, batch_size=1_000, max_batches=1)  # the relay's window now holds the rest
    emit(3_000)  # committed after the window's snapshot
    stats = outbox_stats()
    assert stats["pending_is_estimate"] is True
    assert stats["pending"] == EXACT_PENDING_LIMIT + 5_000


def test_the_processed_count_follows_deliveries_and_the_purge(
    writer: EventLogWriter, clickhouse: object
) -> None:
    emit(2_500)
    relay_outbox(writer, batch_size=1_000, max_batches=10)
    assert processed_events() == outbox_stats()["processed"] == 2_500
    RelayBatch.objects.filter(row_count=1_000).update(delivered_at=datetime.now(UTC) - timedelta(days=30))
    purge_processed(datetime.now(UTC) - timedelta(days=7), max_batches=10)
    assert processed_events() == 500
    assert outbox_stats()["pending"] == 0


def test_the_migration_that_adds_the_count_starts_it_from_the_batches_delivered_before() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([("eventlog", "0002_outbox_autovacuum")])
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO eventlog_relay_batch (token, state, low_snapshot, high_snapshot, after_txid,"
                " after_id, last_txid, last_id, row_count, oldest_created_at)"
                " SELECT gen_random_uuid(), state, '1:1:', '1:1:', '1', 0, '1', 0, row_count, now()"
                " FROM (VALUES ('delivered', 300), ('delivered', 20), ('claimed', 4000)) b (state, row_count)"
            )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes("eventlog"))
    assert processed_events() == 320
