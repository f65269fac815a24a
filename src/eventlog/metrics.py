"""Every Prometheus metric eventlog counts, and what each one means. README.md lists them too.
The metrics read at scrape time, and the two endpoints that serve them all, are in
eventlog/monitoring/metrics_endpoints.py; this module imports nothing of eventlog, so every part may count.

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

import threading
from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import Counter, Histogram

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


def count_delivered(events: int, dead_lettered: int, seconds: float) -> None:
    """Count one delivered batch: its events, dead letters, size and how long it took."""
    RELAY_BATCHES.labels(outcome="delivered").inc()
    RELAY_EVENTS.inc(events)
    RELAY_DEAD_LETTERED.inc(dead_lettered)
    RELAY_BATCH_SIZE.observe(events + dead_lettered)
    RELAY_BATCH_DURATION.observe(seconds)


def _type_label(event_type: str) -> str:
    if event_type in _seen_types:
        return event_type
    with _seen_lock:
        if len(_seen_types) >= MAX_EVENT_TYPES:
            return "other"
        _seen_types.add(event_type)
    return event_type
