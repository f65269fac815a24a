"""Requests per minute per API key, counted in Redis so every web process shares one count.

A fixed window of one minute per key and scope: the first request of a window creates its counter
(expiring with the window), each request adds one, and a request over the limit is refused with
the seconds left until the window ends. Fixed windows let a key send up to twice its limit across
a window's edge; that is the price of one round trip (INCR and EXPIRE, pipelined) per request.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError

from eventlog.errors import RateLimited, RateLimitUnavailable
from eventlog.metrics import RATE_LIMITED

WINDOW_SECONDS = 60
PREFIX = "eventlog:rate"


class RateLimiter:
    def __init__(self, redis: Redis, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.clock = clock

    def check(self, scope: str, key_id: int, per_minute: int) -> None:
        """Count one request of key `key_id` in `scope`; raise RateLimited when it is over
        `per_minute` (0: no limit, nothing counted)."""
        if per_minute <= 0:
            return
        now = self.clock()
        window = int(now // WINDOW_SECONDS)
        counter = f"{PREFIX}:{scope}:{key_id}:{window}"
        try:
            pipeline = self.redis.pipeline(transaction=False)
            pipeline.incr(counter)
            pipeline.expire(counter, WINDOW_SECONDS + 1)
            count, _ = pipeline.execute()
        except RedisError as exc:
            raise RateLimitUnavailable(f"cannot count requests in Redis: {exc}") from exc
        if int(count) > per_minute:
            RATE_LIMITED.labels(scope=scope).inc()
            retry_after = max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))
            raise RateLimited(f"more than {per_minute} {scope} requests a minute for this key", retry_after)
