"""Every statement on the outbox reads the rows it needs, not the outbox (docs/design.md, "Plans").

On an outbox holding a million processed events, in each state its planner statistics are found in
production: none (never analyzed: autovacuum off or not yet run), stale (analyzed when it held 1,000
events) and fresh (analyzed after the million). The real plan of every statement is captured from
PostgreSQL (tests/plans.py) while the relay, the purge, the stats endpoint, the status page, the
metrics scrape and the dead-letter tools run, and the blocks its scans of the outbox touch must stay
within a bound that grows with the rows the operation handles (a trickle of 10 events, a full batch
of 25,000), far below the outbox itself (about 40,000 blocks).

Each condition has a schema of its own holding copies of the relay's tables (same columns, defaults
and indexes, checked below), unlogged so that a million rows are written in seconds without WAL (the
planner treats them as it treats logged tables), with autovacuum off for them so that no machine's
autovacuum analyzes them mid-test. The code under test reaches them through the search_path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import Client as HttpClient

from eventlog.access.api_keys import create_api_key
from eventlog.admin import COUNT_LIMIT
from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.models import OutboxEvent, RelayBatch
from eventlog.monitoring.stats import EXACT_PENDING_LIMIT, outbox_stats
from eventlog.outbox.events import NewEvent, emit_event, emit_events
from eventlog.relay.delivery import relay_outbox
from eventlog.relay.poison import replay_dead_letters
from eventlog.relay.retention import purge_processed
from tests.plans import OUTBOX, Plan, captured_plans

PROCESSED = 1_000_000
FULL_BATCH = 25_000
BACKLOG = 8 * FULL_BATCH  # a snapshot window eight batches long: claiming one must not read the rest
TRICKLE = 10
PRODUCERS = 4


# What "bounded by the rows it needs" allows a statement's scans of the outbox: the rows the operation
# handles, plus a few rows of transactions in flight its filters skip; and at most one block per row
# (an index scan fetches each row from its heap page, and concurrent producers share pages), plus the
# index's upper levels. The outbox itself is 1,000,000 rows in about 40,000 blocks.
ROW_SLACK = 100
BLOCK_SLACK = 100


def assert_reads_bounded(plans: list[Plan], rows: int) -> None:
    assert plans, "no statement was captured"
    over = [
        plan.summary()
        for plan in plans
        if plan.rows_visited() > rows + ROW_SLACK or plan.blocks_touched() > rows + BLOCK_SLACK
    ]
    assert not over, f"statements reading more of the outbox than {rows} rows need:\n" + "\n".join(over)


@dataclass(frozen=True)
class BigOutbox:
    schema: str
    statistics: str  # none, stale or fresh


# --- Building the outboxes


@contextmanager
def search_path(schema: str) -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute(f"SET search_path TO {schema}, public")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET search_path")


def relay_tables() -> list[str]:
    return [name for name in connection.introspection.table_names()
            if name.startswith("eventlog_") and name != "eventlog_api_key"]  # fmt: skip


def create_schema(schema: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        cursor.execute(f"CREATE SCHEMA {schema}")
        for table in relay_tables():
            cursor.execute(
                f"CREATE UNLOGGED TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL)"
                " WITH (autovacuum_enabled = false)"
            )


def drop_schema(schema: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def write_processed(writer: EventLogWriter, count: int, first_id: int) -> None:
    """Write `count` events (under 10,000, or a multiple of it) in transactions of up to 10,000 and
    relay them all: processed events, as the relay leaves them. Their event ids count up from
    `first_id`, ordered like UUIDv7s."""
    with connection.cursor() as cursor:
        cursor.execute(f"""
            DO $$ BEGIN
              FOR chunk IN 0 .. {max(count // 10_000, 1) - 1} LOOP
                INSERT INTO eventlog_outbox_event (event_id, event_type, event_date_time, environment,
                    event_context, metadata_version)
                SELECT ('018f0000-0000-7000-8000-'
                        || lpad(to_hex({first_id} + chunk * 10000 + g), 12, '0'))::uuid,
                    (ARRAY['user_created', 'order_paid', 'page_viewed'])[1 + g % 3],
                    timestamptz '2026-08-01' + g * interval '1 second', 'production',
                    '{{"user_id": 4711, "session_id": "5e2b6f0a1c3d4e5f", "path": "/shop/cart",
                      "amount": "12.50", "currency": "EUR", "items": 3}}', 1
                FROM generate_series(1, {min(count, 10_000)}) g;
                COMMIT;
              END LOOP;
            END $$
        """)  # fmt: skip
    assert relay_outbox(writer, FULL_BATCH, max_batches=count // FULL_BATCH + 2).events == count


def analyze(schema: str) -> None:
    with connection.cursor() as cursor:
        for table in relay_tables():
            cursor.execute(f"ANALYZE {schema}.{table}")


@pytest.fixture(scope="module")
def unanalyzed_schema(django_db_setup: None, django_db_blocker: Any, writer: EventLogWriter) -> Iterator[str]:
    """A million processed events, never analyzed (the "fresh" condition analyzes it later)."""
    with django_db_blocker.unblock():
        create_schema("plans_unanalyzed")
        with search_path("plans_unanalyzed"):
            write_processed(writer, PROCESSED, first_id=0)
        yield "plans_unanalyzed"
        drop_schema("plans_unanalyzed")


@pytest.fixture(scope="module", params=["none", "stale", "fresh"])
def big_outbox(
    request: pytest.FixtureRequest, django_db_setup: None, django_db_blocker: Any, writer: EventLogWriter
) -> Iterator[BigOutbox]:
    with django_db_blocker.unblock():
        if request.param == "stale":
            create_schema("plans_stale")
            with search_path("plans_stale"):
                write_processed(writer, 1_000, first_id=0)
                analyze("plans_stale")
                write_processed(writer, PROCESSED, first_id=1_000)
            yield BigOutbox("plans_stale", "stale")
            drop_schema("plans_stale")
            return
        schema = request.getfixturevalue("unanalyzed_schema")
        if request.param == "fresh":  # after every "none" test: pytest runs the params in order
            analyze(schema)  # (reordered, the "none" tests would fail on their statistics check)
        yield BigOutbox(schema, request.param)


@pytest.fixture
def outbox(big_outbox: BigOutbox, transactional_db: None, writer: EventLogWriter) -> Iterator[BigOutbox]:
    """The test's connection sees the condition's tables (set up after, and reset before, the
    database flush of transactional tests, which would otherwise empty them). Whatever a test
    leaves pending is relayed afterwards, so that a failed test does not fail the next ones."""
    with search_path(big_outbox.schema):
        yield big_outbox
        relay_outbox(writer, FULL_BATCH, max_batches=10**6)


# --- Producing


def emit_trickle(count: int = TRICKLE, event_type: str = "order_paid") -> None:
    """Events as a quiet service sends them: one per transaction."""
    for index in range(count):
        emit_event(NewEvent(event_type, {"n": index}))


def emit_backlog(schema: str, total: int) -> None:
    """A backlog written by concurrent producers, 100 events per transaction."""

    failures: list[BaseException] = []

    def produce(transactions: int) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"SET search_path TO {schema}, public")
            for _ in range(transactions):
                emit_events([NewEvent("page_viewed", {"path": "/shop"}) for _ in range(100)])
        except BaseException as exc:  # raised again below, in the test's thread
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=produce, args=(total // 100 // PRODUCERS,)) for _ in range(PRODUCERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


# --- Reading the figures, as the endpoints do


def read_figures(http: HttpClient, key: str) -> dict[str, Any]:
    """GET the stats endpoint, the status page and the metrics page; the stats."""
    stats = http.get("/api/v1/stats", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert stats.status_code == 200
    assert http.get("/").status_code == 200
    assert http.get("/metrics").status_code == 200
    figures: dict[str, Any] = stats.json()["outbox"]
    return figures


@pytest.fixture
def http(outbox: BigOutbox) -> tuple[HttpClient, str]:
    """A client logged in as staff (the status page), and an API key (the stats endpoint)."""
    client = HttpClient()
    client.force_login(User.objects.create_user("operator", is_staff=True))
    return client, create_api_key("plans")[1]


def captured(work: Callable[[], Any]) -> tuple[Any, list[Plan]]:
    with captured_plans() as plans:
        result = work()
    return result, plans


# --- The tests


def test_each_outbox_holds_a_million_processed_events_with_its_statistics(outbox: BigOutbox) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT reltuples FROM pg_class WHERE oid = '{outbox.schema}.{OUTBOX}'::regclass")
        estimated_rows = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM pg_stats WHERE schemaname = %s AND tablename = %s",
                       [outbox.schema, OUTBOX])  # fmt: skip
        analyzed_columns = cursor.fetchone()[0]
        indexes = "SELECT regexp_replace(indexdef, '^.* USING ', '') FROM pg_indexes WHERE schemaname = %s"
        cursor.execute(indexes, [outbox.schema])
        copied = {row[0] for row in cursor.fetchall()}
        cursor.execute(f"{indexes} AND tablename = ANY(%s)", ["public", relay_tables()])
        assert copied == {row[0] for row in cursor.fetchall()}
    assert outbox_stats()["processed"] >= PROCESSED
    if outbox.statistics == "none":
        assert (estimated_rows, analyzed_columns) == (-1, 0)
    elif outbox.statistics == "stale":
        assert 0 < estimated_rows < 10_000
        assert analyzed_columns > 0
    else:
        assert estimated_rows >= PROCESSED
        assert analyzed_columns > 0


def test_a_trickle_is_counted_and_relayed_reading_only_its_events(
    outbox: BigOutbox, writer: EventLogWriter, http: tuple[HttpClient, str]
) -> None:
    emit_trickle()
    figures, plans = captured(lambda: read_figures(*http))
    assert (figures["pending"], figures["pending_is_estimate"]) == (TRICKLE, False)
    assert_reads_bounded(plans, TRICKLE)

    result, plans = captured(lambda: relay_outbox(writer, FULL_BATCH, max_batches=100))
    assert result.events == TRICKLE
    assert_reads_bounded(plans, TRICKLE)
    # Generous bounds for a loaded machine (about 4 ms and 15 ms here): a plan reading the outbox
    # takes hundreds of milliseconds at this size, and the row and block bounds above are the check.
    assert sum(plan.milliseconds for plan in plans) < 50, [plan.summary() for plan in plans]

    # The whole run, uncaptured: the claim, the COPY, the insert into ClickHouse and the settle.
    emit_trickle()
    started = time.perf_counter()
    assert relay_outbox(writer, FULL_BATCH, max_batches=100).events == TRICKLE
    assert time.perf_counter() - started < 0.25


def test_a_full_batch_is_claimed_from_a_long_backlog_reading_only_that_batch(
    outbox: BigOutbox, writer: EventLogWriter, http: tuple[HttpClient, str]
) -> None:
    emit_backlog(outbox.schema, BACKLOG)
    figures, plans = captured(lambda: read_figures(*http))
    # Beyond EXACT_PENDING_LIMIT the backlog is estimated from its ids, here without gaps.
    assert figures["pending_is_estimate"] is True
    assert BACKLOG <= figures["pending"] <= BACKLOG * 1.01
    assert_reads_bounded(plans, 2 * EXACT_PENDING_LIMIT)

    result, plans = captured(lambda: relay_outbox(writer, FULL_BATCH, max_batches=1))
    assert result.events == FULL_BATCH
    assert_reads_bounded(plans, FULL_BATCH)

    assert relay_outbox(writer, FULL_BATCH, max_batches=100).events == BACKLOG - FULL_BATCH
    assert outbox_stats()["pending"] == 0


def test_dead_letters_are_found_and_replayed_reading_only_themselves(
    outbox: BigOutbox, writer: EventLogWriter
) -> None:
    clickhouse = writer.client()
    clickhouse.command("ALTER TABLE event_log ADD CONSTRAINT no_poison CHECK event_type != 'poison'")
    try:
        emit_trickle(TRICKLE - 1)
        emit_trickle(1, event_type="poison")
        result, plans = captured(lambda: relay_outbox(writer, FULL_BATCH, max_batches=100))
        assert (result.events, result.dead_lettered) == (TRICKLE - 1, 1)
        assert_reads_bounded(plans, TRICKLE)
    finally:
        clickhouse.command("ALTER TABLE event_log DROP CONSTRAINT IF EXISTS no_poison")

    _, plans = captured(lambda: call_command("dead_letters", stdout=StringIO()))
    assert_reads_bounded(plans, 1)
    replayed, plans = captured(replay_dead_letters)
    assert replayed == 1
    assert_reads_bounded(plans, 1)
    assert relay_outbox(writer, FULL_BATCH, max_batches=100).events == 1


def test_purging_a_batch_reads_only_its_events(outbox: BigOutbox, writer: EventLogWriter) -> None:
    emit_trickle()
    relay_outbox(writer, FULL_BATCH, max_batches=100)
    trickle_batch = RelayBatch.objects.latest("id")
    full_batch = RelayBatch.objects.filter(row_count=FULL_BATCH).earliest("id")
    processed = outbox_stats()["processed"]
    month_ago = datetime.now(UTC) - timedelta(days=30)
    week_ago = datetime.now(UTC) - timedelta(days=7)

    for batch, rows in ((trickle_batch, TRICKLE), (full_batch, FULL_BATCH)):
        RelayBatch.objects.filter(id=batch.id).update(delivered_at=month_ago)
        result, plans = captured(lambda: purge_processed(week_ago, max_batches=1))
        assert (result.batches, result.events) == (1, rows)
        assert_reads_bounded(plans, rows)
    assert outbox_stats()["processed"] == processed - TRICKLE - FULL_BATCH


def test_the_purge_finds_nothing_expired_without_reading_the_batches_it_keeps(outbox: BigOutbox) -> None:
    """A week of trickle is a million batch rows, none of them old enough yet."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO eventlog_relay_batch (token, state, low_snapshot, high_snapshot, after_txid,"
            " after_id, last_txid, last_id, row_count, oldest_created_at, delivered_at)"
            " SELECT gen_random_uuid(), 'delivered', '1:1:', '1:1:', '1', 0, '1', 0, 0, now(), now()"
            " FROM generate_series(1, 200000)"
        )
    try:
        result, plans = captured(lambda: purge_processed(datetime.now(UTC) - timedelta(days=7), 1))
    finally:
        RelayBatch.objects.filter(row_count=0, low_snapshot="1:1:").delete()
    assert result.batches == 0
    over = [plan.summary() for plan in plans if plan.rows_visited("eventlog_relay_batch") > ROW_SLACK]
    assert not over, over


def test_the_admins_lists_read_a_page_and_a_bounded_count_not_the_outbox(outbox: BigOutbox) -> None:
    admin = HttpClient()
    admin.force_login(User.objects.create_superuser("outbox-admin"))
    emit_trickle(1, event_type=f"findable_{outbox.statistics}")
    event_id = OutboxEvent.objects.get(event_type=f"findable_{outbox.statistics}").event_id
    for url, shown in (
        ("/admin/eventlog/outboxevent/", "more than 1000 outbox events"),
        ("/admin/eventlog/outboxevent/?dead=yes", "0 outbox events"),
        (f"/admin/eventlog/outboxevent/?q={event_id}", "1 outbox event"),
        ("/admin/eventlog/relaybatch/", "relay batches"),
    ):
        page, plans = captured(lambda url=url: admin.get(url))
        assert page.status_code == 200
        assert shown in page.content.decode()
        assert_reads_bounded(plans, COUNT_LIMIT + 1)
