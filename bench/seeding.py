"""Realistic events, and writing them into PostgreSQL with COPY (fast enough for a million rows).

The data is deterministic (seeded), so every run, and every relay within a run, sees the same rows.
"""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

EVENT_TYPES = ("user_created", "order_paid", "page_viewed", "cart_updated", "email_sent")
ENVIRONMENTS = ("production", "staging")
OUTBOX_COLUMNS = (
    "event_id",
    "event_type",
    "event_date_time",
    "environment",
    "event_context",
    "metadata_version",
)
# Event times spread over three months, so ClickHouse sees several monthly partitions per insert.
FIRST_EVENT = datetime(2026, 8, 1, tzinfo=UTC)
SPREAD_SECONDS = 92 * 24 * 3600
PATHS = ("/", "/shop", "/shop/cart", "/account/settings", "/checkout/payment")

# (event_id, event_type, event_date_time, environment, event_context, metadata_version)
EventValues = tuple[uuid.UUID, str, datetime, str, dict[str, Any], int]


def rng(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 (test data, not secrets)


def context(generator: random.Random) -> dict[str, Any]:
    """An event_context of about 150 bytes of JSON, with the kinds of values services send."""
    return {
        "user_id": generator.randrange(1, 5_000_000),
        "session_id": f"{generator.getrandbits(64):016x}",
        "path": generator.choice(PATHS),
        "amount": f"{generator.randrange(100, 100_000) / 100:.2f}",
        "currency": "EUR",
        "items": generator.randrange(1, 9),
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
    }


def event_values(count: int, seed: int) -> Iterator[EventValues]:
    generator = rng(seed)
    for _ in range(count):
        yield (
            uuid.UUID(int=generator.getrandbits(128), version=4),
            generator.choice(EVENT_TYPES),
            FIRST_EVENT + timedelta(microseconds=generator.randrange(SPREAD_SECONDS * 1_000_000)),
            generator.choice(ENVIRONMENTS),
            context(generator),
            1,
        )


def seed_backlog(conn: psycopg.Connection[Any], table: str, count: int, per_transaction: int) -> int:
    """COPY `count` events into `table`, `per_transaction` per transaction (the connection is in
    autocommit): a backlog written by many producer transactions, as in production, not by one."""
    events = event_values(count, seed=1)
    written = 0
    while written < count:
        written += copy_events(conn, table, itertools.islice(events, min(per_transaction, count - written)))
    return written


def copy_events(conn: psycopg.Connection[Any], table: str, events: Iterable[EventValues]) -> int:
    """COPY the events into `table`'s outbox columns in one statement; returns the row count.

    Text format: PostgreSQL parses event_context from its JSON text as jsonb (binary jsonb would
    need its own framing), and the JSON is serialized here, inside whatever is being timed.
    """
    written = 0
    statement = f"COPY {table} ({', '.join(OUTBOX_COLUMNS)}) FROM STDIN"
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(["uuid", "text", "timestamptz", "text", "text", "int8"])
        for event_id, event_type, at, environment, event_context, version in events:
            copy.write_row((event_id, event_type, at, environment, json.dumps(event_context), version))
            written += 1
    return written


def request_event(generator: random.Random) -> dict[str, Any]:
    """One event as an HTTP client sends it (event_id and environment left to their defaults)."""
    at = FIRST_EVENT + timedelta(microseconds=generator.randrange(SPREAD_SECONDS * 1_000_000))
    return {
        "event_type": generator.choice(EVENT_TYPES),
        "event_date_time": at.isoformat(),
        "event_context": context(generator),
    }


# History, generated inside PostgreSQL: ten million events through Python and COPY would take
# minutes more, and only their number and layout matter (they are processed before the clock starts).
_HISTORY = """
    DO $$ BEGIN
      FOR chunk IN 0 .. {chunks} - 1 LOOP
        INSERT INTO eventlog_outbox_event (event_id, event_type, event_date_time, environment,
            event_context, metadata_version)
        SELECT ('018f0000-0000-7000-8000-' || lpad(to_hex(chunk * {per} + g), 12, '0'))::uuid,
            (ARRAY['user_created', 'order_paid', 'page_viewed', 'cart_updated', 'email_sent'])[1 + g % 5],
            timestamptz '2026-08-01' + (chunk * {per} + g) % 7948800 * interval '1 second',
            (ARRAY['production', 'staging'])[1 + g % 2],
            jsonb_build_object('user_id', g % 5000000, 'session_id', lpad(to_hex(g), 16, '0'),
                'path', '/shop/cart', 'amount', '12.50', 'currency', 'EUR', 'items', 1 + g % 8,
                'user_agent', 'Mozilla/5.0 (X11; Linux x86_64)'),
            1
        FROM generate_series(1, {per}) g;
        COMMIT;
      END LOOP;
    END $$
"""


def write_history(conn: psycopg.Connection[Any], count: int, per_transaction: int) -> None:
    """Write `count` events (a multiple of `per_transaction`), `per_transaction` per transaction,
    with time-ordered event ids (as the system's own UUIDv7s are). The connection is in autocommit:
    the block commits each transaction itself."""
    if count % per_transaction:
        raise ValueError(f"{count} is not a multiple of {per_transaction}")
    conn.execute(_HISTORY.format(chunks=count // per_transaction, per=per_transaction).encode())
