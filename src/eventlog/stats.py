"""Outbox figures for the stats endpoint (and, later, metrics). Reads PostgreSQL only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection

# Each count uses a partial index or the batch table, never a scan of processed events.
_STATS = """
    SELECT
        (SELECT count(*) FROM eventlog_outbox_event WHERE batch_id IS NULL AND failed_at IS NULL),
        (SELECT coalesce(sum(row_count), 0) FROM eventlog_relay_batch WHERE state = 'claimed'),
        (SELECT coalesce(sum(row_count), 0) FROM eventlog_relay_batch WHERE state = 'delivered'),
        (SELECT count(*) FROM eventlog_outbox_event WHERE failed_at IS NOT NULL),
        (SELECT created_at FROM eventlog_outbox_event
            WHERE batch_id IS NULL AND failed_at IS NULL ORDER BY id LIMIT 1),
        (SELECT min(oldest_created_at) FROM eventlog_relay_batch WHERE state = 'claimed'),
        now()
"""


def outbox_stats() -> dict[str, Any]:
    """Counts of pending (unclaimed or in an undelivered batch), processed and failed events, and
    the age of the oldest pending event in seconds (None when nothing is pending)."""
    with connection.cursor() as cursor:
        cursor.execute(_STATS)
        unclaimed, claimed, processed, failed, oldest_unclaimed, oldest_claimed, now = cursor.fetchone()
    oldest = min((t for t in (oldest_unclaimed, oldest_claimed) if t is not None), default=None)
    return {
        "pending": int(unclaimed) + int(claimed),
        "processed": int(processed),
        "failed": int(failed),
        "oldest_pending_age_seconds": None if oldest is None else max((now - oldest).total_seconds(), 0.0),
    }


def delivery_latencies(created_since: datetime) -> list[float]:
    """Seconds from commit to ClickHouse acknowledgement for each event created since
    `created_since` whose batch was delivered. An event's `created_at` is its transaction's start,
    so this slightly overstates latency; acknowledgement is when its batch was marked delivered."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT extract(epoch FROM b.delivered_at - e.created_at)::float8"
            " FROM eventlog_outbox_event e JOIN eventlog_relay_batch b ON b.id = e.batch_id"
            " WHERE e.created_at >= %s AND b.state = 'delivered'",
            [created_since],
        )
        return [row[0] for row in cursor.fetchall()]
