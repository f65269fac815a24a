"""The metrics read at scrape time (the outbox's state from PostgreSQL, ClickHouse's from its
system tables) and the two endpoints that serve every metric of eventlog/metrics.py: the web app's
`GET /metrics` and the worker's own HTTP server (see eventlog/metrics.py for which is which)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from eventlog.errors import ClickHouseError
from eventlog.metrics import (
    EVENTS_ACCEPTED,
    EVENTS_DUPLICATE,
    INGEST_REQUESTS,
    RATE_LIMITED,
    READ_REQUESTS,
    READ_ROWS,
)

if TYPE_CHECKING:
    from eventlog.clickhouse.event_log import EventLogStats


# --- Read at scrape time


class OutboxCollector(Collector):
    """The outbox's state from PostgreSQL, at each scrape (served by the web app); a few
    milliseconds at any backlog, since a backlog beyond stats.EXACT_PENDING_LIMIT is estimated."""

    def collect(self) -> Iterator[Metric]:
        # Imported here: stats needs Django set up, and this module must not.
        from eventlog.monitoring.stats import EXACT_PENDING_LIMIT, outbox_stats

        stats = outbox_stats()
        yield GaugeMetricFamily(
            "eventlog_outbox_pending_events",
            "Events committed to the outbox and not yet in ClickHouse (claimed or not); beyond "
            f"{EXACT_PENDING_LIMIT:,} unclaimed, an estimate from their ids.",
            value=stats["pending"],
        )
        yield GaugeMetricFamily(
            "eventlog_outbox_dead_letters", "Events ClickHouse rejected, waiting for a fix and a replay.",
            value=stats["failed"],
        )  # fmt: skip
        yield GaugeMetricFamily(
            "eventlog_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending event: how far behind the relay is (0 when nothing is pending).",
            value=stats["oldest_pending_age_seconds"] or 0.0,
        )


class ClickHouseStats(Protocol):
    def event_log_stats(self) -> EventLogStats: ...


class ClickHouseCollector(Collector):
    """ClickHouse's own figures for event_log, from its system tables at each scrape (served by the
    worker, whose relay they describe)."""

    def __init__(self, source: ClickHouseStats) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("eventlog_clickhouse_up", "1 when ClickHouse answered this scrape, else 0.")
        try:
            stats = self.source.event_log_stats()
        except ClickHouseError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        parts = GaugeMetricFamily(
            "eventlog_clickhouse_active_parts",
            "Active data parts of event_log per monthly partition; many small parts mean inserts are too "
            "small or merges lag behind.",
            labels=["partition"],
        )
        for partition, count in stats.active_parts.items():
            parts.add_metric([partition], count)
        yield parts
        yield GaugeMetricFamily("eventlog_clickhouse_rows", "Rows in event_log.", value=stats.rows)
        yield GaugeMetricFamily("eventlog_clickhouse_bytes", "Bytes of event_log on disk.", value=stats.bytes)
        yield CounterMetricFamily(
            "eventlog_clickhouse_inserts",
            "INSERT queries ClickHouse ran since it started (rate() gives inserts per second).",
            value=stats.insert_queries,
        )


# --- Serving

# What the web processes count: ingest, reads and rate limits (the relay's metrics, which every
# process defines, stay at zero there and are served by the worker).
_WEB_METRICS = {
    family.name
    for metric in (EVENTS_ACCEPTED, EVENTS_DUPLICATE, INGEST_REQUESTS, READ_REQUESTS, READ_ROWS, RATE_LIMITED)
    for family in metric.describe()
}


class _WebOnly(Collector):
    def __init__(self, source: Collector) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        return (metric for metric in self.source.collect() if metric.name in _WEB_METRICS)


def web_metrics() -> bytes:
    """The web app's /metrics page: ingest counters of every web process, and the outbox's state."""
    registry = CollectorRegistry()
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:  # several processes (core/wsgi.py): add up their files
        registry.register(_WebOnly(multiprocess.MultiProcessCollector(None)))  # type: ignore[no-untyped-call]
    else:
        registry.register(_WebOnly(REGISTRY))
    registry.register(OutboxCollector())
    return generate_latest(registry)


def start_worker_metrics(source: ClickHouseStats, address: str, port: int) -> None:
    """Serve the relay's metrics and ClickHouse's on address:port, from a daemon thread. With the
    prefork pool (PROMETHEUS_MULTIPROC_DIR set) the pool processes' files are added up."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    registry.register(ClickHouseCollector(source))
    start_http_server(port, addr=address, registry=registry)
