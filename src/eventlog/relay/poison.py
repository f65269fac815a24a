"""Poison isolation: finding the events ClickHouse rejects in a batch, and setting them aside.

A batch ClickHouse rejects for its data (a parse, type or constraint error: ClickHouseRejected) is
written again in halves, each half rejected again split again, until every rejected part is one
event. Those events become dead letters (kept in the outbox with their error, out of every batch)
and the rest of the batch is delivered, in the same run (delivery.py). A fix is followed by
`replay_dead_letters`, which makes them pending again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import structlog

from eventlog.errors import ClickHouseRejected
from eventlog.outbox.planner import index_scans

log = structlog.get_logger(__name__)

Row = tuple[Any, ...]  # (id, *clickhouse.COLUMNS)


class ColumnSink(Protocol):
    """Where the halves go: the relay's sink (relay.BatchSink), by its `write_batch`."""

    def write_batch(self, columns: list[list[Any]], token: str) -> None: ...


def write_rows(sink: ColumnSink, rows: Sequence[Row], token: str) -> None:
    """Write the rows (without their outbox id) as one insert, column by column."""
    if rows:
        sink.write_batch([list(column) for column in zip(*rows, strict=True)][1:], token=token)


def write_isolating_poison(
    sink: ColumnSink, rows: Sequence[Row], token: str
) -> dict[int, ClickHouseRejected]:
    """Write the rows in halves, splitting each rejected half again, until every rejected part is a
    single event. Returns those events' ids with their rejection.

    Halves are written under `token/0` and `token/1` (recursively), so running this again on the
    same rows repeats exactly the same inserts and ClickHouse drops the ones that already landed.
    Raises ClickHouseUnavailable if ClickHouse fails for another reason on the way.
    """
    middle = len(rows) // 2
    poison: dict[int, ClickHouseRejected] = {}
    for index, part in enumerate((rows[:middle], rows[middle:])):
        if not part:
            continue
        part_token = f"{token}/{index}"
        try:
            write_rows(sink, part, part_token)
        except ClickHouseRejected as exc:
            if len(part) == 1:
                poison[part[0][0]] = exc
            else:
                poison.update(write_isolating_poison(sink, part, part_token))
    return poison


def dead_letter(cursor: Any, batch_id: int, poison: dict[int, ClickHouseRejected]) -> None:
    """Move rejected events out of the batch into the dead-letter state, with their error."""
    if not poison:
        return
    cursor.executemany(
        "UPDATE eventlog_outbox_event SET failed_at = now(), last_error = %s, rejections = rejections + 1"
        " WHERE id = %s",
        [(str(exc)[:2000], row_id) for row_id, exc in poison.items()],
    )
    cursor.execute(
        "UPDATE eventlog_relay_batch SET row_count = row_count - %s WHERE id = %s", [len(poison), batch_id]
    )
    log.warning("events dead-lettered", events=len(poison))


_REPLAY = """
    WITH dead AS (
        DELETE FROM eventlog_outbox_event
        WHERE failed_at IS NOT NULL AND (%(all)s OR event_id = ANY(%(event_ids)s::uuid[]))
        RETURNING event_id, event_type, event_date_time, environment, event_context, metadata_version,
            last_error, rejections
    )
    INSERT INTO eventlog_outbox_event (event_id, event_type, event_date_time, environment, event_context,
        metadata_version, last_error, rejections)
    SELECT * FROM dead
"""


def replay_dead_letters(event_ids: Sequence[Any] | None = None) -> int:
    """Make dead letters pending again (all of them, or those with the given event ids), so the
    next run relays them. Returns how many were replayed; replaying a replayed event does nothing.

    A replayed event is written again, in this transaction: that puts it after the relay cursor,
    with its error and rejection count kept for the record.
    """
    with index_scans() as cursor:
        cursor.execute(_REPLAY, {"all": event_ids is None, "event_ids": list(event_ids or [])})
        replayed: int = cursor.rowcount
        return replayed
