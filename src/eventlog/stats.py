"""Outbox figures for the stats endpoint (and, later, metrics). Reads PostgreSQL only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection

from eventlog.relay import NOTHING_VISIBLE, WINDOW, window_condition, window_start

_CURSOR = """
    SELECT low_snapshot, high_snapshot, after_txid::text, after_id FROM eventlog_relay_cursor WHERE id = 1
"""
# The backlog: the rest of the cursor's window, and everything not yet visible in its `high` snapshot.
# Both are index range scans of the backlog, never of the processed events.
_BACKLOG = f"""
    SELECT count(*), min(created_at) FROM (
        SELECT created_at FROM eventlog_outbox_event WHERE {WINDOW}
        UNION ALL
        SELECT created_at FROM eventlog_outbox_event
        WHERE txid >= pg_snapshot_xmin(%(high)s::pg_snapshot)
            AND NOT pg_visible_in_snapshot(txid, %(high)s::pg_snapshot)
    ) backlog
"""  # noqa: S608 (built from constants; values are bound)
_BATCHES = """
    SELECT
        (SELECT coalesce(sum(row_count), 0) FROM eventlog_relay_batch WHERE state = 'claimed'),
        (SELECT coalesce(sum(row_count), 0) FROM eventlog_relay_batch WHERE state = 'delivered'),
        (SELECT count(*) FROM eventlog_outbox_event WHERE failed_at IS NOT NULL),
        (SELECT min(oldest_created_at) FROM eventlog_relay_batch WHERE state = 'claimed'),
        now()
"""


def outbox_stats() -> dict[str, Any]:
    """Counts of pending (unclaimed or in an undelivered batch), processed and failed events, and
    the age of the oldest pending event in seconds (None when nothing is pending)."""
    with connection.cursor() as cursor:
        cursor.execute(_CURSOR)
        window = cursor.fetchone() or (NOTHING_VISIBLE, NOTHING_VISIBLE, *window_start(NOTHING_VISIBLE))
        cursor.execute(_BACKLOG, dict(zip(("low", "high", "after_txid", "after_id"), window, strict=True)))
        unclaimed, oldest_unclaimed = cursor.fetchone()
        cursor.execute(_BATCHES)
        claimed, processed, failed, oldest_claimed, now = cursor.fetchone()
    oldest = min((t for t in (oldest_unclaimed, oldest_claimed) if t is not None), default=None)
    return {
        "pending": int(unclaimed) + int(claimed),
        "processed": int(processed),
        "failed": int(failed),
        "oldest_pending_age_seconds": None if oldest is None else max((now - oldest).total_seconds(), 0.0),
    }


_LATENCIES = f"""
    SELECT extract(epoch FROM b.delivered_at - e.created_at)::float8
    FROM eventlog_relay_batch b, LATERAL (
        SELECT created_at FROM eventlog_outbox_event
        WHERE {window_condition("b.low_snapshot", "b.high_snapshot", "b.after_txid::text", "b.after_id")}
            AND (txid, id) <= (b.last_txid, b.last_id)
    ) e
    WHERE b.state = 'delivered' AND b.delivered_at >= %s AND e.created_at >= %s
"""  # noqa: S608 (built from constants; values are bound)


def delivery_latencies(created_since: datetime) -> list[float]:
    """Seconds from commit to ClickHouse acknowledgement for each event created since
    `created_since` whose batch was delivered. An event's `created_at` is its transaction's start,
    so this slightly overstates latency; acknowledgement is when its batch was marked delivered."""
    with connection.cursor() as cursor:
        cursor.execute(_LATENCIES, [created_since, created_since])
        return [row[0] for row in cursor.fetchall()]


def processed_events() -> int:
    """Events delivered so far (and not yet purged): a sum over batches, cheap enough to poll."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(row_count), 0) FROM eventlog_relay_batch WHERE state = 'delivered'"
        )
        return int(cursor.fetchone()[0])
