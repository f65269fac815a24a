"""The real thing: a Celery worker on the Redis broker with the beat schedule drains the outbox."""

from __future__ import annotations

import time
from typing import Any

import pytest
from celery.beat import EmbeddedService
from clickhouse_connect.driver.client import Client
from django.db import transaction

from eventlog.models import RelayBatch
from eventlog.monitoring.stats import outbox_stats
from eventlog.outbox.events import NewEvent, emit_events
from eventlog.tasks import relay_outbox_task
from tests.conftest import event_log_counts, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_worker_with_beat_drains_every_event_exactly_once(
    celery_worker: Any, celery_beat: EmbeddedService, clickhouse: Client
) -> None:
    total = 0
    for _ in range(5):  # events keep arriving while the relay runs
        with transaction.atomic():
            emit_events([NewEvent("order_paid", {"i": i}) for i in range(6_000)])
        total += 6_000
        time.sleep(0.3)

    def drained() -> bool:
        return outbox_stats()["processed"] == total

    wait_until(drained)
    assert event_log_counts(clickhouse) == (total, total)
    assert not RelayBatch.objects.filter(state="claimed").exists()
    assert outbox_stats()["pending"] == 0


def test_a_failed_run_is_retried_by_the_worker_after_the_tick_expired(
    celery_worker: Any, clickhouse: Client
) -> None:
    emit_events([NewEvent("order_paid") for _ in range(100)])
    clickhouse.command("DETACH TABLE event_log")
    try:
        relay_outbox_task.apply_async(expires=0.2)  # as beat sends it: expires after one tick
        wait_until(lambda: RelayBatch.objects.filter(attempts__gte=4).exists())
    finally:
        clickhouse.command("ATTACH TABLE event_log")
    wait_until(lambda: outbox_stats()["processed"] == 100)
    assert event_log_counts(clickhouse) == (100, 100)


def test_an_outage_backs_off_loses_nothing_and_the_backlog_then_drains_at_full_speed(
    celery_worker: Any, celery_beat: EmbeddedService, clickhouse: Client
) -> None:
    clickhouse.command("DETACH TABLE event_log")  # a real failure of the real engine
    # Beat ticks every 0.5 s: 16 ticks while ClickHouse is away, however long the events take to emit.
    outage_ends = time.monotonic() + 8
    try:
        total = 0
        for _ in range(40):
            emit_events([NewEvent("order_paid") for _ in range(5_000)])
            total += 5_000
        time.sleep(max(outage_ends - time.monotonic(), 0))
        # The two runs RELAY_SLOTS allows may each have claimed a batch before the first failure
        # closed the backoff gate (seen once in CI); after it, no run claims another.
        claimed = list(RelayBatch.objects.filter(state="claimed"))
        assert 1 <= len(claimed) <= 2, [batch.pk for batch in claimed]
        # One retry chain (1 s doubling, full jitter) tries about 5 times in 8 s. Without the backoff
        # gate every tick would try: >= 16; with a chain per slot (two runs failing together), ~10.
        for batch in claimed:
            assert 1 <= batch.attempts <= 8, batch.attempts
            assert "UNKNOWN_TABLE" in batch.last_error
        stats = outbox_stats()
        assert (stats["pending"], stats["processed"], stats["failed"]) == (total, 0, 0)
    finally:
        clickhouse.command("ATTACH TABLE event_log")

    wait_until(lambda: outbox_stats()["processed"] == total, timeout=120)
    assert event_log_counts(clickhouse) == (total, total)
    delivered = sorted(RelayBatch.objects.values_list("delivered_at", "row_count"))
    seconds = (delivered[-1][0] - delivered[0][0]).total_seconds()
    print(f"\ndrained {total} events after the outage at {(total - delivered[0][1]) / seconds:,.0f} events/s")
