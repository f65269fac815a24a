"""Removing processed events from the outbox once they are old enough, in bounded steps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from eventlog.outbox.planner import index_scans
from eventlog.relay.delivery import COUNT_PROCESSED, WINDOW

_NEXT_EXPIRED_BATCH = """
    SELECT id, low_snapshot, high_snapshot, after_txid::text, after_id, last_txid::text, last_id
    FROM eventlog_relay_batch
    WHERE state = 'delivered' AND delivered_at < %s
    ORDER BY delivered_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
"""


_DELETE_BATCH_EVENTS = f"""
    DELETE FROM eventlog_outbox_event
    WHERE {WINDOW} AND (txid, id) <= (%(last_txid)s::text::xid8, %(last_id)s) AND failed_at IS NULL
"""  # noqa: S608 (built from constants; values are bound)


_DELETE_BATCH = f"""
    WITH counted AS (DELETE FROM eventlog_relay_batch WHERE id = %s RETURNING -row_count AS events)
    {COUNT_PROCESSED}
"""  # noqa: S608 (built from constants; values are bound)


@dataclass(frozen=True)
class PurgeResult:
    batches: int = 0
    events: int = 0


def purge_processed(delivered_before: datetime, max_batches: int) -> PurgeResult:
    """Delete the events of batches delivered before `delivered_before`, one batch per transaction
    (so each DELETE is bounded by the relay's batch size), at most `max_batches` batches.

    Touches only events in the range of a batch ClickHouse acknowledged: pending, claimed and
    dead-lettered events are never deleted.
    """
    batches = events = 0
    for _ in range(max_batches):
        with index_scans() as cursor:
            cursor.execute(_NEXT_EXPIRED_BATCH, [delivered_before])
            row = cursor.fetchone()
            if row is None:
                break
            batch_id, *bounds = row
            names = ("low", "high", "after_txid", "after_id", "last_txid", "last_id")
            cursor.execute(_DELETE_BATCH_EVENTS, dict(zip(names, bounds, strict=True)))
            events += cursor.rowcount
            cursor.execute(_DELETE_BATCH, [batch_id])
            batches += 1
    return PurgeResult(batches, events)
