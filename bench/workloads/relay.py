"""relay_drain: a backlog drained into ClickHouse by our relay, beside the seed-literal relay and the
floor on the very same rows; and the worker's peak memory while it drains.

The idealized case: one producer seeds the backlog into an empty outbox, which is then vacuumed and
analyzed, so that every relay reads the same well-kept table. relay_backlog (workloads/backlog.py)
measures the backlog production builds."""

from __future__ import annotations

import functools
import itertools
import math
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from django.conf import settings
from django.db import connection

import seeding
from environment import (
    INPROCESS_CLICKHOUSE,
    checkpoint,
    group_memory_mb,
    pg_connect,
    reset_server_peak,
    running,
    server_peak_since_reset,
    truncate_outbox,
    vacuum_analyze,
    wait_until,
)
from eventlog.clickhouse.event_log import ClickHouseOptions, EventLogWriter
from eventlog.embedded_clickhouse import ALLOCATOR, ENGINE_OPTIONS
from eventlog.monitoring.stats import outbox_stats, processed_events
from eventlog.relay.delivery import relay_outbox
from figures import percentile
from sizes import Sizes
from workloads import baselines

SEED_EVENTS_PER_TRANSACTION = 1_000


def run(sizes: Sizes, client: Client, log: Callable[[str], None]) -> dict[str, Any]:
    """Seed the backlog once, then let the floors, the seed-literal relay and our relay drain it."""
    backlog = sizes.backlog
    truncate_outbox()
    log(f"seeding {backlog:,} pending events")
    with pg_connect() as conn:
        seeding.seed_backlog(conn, "eventlog_outbox_event", backlog, SEED_EVENTS_PER_TRANSACTION)
    baselines.create_seed_table()
    vacuum_analyze("eventlog_outbox_event", baselines.SEED_TABLE)
    measured = measure_baselines(client, log)
    check_baseline_counts(client, backlog, {name: rows for name, (rows, _) in measured.items()})
    # The baselines' leftovers (1,000,000 updated rows to vacuum, ClickHouse parts to merge, dirty
    # pages to flush) would otherwise be cleaned up on the relay's time.
    baselines.drop_seed_table()
    client.command(f"TRUNCATE TABLE {baselines.FLOOR_TABLE}")
    client.command("TRUNCATE TABLE event_log")
    checkpoint()
    log("our relay: Celery worker with embedded beat")
    ours = drain_with_worker(backlog)
    check_relay_count(backlog)
    log("our relay's loop alone, in this process, through the embedded server")
    ours["loop_only_events_per_s"] = drain_in_process(
        client, backlog, EventLogWriter(settings.CONFIG.clickhouse_url)
    )
    log("the same loop with the engine in this process (clickhouse-connect's chDB backend)")
    ours["loop_only_inprocess_events_per_s"] = drain_in_process(client, backlog, in_process_writer())
    ours["server_vs_inprocess"] = ours["loop_only_events_per_s"] / ours["loop_only_inprocess_events_per_s"]

    client.command("TRUNCATE TABLE event_log")
    truncate_outbox()
    figures: dict[str, Any] = {"backlog_events": backlog, **ours}
    for name, (rows, seconds) in measured.items():
        figures |= {f"{name}_events_per_s": rows / seconds, f"{name}_s": seconds,
                    f"vs_{name}": ours["events_per_s"] / (rows / seconds)}  # fmt: skip
    return figures


def measure_baselines(client: Client, log: Callable[[str], None]) -> dict[str, tuple[int, float]]:
    """(rows moved, seconds) of each baseline, in this process's ClickHouse."""
    measured: dict[str, tuple[int, float]] = {}
    # The floors only read the outbox, so they run first and leave the backlog pending for the relays.
    floors = {"floor": baselines.floor_copy_insert, "floor_csv": baselines.floor_csv_insert}
    for name, floor in floors.items():
        log(f"{name}: COPY out, one insert")
        baselines.create_floor_table(client)
        measured[name] = timed(functools.partial(floor, client))
    log("seed-literal relay")
    batch_size = settings.CONFIG.relay_batch_size  # the seed's slice: as many rows as our batch
    measured["seed_literal"] = timed(functools.partial(baselines.seed_literal_relay, client, batch_size))
    return measured


def timed(work: Callable[[], int]) -> tuple[int, float]:
    began = time.perf_counter()
    rows = work()
    return rows, time.perf_counter() - began


def in_process_writer() -> EventLogWriter:
    """A writer on the engine inside this process, as the worker had it before the embedded server
    (its own data path: the server holds its own). Its URL only names the database."""
    os.environ.setdefault("JE_MALLOC_CONF", ALLOCATOR)  # as the server has it; read when chDB loads
    INPROCESS_CLICKHOUSE.mkdir(parents=True, exist_ok=True)

    def open_engine(url: str, options: ClickHouseOptions) -> Client:
        dsn = f"chdb://{INPROCESS_CLICKHOUSE}"
        return clickhouse_connect.get_client(dsn=dsn, chdb_options=ENGINE_OPTIONS)

    return EventLogWriter(settings.CONFIG.clickhouse_url, opener=open_engine)


def drain_in_process(client: Client, backlog: int, writer: EventLogWriter) -> float:
    """Events/s of `relay_outbox` called directly on the same backlog: no worker, beat or polling.

    The relay writes nothing to the events, so forgetting the batches, the cursor and the count of
    processed events makes the whole backlog pending again.
    """
    client.command("TRUNCATE TABLE event_log")
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE eventlog_relay_batch, eventlog_relay_cursor, eventlog_processed_count")
    writer.client()  # connected, the schema ensured: not on the clock
    rows, seconds = timed(lambda: relay_outbox(writer, settings.CONFIG.relay_batch_size, 2**31).events)
    if rows != backlog:
        raise RuntimeError(f"the in-process relay moved {rows} of {backlog} events")
    return rows / seconds


def drain_with_worker(backlog: int) -> dict[str, Any]:
    """Start a worker as `make run` does and wait until it has delivered the whole backlog."""
    started = datetime.now(UTC)
    reset_server_peak()  # the server's memory while our relay drains, not the baselines'
    with running("worker", "relay", embedded_beat=True) as worker:
        timeout = max(300.0, backlog / 1000)
        wait_until(delivered(backlog // 2), "the relay to drain half the backlog", timeout, [worker])
        # The peak so far, beside the peak at the end: memory growing with the backlog would show.
        peak_at_half_mb = group_memory_mb(worker.pid)["max_peak_rss_mb"]
        wait_until(delivered(backlog), "the relay to drain the backlog", timeout, [worker])
        drained = datetime.now(UTC)
        memory = group_memory_mb(worker.pid)
        server_peak_mb = server_peak_since_reset()
    wall_s = (drained - started).total_seconds()
    return {
        **relay_rate(backlog, drained),
        "wall_s": wall_s,  # from starting the worker process: its first tick included
        "wall_events_per_s": backlog / wall_s,
        "worker_memory": {**memory, "max_peak_rss_mb_at_half_drain": peak_at_half_mb},
        "clickhouse_server_peak_rss_mb": server_peak_mb,
    }


_BATCHES = "SELECT row_count, created_at FROM eventlog_relay_batch WHERE state = 'delivered' ORDER BY id"


def delivered(count: int) -> Callable[[], bool]:
    return lambda: processed_events() >= count


def relay_rate(backlog: int, drained: datetime) -> dict[str, Any]:
    """Events per second from the relay's first claim to the moment everything was delivered.

    The first batch also opens the worker's embedded ClickHouse (engine start-up, schema check),
    a one-time cost the baselines, on this process's already open engine, do not pay: when there
    are several batches, the clock starts at the second claim and the first batch is not counted.
    The end is this process's observation of the drain (polled every 0.1 s).
    """
    with connection.cursor() as cursor:
        cursor.execute(_BATCHES)
        batches: list[tuple[int, datetime]] = cursor.fetchall()
    first_count, first_claim = batches[0]
    events, start = (backlog - first_count, batches[1][1]) if len(batches) > 1 else (backlog, first_claim)
    # From one claim to the next: one batch's work, plus any wait for the next beat tick.
    intervals = sorted((b[1] - a[1]).total_seconds() for a, b in itertools.pairwise(batches[1:]))
    return {
        "events_per_s": events / (drained - start).total_seconds(),
        "batches": len(batches),
        "first_batch_s": (start - first_claim).total_seconds(),
        "drain_s": (drained - first_claim).total_seconds(),
        "claim_interval_p50_s": percentile(intervals, 50),
        "claim_interval_max_s": intervals[-1] if intervals else math.nan,
    }


def check_baseline_counts(client: Client, backlog: int, moved: dict[str, int]) -> None:
    """Each baseline moved exactly the backlog."""
    landed = baselines.clickhouse_count(client, "event_log")  # the seed-literal relay's inserts
    if {*moved.values(), landed} != {backlog}:
        raise RuntimeError(f"backlog {backlog}: baselines moved {moved}, {landed} in event_log")


def check_relay_count(backlog: int) -> None:
    """Our relay delivered exactly the backlog (its own ClickHouse is checked by its tests)."""
    stats = outbox_stats()
    if stats["processed"] != backlog or stats["failed"]:
        raise RuntimeError(f"backlog {backlog}: relay {stats}")
