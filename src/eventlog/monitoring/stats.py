"""Outbox figures for the stats endpoint, the metrics scrape, readiness and the status page. Reads
PostgreSQL only; every statement reads a bounded number of rows however large the outbox or its
backlog (planner.index_scans, docs/design.md "Plans")."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from eventlog.outbox.planner import index_scans, outbox_connection
from eventlog.relay.delivery import NOTHING_VISIBLE, WINDOW, Window, window_condition

# Backlogs up to this size are counted exactly; a larger one is estimated (`pending_is_estimate`).
# Counting is an index range scan of the whole backlog: a backlog of a million would be read in full
# on every stats request, scrape and status page reload.
EXACT_PENDING_LIMIT = 10_000

_CURSOR = """
    SELECT low_snapshot, high_snapshot, after_txid::text, after_id FROM eventlog_relay_cursor WHERE id = 1
"""
# The unclaimed backlog: the rest of the cursor's window, and what is not yet visible in its `high`
# snapshot; of each, at most `limit` events, the first in relay order (so the oldest are among them):
# one more than EXACT_PENDING_LIMIT, so that reaching it tells a count from the start of an estimate.
_BACKLOG = f"""
    WITH rest_of_window AS (
        SELECT id, created_at FROM eventlog_outbox_event WHERE {WINDOW}
        ORDER BY txid, id LIMIT %(limit)s
    ),
    not_yet_visible AS (
        SELECT id, created_at FROM eventlog_outbox_event
        WHERE txid >= pg_snapshot_xmin(%(high)s::pg_snapshot)
            AND NOT pg_visible_in_snapshot(txid, %(high)s::pg_snapshot)
        ORDER BY txid, id LIMIT %(limit)s
    ),
    backlog AS (SELECT * FROM rest_of_window UNION ALL SELECT * FROM not_yet_visible)
    SELECT (SELECT count(*) FROM rest_of_window), (SELECT count(*) FROM not_yet_visible),
        (SELECT min(created_at) FROM backlog), (SELECT max(id) FROM rest_of_window),
        (SELECT max(id) FROM not_yet_visible), (SELECT max(id) FROM eventlog_outbox_event)
"""  # noqa: S608 (built from constants; values are bound)
_PROCESSED = "coalesce((SELECT events FROM eventlog_processed_count WHERE id = 1), 0)"
_BATCHES = f"""
    SELECT
        (SELECT coalesce(sum(row_count), 0) FROM eventlog_relay_batch WHERE state = 'claimed'),
        {_PROCESSED},
        (SELECT count(*) FROM eventlog_outbox_event WHERE failed_at IS NOT NULL),
        (SELECT min(oldest_created_at) FROM eventlog_relay_batch WHERE state = 'claimed'),
        now()
"""  # noqa: S608 (built from constants)


def outbox_stats() -> dict[str, Any]:
    """Counts of pending (unclaimed or in an undelivered batch), processed and failed events, and
    the age in seconds of the oldest pending event (None when nothing is pending).

    A backlog of more than EXACT_PENDING_LIMIT unclaimed events is estimated, and then
    `pending_is_estimate` is True: the events counted, plus every outbox id taken after the largest
    id the count that stopped short read (`_unclaimed`). It is never below the events counted, and
    it also counts the ids that rolled-back transactions and skipped duplicates took. The age is
    then that of the oldest of the next EXACT_PENDING_LIMIT events in relay order.
    """
    with index_scans() as cursor:
        cursor.execute(_CURSOR)
        found = cursor.fetchone()
        window = Window(*found) if found else Window.used_up(NOTHING_VISIBLE)
        cursor.execute(_BACKLOG, {**asdict(window), "limit": EXACT_PENDING_LIMIT + 1})
        in_window, not_visible, oldest_unclaimed, *last_ids = cursor.fetchone()
        cursor.execute(_BATCHES)
        claimed, processed, failed, oldest_claimed, now = cursor.fetchone()
    estimated = max(in_window, not_visible) > EXACT_PENDING_LIMIT
    unclaimed = _unclaimed(in_window, not_visible, *last_ids)
    oldest = min((t for t in (oldest_unclaimed, oldest_claimed) if t is not None), default=None)
    return {
        "pending": int(unclaimed) + int(claimed),
        "pending_is_estimate": estimated,
        "processed": int(processed),
        "failed": int(failed),
        "oldest_pending_age_seconds": None if oldest is None else max((now - oldest).total_seconds(), 0.0),
    }


def _unclaimed(
    in_window: int,
    not_visible: int,
    last_in_window: int | None,
    last_not_visible: int | None,
    newest_id: int | None,
) -> int:
    """The events counted, and when a count stopped short, the ids past the largest one it read:
    what the backlog holds beyond the rows read, if every id taken since is an unclaimed event.

    When the window's count stopped short, the ids past its last row are estimated whatever the
    other count read: events committed after the window's snapshot mostly have larger ids than
    the window's, so they are among those ids (adding them again would count them twice), and
    the ids between the window's last row read and theirs are unread events of the window.
    """
    newest = newest_id or 0
    if in_window > EXACT_PENDING_LIMIT:  # never below the events counted, either count's
        return max(in_window + max(newest - (last_in_window or 0), 0), in_window + not_visible)
    if not_visible > EXACT_PENDING_LIMIT:
        return in_window + not_visible + max(newest - (last_not_visible or 0), 0)
    return in_window + not_visible


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
    with outbox_connection().cursor() as cursor:
        cursor.execute(_LATENCIES, [created_since, created_since])
        return [row[0] for row in cursor.fetchall()]


def processed_events() -> int:
    """Events delivered so far and not yet purged: one row, cheap enough to poll."""
    with outbox_connection().cursor() as cursor:
        cursor.execute(f"SELECT {_PROCESSED}")
        return int(cursor.fetchone()[0])
