"""e2e_latency: a steady producer in this process, a worker relaying as `make run` runs it; how long
from commit to visible in ClickHouse, and how many ClickHouse inserts per second that took."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction

import seeding
from environment import running, truncate_outbox, wait_until
from eventlog.monitoring.stats import delivery_latencies, processed_events
from eventlog.outbox.events import NewEvent, emit_events
from figures import percentile
from sizes import Sizes


def run(sizes: Sizes, log: Callable[[str], None]) -> dict[str, Any]:
    truncate_outbox()
    with running("worker", "e2e", embedded_beat=True) as worker:
        # One event through first, so that the worker's engine start-up is not in the latencies.
        emit_events([NewEvent("bench_warm_up")])
        wait_until(lambda: processed_events() == 1, "the worker's first batch", 120, [worker])
        log(f"producing {sizes.e2e_events_per_s:,} events/s for {sizes.e2e_seconds:g} s")
        window_start = datetime.now(UTC)
        produced, late_ticks = produce(sizes)
        window_end = datetime.now(UTC)
        wait_until(lambda: processed_events() == produced + 1, "the relay to catch up", 300, [worker])
    latencies = sorted(delivery_latencies(window_start))
    window_s = (window_end - window_start).total_seconds()
    inserts = inserts_delivered(window_start, window_end)
    truncate_outbox()
    return {
        "p50_s": percentile(latencies, 50),
        "p99_s": percentile(latencies, 99),
        "max_s": latencies[-1],
        "inserts_per_s": inserts / window_s,
        "target_events_per_s": sizes.e2e_events_per_s,
        "produced_events_per_s": produced / window_s,
        "window_s": window_s,
        "events": len(latencies),
        "late_ticks": late_ticks,
    }


def produce(sizes: Sizes) -> tuple[int, int]:
    """Commit `e2e_events_per_transaction` events at a time at the target rate for `e2e_seconds`,
    paced against a monotonic clock. A late tick is followed at once by the next, so the total stays
    rate x seconds; late ticks are counted. Returns (events produced, late ticks)."""
    per_tx = sizes.e2e_events_per_transaction
    interval = per_tx / sizes.e2e_events_per_s
    generator = seeding.rng(5)
    produced = late = 0
    next_tick = time.monotonic()
    end = next_tick + sizes.e2e_seconds
    while next_tick < end:
        with transaction.atomic():
            produced += emit_events(new_events(generator, per_tx)).accepted
        next_tick += interval
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            late += 1
    return produced, late


def new_events(generator: random.Random, count: int) -> list[NewEvent]:
    """Events as a service emits them: a fresh id and the current time each."""
    return [NewEvent(generator.choice(seeding.EVENT_TYPES), seeding.context(generator)) for _ in range(count)]


def inserts_delivered(start: datetime, end: datetime) -> int:
    """ClickHouse inserts (delivered batches) acknowledged inside the producing window."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM eventlog_relay_batch"
            " WHERE state = 'delivered' AND delivered_at BETWEEN %s AND %s",
            [start, end],
        )
        count: int = cursor.fetchone()[0]
        return count
