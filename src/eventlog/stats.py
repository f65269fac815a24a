"""Outbox figures for the stats endpoint (and, later, metrics). Reads PostgreSQL only."""

from __future__ import annotations

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
