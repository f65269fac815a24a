"""The composition root: the process-wide objects the Celery tasks, views and commands work with,
built on first use from settings."""

from __future__ import annotations

import functools

from redis import Redis

from eventlog.access.rate_limits import RateLimiter
from eventlog.clickhouse.event_log import ClickHouseOptions, EventLogWriter
from eventlog.conf import app_settings
from eventlog.reading.store import EventLogReader, ReadLimits
from eventlog.scheduling.coordination import RelayCoordinator


@functools.cache
def event_log_writer() -> EventLogWriter:
    """The writer for CLICKHOUSE_URL; each thread connects on its first use."""
    return EventLogWriter(app_settings().clickhouse_url, clickhouse_options())


def clickhouse_options() -> ClickHouseOptions:
    config = app_settings()
    return ClickHouseOptions(
        connect_timeout=config.clickhouse_connect_timeout,
        send_receive_timeout=config.clickhouse_send_receive_timeout,
        verify=config.clickhouse_verify,
        ca_cert=config.clickhouse_ca_cert,
        cluster=config.clickhouse_cluster,
    )


@functools.cache
def redis_client() -> Redis:
    """The client for REDIS_URL (the relays' shared state)."""
    return Redis.from_url(app_settings().redis_url)


@functools.cache
def relay_coordinator() -> RelayCoordinator:
    config = app_settings()
    return RelayCoordinator(
        redis_client(),
        slots=config.relay_slots,
        lease_seconds=config.relay_lease_seconds,
        max_events_per_second=config.relay_max_events_per_second,
    )


@functools.cache
def event_log_reader() -> EventLogReader:
    """The reader for CLICKHOUSE_URL, within the READ_MAX_* limits; each thread connects on first use."""
    config = app_settings()
    limits = ReadLimits(
        max_seconds=config.read_max_execution_seconds, max_memory_bytes=config.read_max_memory_bytes
    )
    return EventLogReader(config.clickhouse_url, clickhouse_options(), limits)


@functools.cache
def rate_limiter() -> RateLimiter:
    return RateLimiter(redis_client())
