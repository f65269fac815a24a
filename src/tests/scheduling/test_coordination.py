"""Shared relay state in the real Redis: run slots, the backoff gate, the global rate limit."""

from __future__ import annotations

import time

import pytest
from redis import Redis

from eventlog.runtime import relay_coordinator
from eventlog.scheduling.coordination import RelayCoordinator


@pytest.fixture
def redis() -> Redis:
    return relay_coordinator().redis


def coordinator(redis: Redis, **options: object) -> RelayCoordinator:
    return RelayCoordinator(redis, prefix="eventlog:relay", **options)  # type: ignore[arg-type]


def test_a_tick_finding_every_slot_taken_gets_none(redis: Redis) -> None:
    relays = coordinator(redis, slots=2)
    first, second = relays.try_acquire_slot(), relays.try_acquire_slot()
    assert first is not None
    assert second is not None
    assert relays.try_acquire_slot() is None
    first.release()
    assert relays.try_acquire_slot() is not None


def test_a_dead_holders_slot_frees_itself_after_the_lease(redis: Redis) -> None:
    relays = coordinator(redis, lease_seconds=0.3)
    assert relays.try_acquire_slot() is not None  # its worker is killed: never released
    assert relays.try_acquire_slot() is None
    time.sleep(0.4)
    assert relays.try_acquire_slot() is not None


def test_an_expired_lease_cannot_release_or_renew_its_successors_slot(redis: Redis) -> None:
    relays = coordinator(redis, lease_seconds=0.2)
    stale = relays.try_acquire_slot()
    assert stale is not None
    time.sleep(0.3)
    fresh = relays.try_acquire_slot()
    assert fresh is not None
    stale.release()
    assert stale.renew() is False
    assert relays.try_acquire_slot() is None  # the fresh holder still has it
    assert fresh.renew() is True


def test_the_backoff_gate_closes_opens_and_expires(redis: Redis) -> None:
    relays = coordinator(redis, backoff_seconds=0.3)
    assert not relays.backing_off()
    assert relays.start_backoff() is True
    assert relays.backing_off()
    assert relays.start_backoff() is False  # closed already: a second failure starts no retry
    assert relays.start_backoff(retrying=True) is True  # the retry keeps it closed
    relays.end_backoff()
    assert not relays.backing_off()
    relays.start_backoff()
    time.sleep(0.4)
    assert not relays.backing_off()


def test_the_rate_limit_is_shared_by_all_relays(redis: Redis) -> None:
    now = [1_000.25]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    one, other = (
        coordinator(redis, max_events_per_second=1_000, clock=lambda: now[0], sleep=sleep) for _ in "ab"
    )
    one.throttle(600)
    other.throttle(400)
    assert slept == []
    other.throttle(500)  # over the shared budget of this second: waits for the next one
    assert slept == [pytest.approx(0.75)]
    one.throttle(500)  # 1,000 in this second: still within the budget
    assert len(slept) == 1
    one.throttle(1)
    assert len(slept) == 2


def test_a_batch_larger_than_the_rate_runs_alone_in_its_second(redis: Redis) -> None:
    now = [2_000.0]
    relays = coordinator(redis, max_events_per_second=100, clock=lambda: now[0], sleep=lambda s: None)
    relays.throttle(10_000)  # would otherwise wait forever
