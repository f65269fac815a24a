"""Readiness: can the pipeline take events and deliver them, and is it keeping up?"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from django.db import DatabaseError
from redis import Redis
from redis.exceptions import RedisError

from eventlog.errors import ClickHouseError
from eventlog.monitoring.stats import outbox_stats


class Pingable(Protocol):
    def ping(self) -> None: ...


@dataclass
class Readiness:
    ready: bool = True
    checks: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        self.ready = False
        self.reasons.append(reason)


def readiness(redis: Redis, clickhouse: Pingable, max_lag_seconds: float) -> Readiness:
    """Check PostgreSQL, Redis, ClickHouse (a query, answered) and the relay's lag.
    Never raises: each failure is a reason in the result."""
    result = Readiness()
    try:
        stats = outbox_stats()
    except DatabaseError as exc:
        result.fail(f"PostgreSQL: {exc}")
    else:
        lag = stats["oldest_pending_age_seconds"] or 0.0
        result.checks["postgresql"] = "ok"
        result.checks["outbox"] = {
            "pending": stats["pending"],
            "dead_letters": stats["failed"],
            "lag_seconds": lag,
        }
        if lag > max_lag_seconds:
            result.fail(f"lag: the oldest pending event is {lag:.0f} s old (limit {max_lag_seconds:g} s)")
    try:
        redis.ping()
    except RedisError as exc:
        result.fail(f"Redis: {exc}")
    else:
        result.checks["redis"] = "ok"
    try:
        clickhouse.ping()
    except ClickHouseError as exc:
        result.fail(f"ClickHouse: {exc}")
    else:
        result.checks["clickhouse"] = "ok"
    return result
