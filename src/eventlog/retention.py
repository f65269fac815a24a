"""Removing processed events from the outbox once they are old enough, in bounded steps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction

_NEXT_EXPIRED_BATCH = """
    SELECT id FROM eventlog_relay_batch
    WHERE state = 'delivered' AND delivered_at < %s
    ORDER BY id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
"""


@dataclass(frozen=True)
class PurgeResult:
    batches: int = 0
    events: int = 0


def purge_processed(delivered_before: datetime, max_batches: int) -> PurgeResult:
    """Delete the events of batches delivered before `delivered_before`, one batch per transaction
    (so each DELETE is bounded by the relay's batch size), at most `max_batches` batches.

    Touches only events whose batch ClickHouse acknowledged: pending, claimed and dead-lettered
    events are never deleted.
    """
    batches = events = 0
    for _ in range(max_batches):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_NEXT_EXPIRED_BATCH, [delivered_before])
            row = cursor.fetchone()
            if row is None:
                break
            cursor.execute("DELETE FROM eventlog_outbox_event WHERE batch_id = %s", [row[0]])
            events += cursor.rowcount
            cursor.execute("DELETE FROM eventlog_relay_batch WHERE id = %s", [row[0]])
            batches += 1
    return PurgeResult(batches, events)
