"""The relay: moves committed outbox events into ClickHouse, each exactly once.

The protocol, step by step (docs/design.md gives the argument for each step):

1. Claim: in one short transaction, take up to `batch_size` pending events in id order with
   `FOR UPDATE SKIP LOCKED`, stamp them with a new batch id, and record the batch with a fresh
   random deduplication token. Commit. From here the batch's content and token never change.
2. Deliver: in a second transaction, lock the batch row (`SKIP LOCKED`: one relay per batch),
   read its events in id order and insert them into ClickHouse as one insert carrying the token.
3. Settle: only after ClickHouse acknowledged the insert, mark the batch delivered and commit.
   If ClickHouse is unavailable, the batch stays claimed (its events count as pending), the attempt
   and the error are recorded, and the error is raised to the caller.
4. Isolate poison: if ClickHouse rejects the batch's data, the batch is marked `split` (committed),
   then sent in halves under tokens derived from its own, recursively, until each rejected part is
   one event; those are dead-lettered and the rest delivered, in the same run.
5. Recover: every run first delivers batches left claimed by a failed or killed run, unchanged.
   If the lost run's insert had in fact landed, ClickHouse drops the repeat by its token.

This module knows nothing of Celery or Redis: the task and the management command call `relay_outbox`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.db import connection, transaction

from eventlog.errors import ClickHouseError, ClickHouseRejected

log = logging.getLogger(__name__)

Row = tuple[Any, ...]  # (id, *clickhouse.COLUMNS)


class BatchSink(Protocol):
    """Where batches go; `EventLogWriter` in production. See its `write_batch` contract."""

    def write_batch(self, columns: list[list[Any]], token: str) -> None: ...


@dataclass(frozen=True)
class RelayResult:
    batches: int = 0
    events: int = 0
    dead_lettered: int = 0

    def __add__(self, other: RelayResult) -> RelayResult:
        return RelayResult(
            self.batches + other.batches, self.events + other.events, self.dead_lettered + other.dead_lettered
        )


def relay_outbox(
    sink: BatchSink,
    batch_size: int,
    max_batches: int,
    before_claim: Callable[[int], None] | None = None,
) -> RelayResult:
    """Deliver unfinished batches, then claim and deliver new ones until the outbox has no pending
    events or `max_batches` new batches were delivered. `before_claim(batch_size)` runs before each
    claim (to pace the relay or renew a lease) and may block.

    Returns what was delivered. Raises ClickHouseUnavailable on the first failed insert: that batch
    stays claimed and the next run resends it unchanged; batches delivered before it stay delivered.
    """
    result = RelayResult()
    for batch_id in unfinished_batch_ids():
        result += deliver_batch(batch_id, sink)
    for _ in range(max_batches):
        if before_claim is not None:
            before_claim(batch_size)
        new_batch_id = claim_batch(batch_size)
        if new_batch_id is None:
            break
        delivered = deliver_batch(new_batch_id, sink)
        result += delivered
        if delivered.events + delivered.dead_lettered < batch_size:
            break
    return result


def unfinished_batch_ids() -> list[int]:
    """Batches claimed but not delivered, oldest first."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM eventlog_relay_batch WHERE state = 'claimed' ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


_CLAIM = """
    WITH claimed AS (
        UPDATE eventlog_outbox_event SET batch_id = %(batch_id)s
        WHERE id IN (
            SELECT id FROM eventlog_outbox_event
            WHERE batch_id IS NULL AND failed_at IS NULL
            ORDER BY id
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        )
        RETURNING created_at
    )
    INSERT INTO eventlog_relay_batch (id, token, state, row_count, oldest_created_at, created_at)
    SELECT %(batch_id)s, gen_random_uuid(), 'claimed', count(*), min(created_at), now()
    FROM claimed
    HAVING count(*) > 0
"""


def claim_batch(batch_size: int) -> int | None:
    """Claim up to `batch_size` pending events into a new batch and commit it.

    Returns the batch id, or None when no pending event was free to claim.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('eventlog_relay_batch', 'id'))")
        batch_id: int = cursor.fetchone()[0]
        cursor.execute(_CLAIM, {"batch_id": batch_id, "limit": batch_size})
        return batch_id if cursor.rowcount == 1 else None


_LOCK_BATCH = """
    SELECT token, split FROM eventlog_relay_batch
    WHERE id = %s AND state = 'claimed'
    FOR UPDATE SKIP LOCKED
"""
# event_date_time travels as integer microseconds since the epoch (DateTime64(6)'s own ticks): parsing
# a Python datetime per row and formatting it again was a third of the relay's time.
_READ_BATCH = """
    SELECT id, event_id, event_type, (extract(epoch FROM event_date_time) * 1000000)::bigint,
        environment, event_context::text, metadata_version
    FROM eventlog_outbox_event
    WHERE batch_id = %s
    ORDER BY id
"""


def deliver_batch(batch_id: int, sink: BatchSink) -> RelayResult:
    """Insert a claimed batch into ClickHouse and mark it delivered.

    Returns what was delivered (and dead-lettered), or an empty result when another relay holds
    the batch or it was already delivered. On ClickHouseUnavailable the batch stays claimed, the
    attempt and the error are recorded (and committed), and the error is raised.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_LOCK_BATCH, [batch_id])
        locked = cursor.fetchone()
        if locked is None:
            return RelayResult()
        token, split = str(locked[0]), locked[1]
        cursor.execute(_READ_BATCH, [batch_id])
        rows: list[Row] = cursor.fetchall()
        poison: dict[int, ClickHouseRejected] = {}
        try:
            if split:
                poison = write_isolating_poison(sink, rows, token)
            else:
                write_rows(sink, rows, token)
        except ClickHouseError as exc:
            failure = exc
            _record_failure(cursor, batch_id, exc)
        else:
            _dead_letter(cursor, batch_id, poison)
            _settle(cursor, batch_id)
            return RelayResult(batches=1, events=len(rows) - len(poison), dead_lettered=len(poison))
    if isinstance(failure, ClickHouseRejected):
        # `split` is committed now, so no relay will send this batch whole again.
        log.warning("relay batch %s rejected by ClickHouse, isolating the bad events: %s", batch_id, failure)
        return deliver_batch(batch_id, sink)
    log.warning("relay batch %s not delivered: %s", batch_id, failure)
    raise failure


def write_rows(sink: BatchSink, rows: Sequence[Row], token: str) -> None:
    """Write the rows (without their outbox id) as one insert, column by column."""
    if rows:
        sink.write_batch([list(column) for column in zip(*rows, strict=True)][1:], token=token)


def write_isolating_poison(sink: BatchSink, rows: Sequence[Row], token: str) -> dict[int, ClickHouseRejected]:
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


def _settle(cursor: Any, batch_id: int) -> None:
    cursor.execute(
        "UPDATE eventlog_relay_batch SET state = 'delivered', delivered_at = now(), attempts = attempts + 1"
        " WHERE id = %s",
        [batch_id],
    )


def _record_failure(cursor: Any, batch_id: int, exc: ClickHouseError) -> None:
    cursor.execute(
        "UPDATE eventlog_relay_batch SET attempts = attempts + 1, last_error = %s,"
        " split = split OR %s WHERE id = %s",
        [str(exc)[:2000], isinstance(exc, ClickHouseRejected), batch_id],
    )


def _dead_letter(cursor: Any, batch_id: int, poison: dict[int, ClickHouseRejected]) -> None:
    """Move rejected events out of the batch into the dead-letter state, with their error."""
    if not poison:
        return
    cursor.executemany(
        "UPDATE eventlog_outbox_event SET failed_at = now(), batch_id = NULL, last_error = %s,"
        " rejections = rejections + 1 WHERE id = %s",
        [(str(exc)[:2000], row_id) for row_id, exc in poison.items()],
    )
    cursor.execute(
        "UPDATE eventlog_relay_batch SET row_count = row_count - %s WHERE id = %s", [len(poison), batch_id]
    )
    log.warning("relay batch %s: %d event(s) dead-lettered", batch_id, len(poison))


def replay_dead_letters(event_ids: Sequence[Any] | None = None) -> int:
    """Make dead letters pending again (all of them, or those with the given event ids), so the
    next run relays them. Returns how many were replayed; replaying a replayed event does nothing."""
    with connection.cursor() as cursor:
        if event_ids is None:
            cursor.execute("UPDATE eventlog_outbox_event SET failed_at = NULL WHERE failed_at IS NOT NULL")
        else:
            cursor.execute(
                "UPDATE eventlog_outbox_event SET failed_at = NULL"
                " WHERE failed_at IS NOT NULL AND event_id = ANY(%s)",
                [list(event_ids)],
            )
        replayed: int = cursor.rowcount
        return replayed
