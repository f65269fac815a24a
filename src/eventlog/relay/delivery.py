"""The relay: moves committed outbox events into ClickHouse, each exactly once.

The protocol, step by step (docs/design.md gives the argument for each step):

1. Claim: in one short transaction, with the cursor row locked, take the next `batch_size` events
   of the cursor's snapshot window in (txid, id) order, record them as a batch (the window's
   snapshots and the positions before and after) with a fresh random deduplication token, move the
   cursor (or leave the window used up, when the batch took the rest of it), commit. The events'
   rows are not written. From here the batch's content and token never change.
2. Deliver: in a second transaction, lock the batch row (`SKIP LOCKED`: one relay per batch),
   stream its events with COPY and insert them into ClickHouse as one insert carrying the token.
3. Settle: only after ClickHouse acknowledged the insert, mark the batch delivered and commit.
   If ClickHouse is unavailable, the batch stays claimed (its events count as pending), the attempt
   and the error are recorded, and the error is raised to the caller.
4. Isolate poison: if ClickHouse rejects the batch's data, the batch is marked `split` (committed),
   then sent in halves under tokens derived from its own, recursively, until each rejected part is
   one event; those are dead-lettered and the rest delivered, in the same run (poison.py).
5. Recover: every run first delivers batches left claimed by a failed or killed run, unchanged.
   If the lost run's insert had in fact landed, ClickHouse drops the repeat by its token.

This module knows nothing of Celery or Redis: the task and the management command call `relay_outbox`.
Every statement on the outbox runs inside `planner.index_scans()`, so that it reads the rows it
needs whatever PostgreSQL's statistics say (docs/design.md, "Plans").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

import structlog

from eventlog import metrics
from eventlog.errors import ClickHouseError, ClickHouseRejected
from eventlog.outbox.planner import index_scans, outbox_connection
from eventlog.relay.poison import dead_letter, write_isolating_poison

log = structlog.get_logger(__name__)


class BatchSink(Protocol):
    """Where batches go; `EventLogWriter` in production. See its `write_csv` and `write_batch`
    contracts: the same insert, given as CSV text or as Python values column by column."""

    def write_csv(self, block: bytes | bytearray, token: str) -> None: ...

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
    with index_scans() as cursor:
        cursor.execute("SELECT id FROM eventlog_relay_batch WHERE state = 'claimed' ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


def window_condition(low: str, high: str, after_txid: str, after_id: str) -> str:
    """SQL condition for the events that became visible between snapshots `low` and `high` and lie
    after position (after_txid, after_id); each argument is an SQL expression (a column or a
    placeholder). The first line bounds an index range scan on (txid, id).

    Every event before (xmin of `low`, 0) was visible in `low`, so callers keep the position at or
    past that point (`window_start`) and the scan never visits events of earlier windows.
    """
    return f"""
        (txid, id) > ({after_txid}::text::xid8, {after_id}) AND txid < pg_snapshot_xmax({high}::pg_snapshot)
        AND pg_visible_in_snapshot(txid, {high}::pg_snapshot)
        AND NOT pg_visible_in_snapshot(txid, {low}::pg_snapshot)
    """


WINDOW = window_condition("%(low)s", "%(high)s", "%(after_txid)s", "%(after_id)s")
NOTHING_VISIBLE = "1:1:"  # a snapshot in which no transaction is visible: where the first window starts


def window_start(low: str) -> tuple[str, int]:
    """The first position of a window whose `low` snapshot is `low` (ids start at 1)."""
    return low.split(":", 1)[0], 0


@dataclass(frozen=True)
class Window:
    """The relay cursor: the events visible in snapshot `high` but not in `low`, from position
    (after_txid, after_id) on. A window whose `low` is its `high` holds nothing: it is used up,
    and the next claim starts the next window at once."""

    low: str
    high: str
    after_txid: str
    after_id: int

    @classmethod
    def used_up(cls, snapshot: str) -> Window:
        return cls(snapshot, snapshot, *window_start(snapshot))

    @property
    def is_used_up(self) -> bool:
        return self.low == self.high

    def following(self, high: str) -> Window:
        """The next window: every event that became visible after this one's `high`, up to `high`."""
        return Window(self.high, high, *window_start(self.high))


@dataclass(frozen=True)
class Claim:
    """A batch just recorded: its id, its events, and the position of its last event."""

    batch_id: int
    events: int
    last_txid: str
    last_id: int


_LOCK_CURSOR = """
    SELECT low_snapshot, high_snapshot, after_txid::text, after_id FROM eventlog_relay_cursor
    WHERE id = 1 FOR UPDATE
"""
_CREATE_CURSOR = """
    INSERT INTO eventlog_relay_cursor (id, low_snapshot, high_snapshot, after_txid, after_id)
    VALUES (1, %(low)s, %(high)s, %(after_txid)s::text::xid8, %(after_id)s) ON CONFLICT (id) DO NOTHING
"""
_MOVE_CURSOR = """
    UPDATE eventlog_relay_cursor SET low_snapshot = %(low)s, high_snapshot = %(high)s,
        after_txid = %(after_txid)s::text::xid8, after_id = %(after_id)s
    WHERE id = 1
"""
_CLAIM = f"""
    WITH next AS MATERIALIZED (
        SELECT txid, id, created_at FROM eventlog_outbox_event
        WHERE {WINDOW}
        ORDER BY txid, id
        LIMIT %(limit)s
    ),
    last AS (SELECT txid, id FROM next ORDER BY txid DESC, id DESC LIMIT 1)
    INSERT INTO eventlog_relay_batch (token, state, low_snapshot, high_snapshot, after_txid, after_id,
        last_txid, last_id, row_count, oldest_created_at, created_at, claimed_at)
    SELECT gen_random_uuid(), 'claimed', %(low)s, %(high)s, %(after_txid)s::text::xid8, %(after_id)s,
        last.txid, last.id, (SELECT count(*) FROM next), (SELECT min(created_at) FROM next), now(),
        clock_timestamp()
    FROM last
    RETURNING id, row_count, last_txid::text, last_id
"""  # noqa: S608 (built from constants; values are bound)


def claim_batch(batch_size: int) -> int | None:
    """Claim the next `batch_size` events of the cursor's window into a new batch, move the cursor
    past them, and commit. When the window is used up, the next window is every event that became
    visible since. Claims are serialized by the lock on the cursor row; the events are not written.

    Returns the batch id, or None when no committed event is pending.
    """
    with metrics.RELAY_CLAIM_DURATION.time(), index_scans() as cursor:
        window = _lock_cursor(cursor)
        claim = None if window.is_used_up else _claim(cursor, window, batch_size)
        if claim is None:
            cursor.execute("SELECT pg_current_snapshot()::text")  # taken after the lock: see design.md
            window = window.following(cursor.fetchone()[0])
            claim = _claim(cursor, window, batch_size)
        if claim is None or claim.events < batch_size:  # nothing, or the rest: the window is used up
            window = Window.used_up(window.high)
        else:
            window = replace(window, after_txid=claim.last_txid, after_id=claim.last_id)
        cursor.execute(_MOVE_CURSOR, asdict(window))
        return None if claim is None else claim.batch_id


def _lock_cursor(cursor: Any) -> Window:
    cursor.execute(_LOCK_CURSOR)
    row = cursor.fetchone()
    if row is None:  # the first claim ever: every event is in a window after this one
        cursor.execute(_CREATE_CURSOR, asdict(Window.used_up(NOTHING_VISIBLE)))
        cursor.execute(_LOCK_CURSOR)
        row = cursor.fetchone()
    return Window(*row)


def _claim(cursor: Any, window: Window, batch_size: int) -> Claim | None:
    cursor.execute(_CLAIM, {**asdict(window), "limit": batch_size})
    row = cursor.fetchone()
    return None if row is None else Claim(*row)


_LOCK_BATCH = """
    SELECT token, split, row_count, low_snapshot, high_snapshot, after_txid::text, after_id,
        last_txid::text, last_id
    FROM eventlog_relay_batch
    WHERE id = %s AND state = 'claimed'
    FOR UPDATE SKIP LOCKED
"""
_BATCH_EVENTS = f"""
    FROM eventlog_outbox_event
    WHERE {WINDOW} AND (txid, id) <= (%(last_txid)s::text::xid8, %(last_id)s) AND failed_at IS NULL
    ORDER BY txid, id
"""
# A batch travels from COPY to ClickHouse as CSV, with no Python object per event: that takes about
# a quarter of the time of building rows in Python. Every field is quoted, so ClickHouse's CSV reader
# keeps leading and trailing spaces, quotes and line breaks exactly as they are. The time is the UTC
# timestamp's own text, `YYYY-MM-DD HH:MM:SS[.ffffff]` under DateStyle ISO (set for the delivery):
# to_char, formatting each time by a pattern, was a large part of the COPY's work.
DELIVERY_SETTINGS = {"DateStyle": "ISO, MDY"}
_COPY_BATCH = f"""
    COPY (
        SELECT event_id, event_type, (event_date_time AT TIME ZONE 'UTC')::text,
            environment, event_context::text, metadata_version
        {_BATCH_EVENTS}
    ) TO STDOUT (FORMAT csv, FORCE_QUOTE *)
"""
# Row by row, for splitting a rejected batch. event_date_time travels as integer microseconds since
# the epoch (DateTime64(6)'s own ticks), which clickhouse-connect writes without a datetime per row.
_READ_BATCH = f"""
    SELECT id, event_id, event_type, (extract(epoch FROM event_date_time) * 1000000)::bigint,
        environment, event_context::text, metadata_version
    {_BATCH_EVENTS}
"""  # noqa: S608 (built from constants; values are bound)
_BOUNDS = ("low", "high", "after_txid", "after_id", "last_txid", "last_id")


def deliver_batch(batch_id: int, sink: BatchSink) -> RelayResult:
    """Insert a claimed batch into ClickHouse and mark it delivered.

    Returns what was delivered (and dead-lettered), or an empty result when another relay holds
    the batch or it was already delivered. A batch ClickHouse rejects is tried once more, split
    (poison.py). On ClickHouseUnavailable the batch stays claimed, the attempt and the error are
    recorded (and committed), and the error is raised.
    """
    with structlog.contextvars.bound_contextvars(batch_id=batch_id):
        started = time.monotonic()
        attempt = _attempt(batch_id, sink)
        if isinstance(attempt.failure, ClickHouseRejected):
            metrics.RELAY_BATCHES.labels(outcome="rejected").inc()
            # Its code only: a data error's message quotes the rows it failed on (last_error keeps it).
            log.warning(
                "relay batch rejected, isolating the bad events", clickhouse_code=attempt.failure.code
            )
            started = time.monotonic()  # a batch's duration is that of the attempt that delivers it
            attempt = _attempt(batch_id, sink)  # `split` is committed: now sent in halves
        if attempt.failure is not None:
            metrics.RELAY_BATCHES.labels(outcome="unavailable").inc()
            failure = attempt.failure
            log.warning("relay batch not delivered", clickhouse_code=failure.code, error=str(failure))
            failure.batch_id, failure.row_count = batch_id, attempt.row_count
            raise failure
        if attempt.result.batches:
            seconds = time.monotonic() - started
            metrics.count_delivered(attempt.result.events, attempt.result.dead_lettered, seconds)
            log.info("relay batch delivered", events=attempt.result.events, seconds=round(seconds, 3))
        return attempt.result


@dataclass(frozen=True)
class Attempt:
    """One try at a batch: what it delivered, or the ClickHouse error it stopped at."""

    result: RelayResult = RelayResult()
    failure: ClickHouseError | None = None
    row_count: int = 0


def _attempt(batch_id: int, sink: BatchSink) -> Attempt:
    """Lock the batch and send it (whole, or in halves once it is `split`); settle it if ClickHouse
    took it, or record the failure. An empty Attempt when another relay holds the batch."""
    own_transaction = (
        not outbox_connection().in_atomic_block
    )  # else the settle commits with the caller's work
    with index_scans(DELIVERY_SETTINGS) as cursor:
        cursor.execute(_LOCK_BATCH, [batch_id])
        locked = cursor.fetchone()
        if locked is None:
            return Attempt()
        token, split, row_count = str(locked[0]), locked[1], locked[2]
        bounds = dict(zip(_BOUNDS, locked[3:], strict=True))
        poison: dict[int, ClickHouseRejected] = {}
        try:
            if split:
                cursor.execute(_READ_BATCH, bounds)
                poison = write_isolating_poison(sink, cursor.fetchall(), token)
            else:
                sink.write_csv(_copy_csv(cursor, bounds), token)
        except ClickHouseError as exc:
            _record_failure(cursor, batch_id, exc)
            return Attempt(failure=exc, row_count=row_count)
        dead_letter(cursor, batch_id, poison)
        _settle(cursor, batch_id, asynchronous_commit=own_transaction)
    result = RelayResult(batches=1, events=row_count - len(poison), dead_lettered=len(poison))
    return Attempt(result=result, row_count=row_count)


def _copy_csv(cursor: Any, bounds: dict[str, Any]) -> bytearray:
    # Grown in place: joining the chunks held a copy of every chunk beside the joined batch.
    block = bytearray()
    with cursor.cursor.copy(_COPY_BATCH, bounds) as copy:  # psycopg's own cursor, under Django's
        for chunk in copy:
            block += chunk
    return block


# Adds the events of the one-row CTE `counted` to the count of delivered events the outbox holds.
# The count is kept beside the batches so that reading it costs one row, not a sum over every
# delivered batch. Settling adds a batch's events and the purge subtracts them, each in the
# statement that changes the batch row, so both take the count's row last.
COUNT_PROCESSED = """
    INSERT INTO eventlog_processed_count (id, events) SELECT 1, events FROM counted
    ON CONFLICT (id) DO UPDATE SET events = eventlog_processed_count.events + excluded.events
"""
# clock_timestamp(), not now(): the moment ClickHouse acknowledged, not the transaction's start.
_SETTLE = f"""
    WITH counted AS (
        UPDATE eventlog_relay_batch SET state = 'delivered', delivered_at = clock_timestamp(),
            attempts = attempts + 1
        WHERE id = %s RETURNING row_count AS events
    )
    {COUNT_PROCESSED}
"""  # noqa: S608 (built from constants; values are bound)


def _settle(cursor: Any, batch_id: int, asynchronous_commit: bool) -> None:
    if asynchronous_commit:
        # The settle's commit need not wait for its WAL to reach the disk. If PostgreSQL loses it in
        # a crash, the batch is `claimed` again and resent with its token, which ClickHouse drops:
        # the case of a relay killed after the insert (docs/design.md). The next synchronous commit
        # (the next claim, the purge), or the WAL writer within a second, makes it durable. Only
        # the settle: a batch's `split` must be on disk before its halves are sent.
        cursor.execute("SET LOCAL synchronous_commit = off")
    cursor.execute(_SETTLE, [batch_id])


def _record_failure(cursor: Any, batch_id: int, exc: ClickHouseError) -> None:
    cursor.execute(
        "UPDATE eventlog_relay_batch SET attempts = attempts + 1, last_error = %s,"
        " split = split OR %s WHERE id = %s",
        [str(exc)[:2000], isinstance(exc, ClickHouseRejected), batch_id],
    )
