"""relay_backlog: the backlog production builds, drained as `make worker` drains it (the realistic
case beside relay_drain, which is the idealized one).

1. The outbox first holds `history` processed events, the rows of a retention window: written in
   transactions of 10,000 inside PostgreSQL, then relayed by our relay, in this process, into this
   process's ClickHouse (emptied again afterwards: its size is not what is measured).
2. A web process runs as `make run` runs it, and `batch_clients` HTTP clients write `backlog`
   events through the API, 100 per request (one transaction each), while no worker runs.
3. Nothing is vacuumed or analyzed, and autovacuum is left as the server has it (recorded).
4. A worker with embedded beat drains the backlog. Every batch's claim and delivery time comes from
   the relay's own batch table: the claim from its transaction's start (created_at) to the moment its
   events were found (claimed_at), the delivery from then to ClickHouse's acknowledgement
   (delivered_at).
5. With the worker stopped, trickle runs on the full outbox: `trickle_events` events committed,
   then one relay run in this process: the whole run, and the time PostgreSQL spent on it.
6. GET /api/v1/stats is timed at the largest backlog and again at the end.
7. At the end (history, backlog and trickles: about 10,000,000 events, never analyzed) the admin's
   lists are timed through the web process, as a logged-in superuser: the outbox's first page, its
   dead letters, a search by event_id, and the relay batches.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client as DjangoClient

import seeding
from environment import checkpoint, free_port, pg_connect, running, truncate_outbox, wait_until
from eventlog.access.api_keys import create_api_key
from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.models import OutboxEvent
from eventlog.monitoring.stats import processed_events
from eventlog.outbox.events import NewEvent, emit_events
from eventlog.relay.delivery import relay_outbox
from figures import percentile
from sizes import Sizes
from workloads.ingest import answers, request_body
from workloads.load_client import Load, run_requests

HISTORY_PER_TRANSACTION = 10_000
# The history is relayed in batches this large: the same rows in far fewer claims, so that setting
# it up takes a minute whatever the relay's claims cost (the batch table then holds a few rows for
# them instead of one per RELAY_BATCH_SIZE events); each batch's CSV is about 70 MB, which the
# embedded server spools to disk like any insert.
HISTORY_BATCH = 250_000
EVENTS_PER_REQUEST = 100
STATS_WARM_UP = 3


def run(sizes: Sizes, client: Client, log: Callable[[str], None]) -> dict[str, Any]:
    truncate_outbox()
    log(f"history: writing {sizes.history:,} events and relaying them")
    write_history(sizes.history, client)
    checkpoint()  # the history's writes are flushed before the backlog is written, as days ago
    key = create_api_key(f"bench-{uuid.uuid4().hex[:8]}")[1]
    port = free_port()
    with running("web", "backlog-web", web_bind=f"127.0.0.1:{port}") as web:
        wait_until(lambda: answers(port, key), "the web process", timeout=60, processes=[web])
        log(f"{sizes.batch_clients} HTTP clients writing {sizes.backlog:,} events, 100 per request")
        ingest = write_backlog(port, key, sizes)
        statistics = outbox_statistics()
        stats_at_backlog = time_stats(port, key, sizes.stats_requests)
        log("draining it with a worker, as `make worker` runs it (beat embedded)")
        history_batches = last_batch_id()
        with running("worker", "backlog-worker", embedded_beat=True) as worker:
            drained = sizes.history + sizes.backlog
            timeout = max(300.0, sizes.backlog / 1000)
            wait_until(lambda: processed_events() >= drained, "the drain", timeout, [worker])
        drain = drain_figures(batches_after(history_batches))
        log(f"{sizes.trickle_runs} trickle runs of {sizes.trickle_events} events on the full outbox")
        trickle = trickle_runs(sizes)
        stats_at_end = time_stats(port, key, sizes.stats_requests)
        admin_at_end = time_admin_lists(port, sizes.stats_requests)
    client.command("TRUNCATE TABLE event_log")
    truncate_outbox()
    return {
        "history_events": sizes.history,
        "backlog_events": sizes.backlog,
        "outbox_statistics_before_drain": statistics,
        "ingest": ingest,
        **drain,
        "trickle": trickle,
        "stats_at_backlog_ms": stats_at_backlog,
        "stats_at_end_ms": stats_at_end,
        "admin_at_end_ms": admin_at_end,
    }


def write_history(count: int, client: Client) -> None:
    with pg_connect() as conn:
        seeding.write_history(conn, count, min(count, HISTORY_PER_TRANSACTION))
    writer = EventLogWriter(settings.CONFIG.clickhouse_url)
    relayed = relay_outbox(writer, HISTORY_BATCH, max_batches=2**31).events
    if relayed != count:
        raise RuntimeError(f"history: relayed {relayed} of {count} events")
    client.command("TRUNCATE TABLE event_log")


def write_backlog(port: int, key: str, sizes: Sizes) -> dict[str, Any]:
    """`batch_clients` client processes POST the same 100-event body until `backlog` events are in."""
    requests_each = math.ceil(sizes.backlog / EVENTS_PER_REQUEST / sizes.batch_clients)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    load = Load(port, key, request_body(EVENTS_PER_REQUEST))
    processes = [
        context.Process(target=run_requests, args=(load, requests_each, results))
        for _ in range(sizes.batch_clients)
    ]
    started = time.perf_counter()
    for process in processes:
        process.start()
    statuses: Counter[int] = Counter()
    for _ in processes:
        statuses.update(results.get(timeout=600))
    seconds = time.perf_counter() - started
    for process in processes:
        process.join(timeout=30)
    if set(statuses) != {202}:
        raise RuntimeError(f"backlog: answers {dict(statuses)}")
    events = statuses[202] * EVENTS_PER_REQUEST
    return {"events": events, "seconds": seconds, "events_per_s": events / seconds}


def outbox_statistics() -> dict[str, Any]:
    """What PostgreSQL's planner knows of the outbox when the drain starts, and whether autovacuum
    could have told it more."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        autovacuum = cursor.fetchone()[0]
        cursor.execute(
            "SELECT c.reltuples, s.last_analyze, s.last_autoanalyze, s.last_autovacuum"
            " FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid"
            " WHERE c.relname = 'eventlog_outbox_event'"
        )
        reltuples, analyzed, autoanalyzed, autovacuumed = cursor.fetchone()
    return {
        "autovacuum": autovacuum,
        "reltuples": reltuples,
        "last_analyze": _iso(analyzed),
        "last_autoanalyze": _iso(autoanalyzed),
        "last_autovacuum": _iso(autovacuumed),
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def time_stats(port: int, key: str, requests: int) -> dict[str, Any]:
    """p50 and max milliseconds of GET /api/v1/stats, and its last answer's pending figures."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/stats", headers={"Authorization": f"Bearer {key}"}
    )
    timings, last = timed_gets(request, requests)
    outbox = json.loads(last)["outbox"]
    return {
        "p50_ms": percentile(timings, 50),
        "max_ms": timings[-1],
        "pending": outbox["pending"],
        "pending_is_estimate": outbox.get("pending_is_estimate"),
    }


def timed_gets(request: urllib.request.Request, requests: int) -> tuple[list[float], bytes]:
    """The milliseconds of `requests` answers to `request`, sorted, and the last answer's body. A
    few requests first, untimed, so that each web process has its database connection."""
    timings: list[float] = []
    body = b""
    for index in range(STATS_WARM_UP + requests):
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (loopback)
            body = response.read()
        if index >= STATS_WARM_UP:
            timings.append((time.perf_counter() - started) * 1000)
    return sorted(timings), body


def time_admin_lists(port: int, requests: int) -> dict[str, Any]:
    """p50 and max milliseconds of each admin list (src/eventlog/admin.py), and the outbox's rows."""
    admin = DjangoClient()  # for its session only: the pages are asked of the web process
    admin.force_login(get_user_model().objects.create_superuser(f"bench-{uuid.uuid4().hex[:8]}"))
    cookie = f"sessionid={admin.cookies['sessionid'].value}"
    rows = outbox_rows()
    event_id = OutboxEvent.objects.order_by("-id").values_list("event_id", flat=True)[rows // 2]
    pages = {
        "outbox_first_page": "/admin/eventlog/outboxevent/",
        "dead_letters": "/admin/eventlog/outboxevent/?dead=yes",
        "search_by_event_id": f"/admin/eventlog/outboxevent/?q={event_id}",
        "relay_batches": "/admin/eventlog/relaybatch/",
    }
    figures: dict[str, Any] = {"outbox_rows": rows}
    for name, path in pages.items():
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Cookie": cookie})
        timings, _ = timed_gets(request, requests)
        figures[name] = {"p50_ms": percentile(timings, 50), "max_ms": timings[-1]}
    return figures


def outbox_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM eventlog_outbox_event")
        return int(cursor.fetchone()[0])


@dataclass(frozen=True)
class Batch:
    events: int
    claimed_from: datetime  # the claim's transaction began
    claimed_at: datetime  # its events were found
    delivered_at: datetime  # ClickHouse acknowledged them

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "claim_ms": (self.claimed_at - self.claimed_from).total_seconds() * 1000,
            "delivery_ms": (self.delivered_at - self.claimed_at).total_seconds() * 1000,
        }


def batches_after(batch_id: int) -> list[Batch]:
    """The delivered batches claimed after batch `batch_id`, in claim order."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT row_count, created_at, claimed_at, delivered_at FROM eventlog_relay_batch"
            " WHERE id > %s AND state = 'delivered' ORDER BY id",
            [batch_id],
        )
        return [Batch(*row) for row in cursor.fetchall()]


def last_batch_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM eventlog_relay_batch")
        return int(cursor.fetchone()[0])


def drain_figures(batches: list[Batch]) -> dict[str, Any]:
    """The drain's rate from its first claim to its last acknowledgement, and how claims and
    deliveries took: the first and last full batch's claim above all (flat, or growing with
    the backlog's remainder)."""
    rows = [batch.as_dict() for batch in batches]
    full = [row["claim_ms"] for row in rows if row["events"] == rows[0]["events"]]
    claims = sorted(row["claim_ms"] for row in rows)
    deliveries = sorted(row["delivery_ms"] for row in rows)
    drain_s = (batches[-1].delivered_at - batches[0].claimed_from).total_seconds()
    # One claim waits on the CPU the other slot's insert holds, so single claims vary twofold;
    # the medians of the first and last few show the trend.
    few = max(len(full) // 8, 1)
    first, last = percentile(sorted(full[:few]), 50), percentile(sorted(full[-few:]), 50)
    return {
        "events_per_s": sum(batch.events for batch in batches) / drain_s,
        "drain_s": drain_s,
        "batch_count": len(batches),
        "first_claim_ms": full[0],
        "last_full_claim_ms": full[-1],
        "last_over_first_claim": full[-1] / full[0],
        "first_claims_p50_ms": first,
        "last_claims_p50_ms": last,
        "last_over_first_claims_p50": last / first,
        "claim_p50_ms": percentile(claims, 50),
        "claim_max_ms": claims[-1],
        "delivery_p50_ms": percentile(deliveries, 50),
        "delivery_max_ms": deliveries[-1],
        "batches": rows,
    }


@dataclass
class TimedSink:
    """The real writer, with the time its inserts took."""

    writer: EventLogWriter
    seconds: float = 0.0

    def write_csv(self, block: bytes | bytearray, token: str) -> None:
        started = time.perf_counter()
        self.writer.write_csv(block, token)
        self.seconds += time.perf_counter() - started

    def write_batch(self, columns: list[list[Any]], token: str) -> None:
        started = time.perf_counter()
        self.writer.write_batch(columns, token)
        self.seconds += time.perf_counter() - started


def trickle_runs(sizes: Sizes) -> dict[str, Any]:
    """Each run: commit `trickle_events` events, then one relay run in this process. Its time in
    PostgreSQL is PostgreSQL's own account (`pg_stat_database.active_time`: the time its backends
    spent running statements, commits included), read before and after the run; nothing else
    uses the database meanwhile (the worker is stopped, the web process idle)."""
    writer = EventLogWriter(settings.CONFIG.clickhouse_url)
    config = settings.CONFIG
    runs: list[tuple[float, float, float]] = []  # whole run, ClickHouse insert, PostgreSQL: seconds
    for index in range(sizes.trickle_runs):
        emit_events([NewEvent("trickle", {"run": index}) for _ in range(sizes.trickle_events)])
        sink = TimedSink(writer)
        active_before = active_seconds()
        started = time.perf_counter()
        relayed = relay_outbox(sink, config.relay_batch_size, config.relay_max_batches_per_run).events
        runs.append((time.perf_counter() - started, sink.seconds, active_seconds() - active_before))
        if relayed != sizes.trickle_events:
            raise RuntimeError(f"trickle run {index}: relayed {relayed} of {sizes.trickle_events}")
    runs = runs[1:]  # the first also opens this process's writer (ClickHouse schema check)
    overhead = min(-active_seconds() + active_seconds() for _ in range(5))  # what reading it costs
    whole = sorted(run for run, _, _ in runs)
    outside_clickhouse = sorted(run - insert for run, insert, _ in runs)
    postgresql = sorted(active - overhead for _, _, active in runs)
    return {
        "runs": len(runs),
        "events_per_run": sizes.trickle_events,
        "run_p50_ms": percentile(whole, 50) * 1000,
        "run_max_ms": whole[-1] * 1000,
        "postgresql_p50_ms": percentile(postgresql, 50) * 1000,
        "postgresql_max_ms": postgresql[-1] * 1000,
        "run_less_insert_p50_ms": percentile(outside_clickhouse, 50) * 1000,
    }


def active_seconds() -> float:
    """PostgreSQL's active time in this database so far, flushed to its statistics first."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")  # the flush happens as this statement ends
        cursor.execute("SELECT active_time FROM pg_stat_database WHERE datname = current_database()")
        return float(cursor.fetchone()[0]) / 1000
