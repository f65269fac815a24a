"""Readiness: can the pipeline take events and deliver them, and is it keeping up?

With the embedded ClickHouse the web process may not open the engine (NOTES.md: one process per
path), so ClickHouse's reachability is what the workers last saw: a periodic task pings it and
leaves a short-lived report in Redis. No report means no worker has reached ClickHouse lately,
which is exactly when events stop arriving there.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from redis import Redis
from redis.exceptions import RedisError

from eventlog.clickhouse import EventLogWriter
from eventlog.errors import ClickHouseError
from eventlog.stats import outbox_stats

REPORT_KEY = "eventlog:health:clickhouse"


@dataclass
class Readiness:
    ready: bool = True
    checks: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        self.ready = False
        self.reasons.append(reason)


def report_ttl_seconds() -> int:
    """A report outlives two missed checks in a row (settings.CLICKHOUSE_CHECK_SECONDS apart)."""
    return int(3 * settings.CLICKHOUSE_CHECK_SECONDS)


def report_clickhouse(redis: Redis, error: str | None) -> dict[str, Any]:
    """Record what a worker just saw of ClickHouse: reachable (`error` None) or not, and why."""
    report = {"reachable": error is None, "error": error, "at": time.time()}
    redis.set(REPORT_KEY, json.dumps(report), ex=report_ttl_seconds())
    return report


def readiness(redis: Redis, max_lag_seconds: float) -> Readiness:
    """Check PostgreSQL, Redis, the workers' last report of ClickHouse, and the relay's lag.
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
        raw = redis.get(REPORT_KEY)
    except RedisError as exc:
        result.fail(f"Redis: {exc}")
        return result
    result.checks["redis"] = "ok"
    report = json.loads(raw) if raw else None
    result.checks["clickhouse"] = report or "no recent report from a worker"
    if report is None:
        result.fail(f"ClickHouse: no worker reported reaching it in the last {report_ttl_seconds()} s")
    elif not report["reachable"]:
        result.fail(f"ClickHouse: {report['error']}")
    return result


def check_clickhouse(writer: EventLogWriter, redis: Redis) -> dict[str, Any]:
    """Ping ClickHouse and leave the report for `readiness`; returns the report. A failure is the
    report's content here, not an exception: the next check runs on schedule either way."""
    try:
        writer.ping()
    except ClickHouseError as exc:
        return report_clickhouse(redis, str(exc))
    return report_clickhouse(redis, None)
