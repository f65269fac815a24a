"""The two baselines measured beside the relay on the same backlog, in this process's ClickHouse.

- seed-literal: the relay as first sketched, through the Django ORM: take a slice of unprocessed
  rows, insert them, `update(processed=True)`; repeat.
- floor: no bookkeeping at all: read every row with `COPY ... TO STDOUT` and insert them in one go.
  No relay that reads rows into Python and keeps any state can beat it.
- CSV floor (an extra): the same, but the rows travel as CSV text from COPY to ClickHouse with no
  Python object per row, which is how the relay itself sends a batch: the floor for that path.

Both insert synchronously (`async_insert=0`, as the relay does): chDB otherwise defaults to async
inserts, and the comparison would be about ClickHouse's insert path rather than the bookkeeping.
"""

from __future__ import annotations

import json
from typing import Any

from clickhouse_connect.driver.client import Client
from django.db import connection, models

from environment import pg_connect
from eventlog.clickhouse.event_log import COLUMNS, TABLE

SEED_TABLE = "bench_seed_outbox"
FLOOR_TABLE = "bench_floor"
SYNC_INSERT: dict[str, Any] = {"async_insert": 0}


class SeedOutboxEvent(models.Model):
    """The seed's outbox row: the event plus a `processed` flag, written once per event relayed."""

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=255)
    event_date_time = models.DateTimeField()
    environment = models.CharField(max_length=255)
    event_context = models.JSONField(default=dict)
    metadata_version = models.BigIntegerField()
    processed = models.BooleanField(default=False)

    objects: models.Manager[SeedOutboxEvent] = models.Manager()  # spelled out: not a migrated app model

    class Meta:
        managed = False  # a bench-only table, created below with raw SQL, never migrated
        app_label = "eventlog"
        db_table = SEED_TABLE


_CREATE_SEED_TABLE = f"""
    CREATE TABLE {SEED_TABLE} (
        id bigint PRIMARY KEY,
        event_id uuid NOT NULL,
        event_type varchar(255) NOT NULL,
        event_date_time timestamptz NOT NULL,
        environment varchar(255) NOT NULL,
        event_context jsonb NOT NULL,
        metadata_version bigint NOT NULL,
        processed boolean NOT NULL DEFAULT false
    )
"""
# The very rows the relay drains (same ids, same order), so the three read the same backlog.
_FILL_SEED_TABLE = f"""
    INSERT INTO {SEED_TABLE} (id, {", ".join(COLUMNS)})
    SELECT id, {", ".join(COLUMNS)} FROM eventlog_outbox_event ORDER BY id
"""  # noqa: S608 (constants only)


def create_seed_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {SEED_TABLE}")
        cursor.execute(_CREATE_SEED_TABLE)
        cursor.execute(_FILL_SEED_TABLE)


def drop_seed_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {SEED_TABLE}")


def seed_literal_relay(client: Client, batch_size: int) -> int:
    """Relay every unprocessed row the seed's way; returns how many were relayed."""
    relayed = 0
    while True:
        rows = list(SeedOutboxEvent.objects.filter(processed=False).order_by("id")[:batch_size])
        if not rows:
            return relayed
        client.insert(
            TABLE,
            [
                (
                    r.event_id,
                    r.event_type,
                    r.event_date_time,
                    r.environment,
                    json.dumps(r.event_context),
                    r.metadata_version,
                )
                for r in rows
            ],
            column_names=COLUMNS,
            settings=SYNC_INSERT,
        )
        SeedOutboxEvent.objects.filter(id__in=[r.id for r in rows]).update(processed=True)
        relayed += len(rows)


_COPY_OUT = """
    COPY (
        SELECT event_id, event_type, event_date_time, environment, event_context::text, metadata_version
        FROM eventlog_outbox_event ORDER BY id
    ) TO STDOUT
"""


def create_floor_table(client: Client) -> None:
    """A scratch table shaped exactly like event_log (whose schema the caller ensured)."""
    client.command(f"CREATE TABLE IF NOT EXISTS {FLOOR_TABLE} AS {TABLE}")
    client.command(f"TRUNCATE TABLE {FLOOR_TABLE}")


def floor_copy_insert(client: Client) -> int:
    """Read the whole outbox with COPY as Python rows, insert them at once; returns the row count.

    Without deduplication: the floor keeps no state of any kind.
    """
    with pg_connect() as conn, conn.cursor() as cursor, cursor.copy(_COPY_OUT) as copy:
        copy.set_types(["uuid", "text", "timestamptz", "text", "text", "int8"])
        rows = list(copy.rows())
    client.insert(FLOOR_TABLE, rows, column_names=COLUMNS, settings={**SYNC_INSERT, "insert_deduplicate": 0})
    return len(rows)


_COPY_OUT_CSV = """
    COPY (
        SELECT event_id, event_type, to_char(event_date_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'),
            environment, event_context::text, metadata_version
        FROM eventlog_outbox_event ORDER BY id
    ) TO STDOUT (FORMAT csv)
"""
# Read the CSV literally, as the relay does (eventlog.clickhouse.event_log.CSV_SETTINGS).
_CSV_INSERT: dict[str, Any] = {
    **SYNC_INSERT,
    "insert_deduplicate": 0,
    "format_csv_allow_single_quotes": 0,
    "input_format_csv_trim_whitespaces": 0,
}


def floor_csv_insert(client: Client) -> int:
    """Read the whole outbox with COPY as one CSV block, insert it at once; returns the row count
    ClickHouse holds afterwards (the caller emptied the table)."""
    with pg_connect() as conn, conn.cursor() as cursor, cursor.copy(_COPY_OUT_CSV) as copy:
        block = b"".join(bytes(chunk) for chunk in copy)
    client.raw_insert(FLOOR_TABLE, COLUMNS, block, settings=_CSV_INSERT, fmt="CSV")
    return clickhouse_count(client, FLOOR_TABLE)


def clickhouse_count(client: Client, table: str) -> int:
    rows = client.query(f"SELECT count() FROM {table}").result_rows  # noqa: S608 (our table names)
    return int(rows[0][0])
