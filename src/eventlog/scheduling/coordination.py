"""What all relays share, kept in Redis so that it holds across every worker process and machine:

- run slots: at most `slots` relay runs at once; a tick that finds them all taken does nothing, so
  runs never pile up behind a slow ClickHouse. A slot is a lease with a time-to-live, renewed before
  every batch, so a killed worker's slot frees itself within `lease_seconds`.
- the backoff gate: while a failed run's Celery retry is pending, beat's ticks do nothing, so the
  retry's exponential backoff is the only rate at which an unavailable ClickHouse is tried. Only
  the first of several runs failing together closes it, so one chain of retries is pending at most.
- the rate limit: at most `max_events_per_second` events claimed per second by all relays together
  (0: no limit), counted in one Redis key per second.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from redis import Redis

# Delete the key only if it still holds our token: a lease that expired and was taken by another
# relay must not be released by the first one.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then"
    " return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
)


class Lease:
    """One held run slot. `renew` before each batch; `release` when the run ends."""

    def __init__(self, redis: Redis, key: str, token: str, ttl_ms: int) -> None:
        self._redis, self.key, self._token, self._ttl_ms = redis, key, token, ttl_ms

    def renew(self) -> bool:
        return bool(self._redis.eval(_RENEW, 1, self.key, self._token, self._ttl_ms))

    def release(self) -> None:
        self._redis.eval(_RELEASE, 1, self.key, self._token)


class RelayCoordinator:
    def __init__(
        self,
        redis: Redis,
        *,
        slots: int = 1,
        lease_seconds: float = 30.0,
        backoff_seconds: float = 660.0,
        max_events_per_second: int = 0,
        prefix: str = "eventlog:relay",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.redis = redis
        self.slots = slots
        self.lease_ms = int(lease_seconds * 1000)
        self.backoff_ms = int(backoff_seconds * 1000)
        self.max_events_per_second = max_events_per_second
        self.prefix = prefix
        self._clock, self._sleep = clock, sleep

    def try_acquire_slot(self) -> Lease | None:
        """A free run slot, or None when `slots` runs are under way."""
        token = uuid.uuid4().hex
        for slot in range(self.slots):
            key = f"{self.prefix}:slot:{slot}"
            if self.redis.set(key, token, nx=True, px=self.lease_ms):
                return Lease(self.redis, key, token, self.lease_ms)
        return None

    def backing_off(self) -> bool:
        return bool(self.redis.exists(f"{self.prefix}:backoff"))

    def start_backoff(self, *, retrying: bool = False) -> bool:
        """Close the gate for ticks; True when this call closed it, False when it was already closed
        (another run failed first and its retry is scheduled). `retrying` (the run is itself that
        retry) keeps it closed for another full period. The gate reopens by itself after
        `backoff_seconds` at the latest (longer than any one retry's countdown), in case the retry
        is lost with its worker."""
        key = f"{self.prefix}:backoff"
        if retrying:
            self.redis.set(key, "1", px=self.backoff_ms)
            return True
        return bool(self.redis.set(key, "1", px=self.backoff_ms, nx=True))

    def end_backoff(self) -> None:
        self.redis.delete(f"{self.prefix}:backoff")

    def throttle(self, events: int) -> None:
        """Block until `events` more fit in the global per-second budget, then reserve them."""
        if self.max_events_per_second <= 0:
            return
        while True:
            now = self._clock()
            key = f"{self.prefix}:rate:{int(now)}"
            pipe = self.redis.pipeline()
            pipe.incrby(key, events)
            pipe.expire(key, 5)
            used = int(pipe.execute()[0])
            # A first reservation larger than the budget is let through alone in its second,
            # otherwise a batch size above the limit would never run.
            if used <= self.max_events_per_second or used == events:
                return
            self.redis.decrby(key, events)
            self._sleep(max(int(now) + 1 - now, 0.001))
