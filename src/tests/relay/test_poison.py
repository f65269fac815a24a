"""Poison events: rejected by ClickHouse for their data, isolated, dead-lettered, replayable."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from django.core.management import call_command

from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.errors import ClickHouseUnavailable
from eventlog.models import OutboxEvent, RelayBatch
from eventlog.monitoring.stats import outbox_stats
from eventlog.outbox.events import NewEvent, emit_events
from eventlog.relay.delivery import relay_outbox
from eventlog.relay.poison import replay_dead_letters
from tests.conftest import event_log_counts

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def rejecting_poison(clickhouse: Client) -> Any:
    """ClickHouse itself refuses events of type 'poison' (a CHECK constraint of event_log)."""
    clickhouse.command("ALTER TABLE event_log ADD CONSTRAINT no_poison CHECK event_type != 'poison'")
    yield lambda: clickhouse.command("ALTER TABLE event_log DROP CONSTRAINT IF EXISTS no_poison")
    clickhouse.command("ALTER TABLE event_log DROP CONSTRAINT IF EXISTS no_poison")


def emit_with_poison(total: int, poison_at: list[int]) -> list[NewEvent]:
    events = [NewEvent("poison" if i in poison_at else "order_paid", {"i": i}) for i in range(total)]
    emit_events(events)
    return events


def test_a_poison_event_is_dead_lettered_and_the_rest_arrive_in_the_same_run(
    writer: EventLogWriter, clickhouse: Client, rejecting_poison: Any
) -> None:
    events = emit_with_poison(5_000, poison_at=[3_210])
    result = relay_outbox(writer, batch_size=10_000, max_batches=1)
    assert (result.events, result.dead_lettered) == (4_999, 1)
    assert event_log_counts(clickhouse) == (4_999, 4_999)
    dead = OutboxEvent.objects.get(failed_at__isnull=False)
    assert dead.event_id == events[3_210].event_id
    assert "VIOLATED_CONSTRAINT" in dead.last_error
    assert dead.rejections == 1
    stats = outbox_stats()
    assert (stats["pending"], stats["processed"], stats["failed"]) == (0, 4_999, 1)


def test_replay_after_a_fix_delivers_the_dead_letter_once(
    writer: EventLogWriter, clickhouse: Client, rejecting_poison: Any
) -> None:
    emit_with_poison(2_000, poison_at=[5, 1_500])
    relay_outbox(writer, batch_size=10_000, max_batches=1)
    assert OutboxEvent.objects.filter(failed_at__isnull=False).count() == 2

    assert replay_dead_letters() == 2  # not fixed yet: rejected again, counted
    assert relay_outbox(writer, batch_size=10_000, max_batches=1).dead_lettered == 2
    assert set(OutboxEvent.objects.filter(failed_at__isnull=False).values_list("rejections", flat=True)) == {
        2
    }

    rejecting_poison()  # the fix
    assert replay_dead_letters() == 2
    assert replay_dead_letters() == 0  # replaying twice changes nothing
    assert relay_outbox(writer, batch_size=10_000, max_batches=1).events == 2
    assert event_log_counts(clickhouse) == (2_000, 2_000)
    assert outbox_stats()["failed"] == 0


def test_an_outage_in_the_middle_of_isolating_poison_duplicates_nothing(
    writer: EventLogWriter, clickhouse: Client, rejecting_poison: Any
) -> None:
    emit_with_poison(4_000, poison_at=[3_999])

    class FailingAfter:
        """The real writer, until ClickHouse 'goes away' after `n` inserts."""

        def __init__(self, n: int) -> None:
            self.left = n

        def write_batch(self, columns: list[list[Any]], token: str) -> None:
            self.count_down()
            writer.write_batch(columns, token)

        def write_csv(self, block: bytes | bytearray, token: str) -> None:
            self.count_down()
            writer.write_csv(block, token)

        def count_down(self) -> None:
            if self.left == 0:
                raise ClickHouseUnavailable("connection refused")
            self.left -= 1

    with pytest.raises(ClickHouseUnavailable):
        relay_outbox(FailingAfter(3), batch_size=10_000, max_batches=1)  # whole, first half, ...
    assert RelayBatch.objects.get().split is True
    assert 0 < event_log_counts(clickhouse)[0] < 4_000
    result = relay_outbox(writer, batch_size=10_000, max_batches=1)
    assert (result.events, result.dead_lettered) == (3_999, 1)
    assert event_log_counts(clickhouse) == (3_999, 3_999)


def test_dead_letters_command_lists_and_replays(
    writer: EventLogWriter, clickhouse: Client, rejecting_poison: Any
) -> None:
    events = emit_with_poison(10, poison_at=[4])
    relay_outbox(writer, batch_size=100, max_batches=1)
    out = StringIO()
    call_command("dead_letters", stdout=out)
    assert str(events[4].event_id) in out.getvalue()
    assert "VIOLATED_CONSTRAINT" in out.getvalue()
    rejecting_poison()
    out = StringIO()
    call_command("dead_letters", "--replay", str(events[4].event_id), stdout=out)
    assert "replayed 1" in out.getvalue()
    relay_outbox(writer, batch_size=100, max_batches=1)
    assert event_log_counts(clickhouse) == (10, 10)
