"""The policy around scheduled runs: slots, the backoff gate, Sentry, with real Redis and ClickHouse."""

from __future__ import annotations

from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from django.conf import settings

from eventlog.clickhouse import EventLogWriter
from eventlog.errors import ClickHouseUnavailable
from eventlog.events import NewEvent, emit_events
from eventlog.runtime import relay_coordinator
from eventlog.scheduled import run_scheduled_relay
from tests.conftest import event_log_counts

pytestmark = pytest.mark.django_db(transaction=True)


def run(writer: EventLogWriter, *, is_retry: bool = False, last_attempt: bool = False) -> dict[str, Any]:
    return run_scheduled_relay(
        relay_coordinator(),
        writer,
        batch_size=1_000,
        max_batches=10,
        is_retry=is_retry,
        last_attempt=last_attempt,
    )


@pytest.fixture
def detached(clickhouse: Client) -> Any:
    clickhouse.command("DETACH TABLE event_log")
    yield lambda: clickhouse.command("ATTACH TABLE IF NOT EXISTS event_log")
    clickhouse.command("ATTACH TABLE IF NOT EXISTS event_log")


def test_a_failed_run_closes_the_gate_for_ticks_and_its_retry_reopens_it(
    writer: EventLogWriter, clickhouse: Client, detached: Any
) -> None:
    emit_events([NewEvent("a") for _ in range(10)])
    with pytest.raises(ClickHouseUnavailable):
        run(writer)
    assert run(writer) == {"skipped": "backing off"}
    with pytest.raises(ClickHouseUnavailable):
        run(writer, is_retry=True)
    assert relay_coordinator().backing_off()
    detached()  # ClickHouse is back
    assert run(writer, is_retry=True)["events"] == 10
    assert not relay_coordinator().backing_off()
    assert event_log_counts(clickhouse) == (10, 10)


def test_the_last_failed_attempt_reopens_the_gate_for_the_next_tick(
    writer: EventLogWriter, detached: Any
) -> None:
    emit_events([NewEvent("a")])
    with pytest.raises(ClickHouseUnavailable):
        run(writer, is_retry=True, last_attempt=True)
    assert not relay_coordinator().backing_off()


def test_a_tick_finding_every_slot_taken_does_nothing(writer: EventLogWriter, clickhouse: Client) -> None:
    emit_events([NewEvent("a")])
    # Runs elsewhere hold every slot.
    leases = [relay_coordinator().try_acquire_slot() for _ in range(settings.EVENTLOG.relay_slots)]
    assert run(writer) == {"skipped": "busy"}
    assert None not in leases
    leases[0].release()  # type: ignore[union-attr]
    assert run(writer)["events"] == 1
