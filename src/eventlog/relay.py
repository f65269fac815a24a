"""The relay: moves committed outbox events into ClickHouse, each exactly once.

The protocol, step by step (docs/design.md gives the argument for each step):

1. Claim: in one short transaction, take up to `batch_size` pending events in id order with
   `FOR UPDATE SKIP LOCKED`, stamp them with a new batch id, and record the batch with a fresh
   random deduplication token. Commit. From here the batch's content and token never change.
2. Deliver: in a second transaction, lock the batch row (`SKIP LOCKED`: one relay per batch),
   read its events in id order and insert them into ClickHouse as one insert carrying the token.
3. Settle: only after ClickHouse acknowledged the insert, mark the batch delivered and commit.
   If the insert fails, the batch stays claimed (its events count as pending), the attempt and
   the error are recorded, and the error is raised to the caller.
4. Recover: every run first delivers batches left claimed by a failed or killed run, unchanged.
   If the lost run's insert had in fact landed, ClickHouse drops the repeat by its token.

This module knows nothing of Celery: the task and the management command both call `relay_outbox`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from django.db import connection, transaction

from eventlog.errors import ClickHouseError

log = logging.getLogger(__name__)


class BatchSink(Protocol):
    """Where batches go; `EventLogWriter` in production. See its `write_batch` contract."""

    def write_batch(self, columns: list[list[Any]], token: str) -> None: ...


@dataclass(frozen=True)
class RelayResult:
    batches: int = 0
    events: int = 0

    def __add__(self, other: RelayResult) -> RelayResult:
        return RelayResult(self.batches + other.batches, self.events + other.events)


def relay_outbox(sink: BatchSink, batch_size: int, max_batches: int) -> RelayResult:
    """Deliver unfinished batches, then claim and deliver new ones until the outbox has no pending
    events or `max_batches` new batches were delivered.

    Returns what was delivered. Raises ClickHouseError on the first failed insert: that batch stays
    claimed and the next run resends it unchanged; batches delivered before it stay delivered.
    """
    result = RelayResult()
    for batch_id in unfinished_batch_ids():
        result += deliver_batch(batch_id, sink)
    for _ in range(max_batches):
        new_batch_id = claim_batch(batch_size)
        if new_batch_id is None:
            break
        delivered = deliver_batch(new_batch_id, sink)
        result += delivered
        if delivered.events < batch_size:
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
    INSERT INTO eventlog_relay_batch
        (id, token, state, row_count, oldest_created_at, created_at, attempts, last_error)
    SELECT %(batch_id)s, gen_random_uuid(), 'claimed', count(*), min(created_at), now(), 0, ''
    FROM claimed
    HAVING count(*) > 0
"""


def claim_batch(batch_size: int) -> int | None:
    """Claim up to `batch_size` pending events into a new batch and commit it.

    Returns the batch id, or None when no pending event was free to claim.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('eventlog_relay_batch', 'id'))")
        batch_id = cursor.fetchone()[0]
        cursor.execute(_CLAIM, {"batch_id": batch_id, "limit": batch_size})
        return batch_id if cursor.rowcount == 1 else None


_LOCK_BATCH = """
    SELECT token FROM eventlog_relay_batch WHERE id = %s AND state = 'claimed' FOR UPDATE SKIP LOCKED
"""
_READ_BATCH = """
    SELECT event_id, event_type, event_date_time, environment, event_context::text, metadata_version
    FROM eventlog_outbox_event
    WHERE batch_id = %s AND failed_at IS NULL
    ORDER BY id
"""


def deliver_batch(batch_id: int, sink: BatchSink) -> RelayResult:
    """Insert a claimed batch into ClickHouse and mark it delivered.

    Returns RelayResult(1, n) on delivery, or an empty result when another relay holds the batch
    or it was already delivered. On ClickHouseError the batch stays claimed, the attempt and the
    error are recorded (and committed), and the error is raised.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_LOCK_BATCH, [batch_id])
        row = cursor.fetchone()
        if row is None:
            return RelayResult()
        cursor.execute(_READ_BATCH, [batch_id])
        columns = [list(column) for column in zip(*cursor.fetchall(), strict=True)]
        failure = _write(sink, columns, token=str(row[0]))
        cursor.execute(
            "UPDATE eventlog_relay_batch SET attempts = attempts + 1, last_error = %s,"
            " state = %s, delivered_at = CASE WHEN %s THEN now() END WHERE id = %s",
            [str(failure or "")[:2000], "claimed" if failure else "delivered", failure is None, batch_id],
        )
    if failure is not None:
        log.warning("relay batch %s not delivered: %s", batch_id, failure)
        raise failure
    return RelayResult(batches=1, events=len(columns[0]) if columns else 0)


def _write(sink: BatchSink, columns: list[list[Any]], token: str) -> ClickHouseError | None:
    """Write the batch; the ClickHouse error, if any, is returned so that it can be recorded."""
    if not columns:
        return None  # nothing left to send: every event of the batch was dead-lettered
    try:
        sink.write_batch(columns, token=token)
    except ClickHouseError as exc:
        return exc
    return None
