"""Every Prometheus metric eventlog exports, and what each one means. README.md lists them too.

There are two endpoints, one per kind of process:

- the web app's `GET /metrics`: what the web processes count (ingest), and the outbox's state, read
  from PostgreSQL at scrape time. granian runs several web processes, so their counters are kept in
  prometheus_client's multiprocess files (`PROMETHEUS_MULTIPROC_DIR`, set by `core/wsgi.py` for
  the web processes) and `/metrics` adds them up; without it (tests, `runserver`) this process's
  own counters are served.
- the worker's own HTTP server on `WORKER_METRICS_PORT`: what the relay counts in the pool's
  processes (multiprocess files in WORKER_METRICS_DIR, set by `core.worker`), and ClickHouse's side,
  read from its system tables at scrape time.

Counters end in `_total` on the wire (prometheus_client appends it).
"""

from __future__ import annotations

import os
import threading
from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from eventlog.errors import ClickHouseError

if TYPE_CHECKING:
    from eventlog.clickhouse import EventLogStats
    from eventlog.relay import RelayResult

# --- Ingest: counted where events are written (web processes, and any process calling emit_events)

EVENTS_ACCEPTED = Counter(
    "eventlog_events_accepted", "Events written into the outbox, by event type.", ["event_type"]
)
EVENTS_DUPLICATE = Counter(
    "eventlog_events_duplicate", "Events skipped because their event_id was already in the outbox."
)
INGEST_REQUESTS = Counter(
    "eventlog_ingest_requests", "Answers of POST /api/v1/events, by HTTP status code.", ["status"]
)

# --- Reads: counted by the web processes (and any process reading events)

READ_REQUESTS = Counter(
    "eventlog_read_requests",
    "Answers of the read API (/api/v1/events and below), by endpoint and HTTP status code.",
    ["endpoint", "status"],
)
READ_ROWS = Histogram(
    "eventlog_read_rows",
    "Rows ClickHouse read for one query of the read side (its own summary), by endpoint. A page's "
    "should stay flat however deep it is; a count's grows with the range.",
    ["endpoint"],
    buckets=(1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000),
)
RATE_LIMITED = Counter(
    "eventlog_rate_limited",
    "Requests refused with 429 because their key was over its limit, by scope.",
    ["scope"],
)

# --- Relay: counted by the worker

RELAY_BATCHES = Counter(
    "eventlog_relay_batches",
    "Batch deliveries by outcome: delivered; unavailable (ClickHouse failed, the batch stays claimed "
    "and is retried); rejected (ClickHouse refused its data, the batch is split to isolate the bad events).",
    ["outcome"],
)
RELAY_EVENTS = Counter("eventlog_relay_events", "Events delivered into ClickHouse (rows relayed).")
RELAY_DEAD_LETTERED = Counter(
    "eventlog_relay_dead_lettered", "Events ClickHouse rejected, set aside in the outbox as dead letters."
)
RELAY_BATCH_SIZE = Histogram(
    "eventlog_relay_batch_size_events",
    "Events per delivered batch.",
    buckets=(1, 10, 100, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000),
)
RELAY_BATCH_DURATION = Histogram(
    "eventlog_relay_batch_duration_seconds",
    "One batch delivered: locking it, reading it from PostgreSQL, the insert, settling it.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RELAY_CLAIM_DURATION = Histogram(
    "eventlog_relay_claim_duration_seconds",
    "One claim: finding the next batch's events in the outbox and recording the batch. It should stay "
    "flat however large the outbox or the backlog; a claim that grows with either means a plan that scans.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
CLICKHOUSE_INSERT_DURATION = Histogram(
    "eventlog_clickhouse_insert_duration_seconds",
    "One insert into event_log, until ClickHouse acknowledged or refused it.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RELAY_RETRIES = Counter(
    "eventlog_relay_retries",
    "Relay runs that failed on ClickHouse and were scheduled to run again with backoff.",
)

# Event types are the producers' data: past this many distinct types a process counts the rest under
# "other", so that a producer sending random types cannot grow every scrape without bound.
MAX_EVENT_TYPES = 200
_seen_types: set[str] = set()
_seen_lock = threading.Lock()


def count_accepted(event_types: Iterable[str]) -> None:
    """Count accepted events by type (at most MAX_EVENT_TYPES names per process)."""
    for event_type, count in Tally(event_types).items():
        EVENTS_ACCEPTED.labels(event_type=_type_label(event_type)).inc(count)


def count_delivered(result: RelayResult, seconds: float) -> None:
    """Count one delivered batch: its events, dead letters, size and how long it took."""
    RELAY_BATCHES.labels(outcome="delivered").inc()
    RELAY_EVENTS.inc(result.events)
    RELAY_DEAD_LETTERED.inc(result.dead_lettered)
    RELAY_BATCH_SIZE.observe(result.events + result.dead_lettered)
    RELAY_BATCH_DURATION.observe(seconds)


def _type_label(event_type: str) -> str:
    if event_type in _seen_types:
        return event_type
    with _seen_lock:
        if len(_seen_types) >= MAX_EVENT_TYPES:
            return "other"
        _seen_types.add(event_type)
    return event_type


# --- Read at scrape time


class OutboxCollector(Collector):
    """The outbox's state from PostgreSQL, at each scrape (served by the web app); a few
    milliseconds at any backlog, since a backlog beyond stats.EXACT_PENDING_LIMIT is estimated."""

    def collect(self) -> Iterator[Metric]:
        # Imported here: stats needs Django set up, and this module must not.
        from eventlog.stats import EXACT_PENDING_LIMIT, outbox_stats

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

# What the web processes count; the relay's metrics, defined here too, stay at zero there.
_WEB_METRICS = {family.name for metric in (EVENTS_ACCEPTED, EVENTS_DUPLICATE, INGEST_REQUESTS)
                for family in metric.describe()}  # fmt: skip


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
