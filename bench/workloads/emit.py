"""emit_many: the in-process producer API writing events inside transactions, beside a raw COPY of
the same rows into the same table."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
from django.db import transaction

import seeding
from environment import pg_connect, truncate_outbox
from eventlog.outbox.events import NewEvent, emit_events
from sizes import Sizes


def run(sizes: Sizes, log: Callable[[str], None]) -> dict[str, Any]:
    count, chunk = sizes.emit_events, sizes.emit_chunk
    # Built before the clock starts: the caller has its events in hand either way.
    values = list(seeding.event_values(count, seed=3))
    events = [NewEvent(event_type=t, event_context=c, event_id=i, event_date_time=at, environment=env,
                       metadata_version=v) for i, t, at, env, c, v in values]  # fmt: skip
    truncate_outbox()
    log(f"emit_events: {count:,} events, {chunk:,} per transaction")
    began = time.perf_counter()
    accepted = 0
    for start in range(0, count, chunk):
        with transaction.atomic():
            accepted += emit_events(events[start : start + chunk]).accepted
    emit_s = time.perf_counter() - began
    truncate_outbox()

    log(f"COPY: the same {count:,} rows")
    with pg_connect() as conn:
        began = time.perf_counter()
        copied = seeding.copy_events(conn, "eventlog_outbox_event", values)
        copy_s = time.perf_counter() - began
    truncate_outbox()

    # An extra: the same COPY cut into emit_events' transactions, to show what committing costs.
    log(f"COPY: the same {count:,} rows, {chunk:,} per transaction")
    with pg_connect() as conn:
        began = time.perf_counter()
        copied_in_chunks = sum(copy_in_transaction(conn, values[start : start + chunk])
                               for start in range(0, count, chunk))  # fmt: skip
        chunked_s = time.perf_counter() - began
    truncate_outbox()
    if {accepted, copied, copied_in_chunks} != {count}:
        raise RuntimeError(
            f"emit_many: {count} events, {accepted} emitted, {copied} and {copied_in_chunks} copied"
        )
    return {
        "events": count,
        "events_per_transaction": chunk,
        "events_per_s": count / emit_s,
        "copy_events_per_s": count / copy_s,
        "vs_copy": copy_s / emit_s,
        "copy_in_transactions_events_per_s": count / chunked_s,
    }


def copy_in_transaction(conn: psycopg.Connection[Any], values: list[seeding.EventValues]) -> int:
    with conn.transaction():
        return seeding.copy_events(conn, "eventlog_outbox_event", values)
