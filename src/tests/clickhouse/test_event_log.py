from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime

import pytest
from clickhouse_connect.driver.client import Client

from eventlog.clickhouse.event_log import (
    COLUMNS,
    CSV_SETTINGS,
    INSERT_SETTINGS,
    ClickHouseOptions,
    EventLogWriter,
    connect,
    ensure_schema,
    schema_statements,
    server_arguments,
)
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


def test_a_servers_timeouts_and_tls_check_come_from_the_settings() -> None:
    options = ClickHouseOptions(connect_timeout=3, send_receive_timeout=7, verify=False, ca_cert="/ca.pem")
    assert server_arguments(options) == {
        "connect_timeout": 3, "send_receive_timeout": 7, "verify": False, "ca_cert": "/ca.pem"
    }  # fmt: skip
    started = time.monotonic()
    with pytest.raises(ClickHouseUnavailable):
        connect("https://eventlog:secret@127.0.0.1:9/eventlog", options)
    assert time.monotonic() - started < 30


def test_cluster_ddl_replicates_the_data_and_distributes_the_reads() -> None:
    statements = schema_statements("analytics", "events_cluster")
    assert all(" ON CLUSTER events_cluster" in statement for statement in statements)
    local, distributed = statements[1], statements[2]
    assert "analytics.event_log_local" in local
    assert "ReplicatedMergeTree('/clickhouse/tables/{shard}/analytics/event_log_local', '{replica}')" in local
    assert "replicated_deduplication_window = 10000" in local
    assert "PARTITION BY toYYYYMM(event_date_time)" in local
    assert "analytics.event_log ON CLUSTER events_cluster AS analytics.event_log_local" in distributed
    assert "ENGINE = Distributed(events_cluster, analytics, event_log_local, rand())" in distributed
    assert ClickHouseOptions(cluster="events_cluster").insert_table() == "event_log_local"
    assert ClickHouseOptions().insert_table() == "event_log"


def single_node(statement: str) -> str:
    """A cluster statement as one node without Keeper or remote_servers runs it: the same tables,
    MergeTree for ReplicatedMergeTree, a Merge table (reads of the one local table) for Distributed."""
    statement = statement.replace(" ON CLUSTER events_cluster", "")
    statement = re.sub(r"ReplicatedMergeTree\([^)]*\)", "MergeTree()", statement)
    statement = statement.replace("replicated_deduplication_window", "non_replicated_deduplication_window")
    return re.sub(r"Distributed\(.*rand\(\)\)", "Merge(clustered, '^event_log_local$')", statement)


def test_the_cluster_layout_deduplicates_inserts_and_serves_reads_on_one_node(clickhouse: Client) -> None:
    clickhouse.command("DROP DATABASE IF EXISTS clustered")
    for statement in schema_statements("clustered", "events_cluster"):
        clickhouse.command(single_node(statement))
    rows = b'"7c1e4f7e-3b9a-4c1e-9d53-2f1f0a6b8e21","a","2026-11-25 10:00:00.000001","test","{}","1"\n'
    table = f"clustered.{ClickHouseOptions(cluster='events_cluster').insert_table()}"
    settings = {**INSERT_SETTINGS, **CSV_SETTINGS, "insert_deduplication_token": "batch-1"}
    for _ in range(2):  # a batch resent with its token lands once
        clickhouse.raw_insert(table, COLUMNS, rows, fmt="CSV", settings=settings)
    assert clickhouse.query("SELECT count() FROM clustered.event_log").result_rows == [(1,)]
    clickhouse.command("DROP DATABASE clustered")
