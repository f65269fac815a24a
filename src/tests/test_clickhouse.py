from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from clickhouse_connect.driver.client import Client

from eventlog.clickhouse import EventLogWriter, connect, ensure_schema, schema_statements
from eventlog.errors import ClickHouseRejected, ClickHouseUnavailable
from tests.conftest import event_log_counts


def columns(n: int, when: datetime | None = None) -> list[list[object]]:
    when = when or datetime(2026, 5, 1, 8, 0, 0, 654321, tzinfo=UTC)
    return [
        [uuid.uuid4() for _ in range(n)],
        ["order_paid"] * n,
        [when] * n,
        ["test"] * n,
        ['{"a": 1}'] * n,
        [1] * n,
    ]


def test_event_log_has_the_specs_columns_partitioning_and_order(clickhouse: Client) -> None:
    described = {row[0]: row[1] for row in clickhouse.query("DESCRIBE TABLE event_log").result_rows}
    assert described == {
        "event_id": "UUID",
        "event_type": "String",
        "event_date_time": "DateTime64(6, 'UTC')",
        "environment": "String",
        "event_context": "String",
        "metadata_version": "UInt64",
    }
    engine, partition_key, sorting_key = clickhouse.query(
        "SELECT engine, partition_key, sorting_key FROM system.tables"
        " WHERE database = currentDatabase() AND name = 'event_log'"
    ).result_rows[0]
    assert engine == "MergeTree"
    assert partition_key == "toYYYYMM(event_date_time)"
    assert sorting_key == "event_date_time, event_type"


def test_schema_is_idempotent_and_upgrades_a_table_without_event_id(clickhouse: Client) -> None:
    clickhouse.command("DROP TABLE IF EXISTS legacy.event_log")
    clickhouse.command("CREATE DATABASE IF NOT EXISTS legacy")
    # The spec's original table, without event_id and without a deduplication window.
    clickhouse.command(
        "CREATE TABLE legacy.event_log (event_type String, event_date_time DateTime64(6),"
        " environment String, event_context String, metadata_version UInt64)"
        " ENGINE = MergeTree() PARTITION BY toYYYYMM(event_date_time) ORDER BY (event_date_time, event_type)"
    )
    for _ in range(2):
        ensure_schema(clickhouse, "legacy")
    names = [row[0] for row in clickhouse.query("DESCRIBE TABLE legacy.event_log").result_rows]
    assert names[0] == "event_id"
    create = clickhouse.query("SHOW CREATE TABLE legacy.event_log").result_rows[0][0]
    assert "non_replicated_deduplication_window = 10000" in create
    clickhouse.command("DROP DATABASE legacy")


def test_the_same_batch_written_twice_with_its_token_lands_once(
    writer: EventLogWriter, clickhouse: Client
) -> None:
    batch = columns(1000)
    for _ in range(3):
        writer.write_batch(batch, token="batch-token-1")
    assert event_log_counts(clickhouse) == (1000, 1000)
    writer.write_batch(columns(10), token="batch-token-2")
    assert event_log_counts(clickhouse) == (1010, 1010)


def test_a_batch_spanning_many_months_is_one_insert(writer: EventLogWriter, clickhouse: Client) -> None:
    batch = columns(240)
    batch[2] = [datetime(2000 + i // 12, 1 + i % 12, 1, tzinfo=UTC) for i in range(240)]  # 240 partitions
    writer.write_batch(batch, token="many-months")
    writer.write_batch(batch, token="many-months")
    assert event_log_counts(clickhouse) == (240, 240)


def test_a_value_clickhouse_cannot_store_is_a_rejection(writer: EventLogWriter, clickhouse: Client) -> None:
    batch = columns(3)
    batch[5] = [1, -1, 1]  # UInt64 cannot hold -1
    with pytest.raises(ClickHouseRejected):
        writer.write_batch(batch, token="bad-version")
    assert event_log_counts(clickhouse) == (0, 0)


def test_a_missing_table_is_an_outage_not_a_rejection(writer: EventLogWriter, clickhouse: Client) -> None:
    clickhouse.command("DETACH TABLE event_log")
    try:
        with pytest.raises(ClickHouseUnavailable) as caught:
            writer.write_batch(columns(3), token="detached")
        assert caught.value.code == 60
    finally:
        clickhouse.command("ATTACH TABLE event_log")


def test_an_unreachable_server_is_an_outage() -> None:
    with pytest.raises(ClickHouseUnavailable):
        connect("http://default:@127.0.0.1:9/default")


def test_ddl_names_the_configured_database() -> None:
    assert all("analytics." in s or "DATABASE" in s for s in schema_statements("analytics"))
