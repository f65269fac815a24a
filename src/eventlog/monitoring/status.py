"""The figures of the status page, for a person: read from PostgreSQL only (the web process never
opens ClickHouse), each query bounded whatever the size of the outbox."""

from __future__ import annotations

from typing import Any

from eventlog.monitoring.stats import outbox_stats
from eventlog.outbox.planner import index_scans

RECENT_BATCHES = 20
RECENT_DEAD_LETTERS = 20
ERROR_PREVIEW_CHARS = 300

# Delivered in the last minute, from the newest batches (at most 1,000 of them: more than a relay
# delivers in a minute at the default interval, so the sum is exact in practice).
_DELIVERED_LAST_MINUTE = """
    SELECT coalesce(sum(row_count), 0) FROM (
        SELECT row_count, delivered_at FROM eventlog_relay_batch ORDER BY id DESC LIMIT 1000
    ) newest
    WHERE delivered_at > now() - interval '1 minute'
"""
_BATCHES = """
    SELECT id, state, row_count, attempts, split, created_at, delivered_at,
        extract(epoch FROM delivered_at - created_at)::float8, left(last_error, %s)
    FROM eventlog_relay_batch ORDER BY id DESC LIMIT %s
"""
_DEAD_LETTERS = """
    SELECT id, event_id, event_type, failed_at, rejections, left(last_error, %s)
    FROM eventlog_outbox_event WHERE failed_at IS NOT NULL ORDER BY id DESC LIMIT %s
"""


def status_snapshot() -> dict[str, Any]:
    """Pending events, lag, deliveries in the last minute, the newest batches and dead letters."""
    stats = outbox_stats()
    with index_scans() as cursor:
        cursor.execute(_DELIVERED_LAST_MINUTE)
        delivered_last_minute = int(cursor.fetchone()[0])
        cursor.execute(_BATCHES, [ERROR_PREVIEW_CHARS, RECENT_BATCHES])
        batches = [
            dict(zip(("id", "state", "events", "attempts", "split", "claimed_at", "delivered_at",
                      "seconds", "last_error"), row, strict=True))
            for row in cursor.fetchall()
        ]  # fmt: skip
        cursor.execute(_DEAD_LETTERS, [ERROR_PREVIEW_CHARS, RECENT_DEAD_LETTERS])
        dead_letters = [
            dict(zip(("id", "event_id", "event_type", "failed_at", "rejections", "error"), row, strict=True))
            for row in cursor.fetchall()
        ]
    return {
        "pending": stats["pending"],
        "pending_is_estimate": stats["pending_is_estimate"],
        "lag_seconds": stats["oldest_pending_age_seconds"] or 0.0,
        "dead_letters": stats["failed"],
        "delivered_last_minute": delivered_last_minute,
        "batches": batches,
        "recent_dead_letters": dead_letters,
    }
