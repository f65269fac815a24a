"""The policy around scheduled runs: slots, the backoff gate, Sentry, with real Redis and ClickHouse."""

from __future__ import annotations

from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from django.conf import settings
from prometheus_client import REGISTRY

from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.errors import ClickHouseUnavailable, RetryPending
from eventlog.outbox.events import NewEvent, emit_events
from eventlog.relay.delivery import BatchSink
from eventlog.runtime import relay_coordinator
from eventlog.scheduling.runs import run_scheduled_relay
from tests.conftest import event_log_counts

pytestmark = pytest.mark.django_db(transaction=True)


def run(writer: BatchSink, *, is_retry: bool = False, last_attempt: bool = False) -> dict[str, Any]:
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


class AnotherRunFailsFirst:
    """The real writer, except that another relay run's failure closes the gate while this run's
    insert is on its way (two slots: two ticks can pass the gate before either fails)."""

    def __init__(self, writer: EventLogWriter) -> None:
        self.writer = writer

    def write_csv(self, block: bytes | bytearray, token: str) -> None:
        assert relay_coordinator().start_backoff()
        self.writer.write_csv(block, token)

    def write_batch(self, columns: list[list[Any]], token: str) -> None:
        raise AssertionError("the relay sends CSV")


def test_runs_failing_together_leave_one_retry_pending(writer: EventLogWriter, detached: Any) -> None:
    emit_events([NewEvent("a") for _ in range(10)])
    retries_before = REGISTRY.get_sample_value("eventlog_relay_retries_total")
    with pytest.raises(RetryPending) as failed:
        run(AnotherRunFailsFirst(writer))
    assert failed.value.code == 60  # UNKNOWN_TABLE, from the real engine
    assert REGISTRY.get_sample_value("eventlog_relay_retries_total") == retries_before  # only the first run's
    assert relay_coordinator().backing_off()
    # That first run's retry goes on closing the gate after each failure.
    with pytest.raises(ClickHouseUnavailable) as failed_again:
        run(writer, is_retry=True)
    assert not isinstance(failed_again.value, RetryPending)
    assert relay_coordinator().backing_off()


def test_a_retry_finding_every_slot_taken_leaves_the_gate_to_the_runs_holding_them(
    writer: EventLogWriter,
) -> None:
    relay_coordinator().start_backoff()
    leases = [relay_coordinator().try_acquire_slot() for _ in range(settings.EVENTLOG["RELAY_SLOTS"])]
    assert run(writer, is_retry=True) == {"skipped": "busy"}
    assert not relay_coordinator().backing_off()  # else no retry would be left to reopen it
    for lease in leases:
        lease.release()  # type: ignore[union-attr]


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
    leases = [relay_coordinator().try_acquire_slot() for _ in range(settings.EVENTLOG["RELAY_SLOTS"])]
    assert run(writer) == {"skipped": "busy"}
    assert None not in leases
    leases[0].release()  # type: ignore[union-attr]
    assert run(writer)["events"] == 1
