"""What a run records besides its figures (machine, versions, settings), the printed table, and the
JSON file."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client
from django.conf import settings
from django.db import connection
from redis import Redis

from core.processes import WEB_APPLICATION, WEB_THREADS, WEB_WORKERS, process_argv
from environment import REDIS_URL, ROOT
from sizes import Sizes

PACKAGES = ("django", "celery", "clickhouse-connect", "chdb-core-lite", "psycopg", "granian", "orjson")


def machine() -> dict[str, Any]:
    cpu_model = next(
        (line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )
    meminfo = (int(line.split()[1]) for line in _lines("/proc/meminfo") if line.startswith("MemTotal:"))
    memory_kb = next(meminfo, 0)
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
    }


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def versions(client: Client) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgresql = cursor.fetchone()[0]
    return {
        "python": platform.python_version(),
        **{name: version(name) for name in PACKAGES},
        "clickhouse_engine": str(client.command("SELECT version()")),
        "postgresql": postgresql,
        "redis": str(Redis.from_url(REDIS_URL).info("server")["redis_version"]),
    }


def source() -> dict[str, Any]:
    """The commit measured, and whether the working tree differed from it (figures of a dirty tree
    are of uncommitted code)."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603, S607
        return result.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty_paths": git("status", "--porcelain", "src").splitlines(),
    }


def run_settings(sizes: Sizes) -> dict[str, Any]:
    """The settings in effect for every process of the run, and the workload sizes."""
    config = settings.CONFIG
    worker = process_argv("worker", Path("unused"))
    return {
        "relay_batch_size": config.relay_batch_size,
        "prepared_statements": config.prepared_statements,
        "relay_interval_seconds": config.relay_interval_seconds,
        "relay_max_batches_per_run": config.relay_max_batches_per_run,
        "relay_slots": config.relay_slots,
        "relay_max_events_per_second": config.relay_max_events_per_second,
        "web_workers": WEB_WORKERS,
        "web_threads": WEB_THREADS,
        "web_application": WEB_APPLICATION,
        "celery_worker": " ".join(arg for arg in worker if arg.startswith("--")),
        "sizes": sizes.as_dict(),
    }


def write(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(results), indent=2) + "\n")


def _finite(value: Any) -> Any:
    """NaN (no samples) as null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


SERVER_PEAKS = "clickhouse_server_peak_rss_mb_by_workload"
# (workload, key, label, format): the rows of the printed table, in order.
ROWS = (
    ("relay_drain", "events_per_s", "idealized backlog: our relay, events/s", "{:,.0f}"),
    ("relay_drain", "seed_literal_events_per_s", "seed-literal relay, events/s", "{:,.0f}"),
    ("relay_drain", "floor_events_per_s", "floor (COPY out, one insert), events/s", "{:,.0f}"),
    ("relay_drain", "floor_csv_events_per_s", "CSV floor (COPY out as CSV, one insert), events/s", "{:,.0f}"),
    ("relay_drain", "vs_floor", "our relay / floor", "{:.2f}x"),
    ("relay_drain", "vs_floor_csv", "our relay / CSV floor", "{:.2f}x"),
    ("relay_drain", "vs_seed_literal", "our relay / seed-literal", "{:.2f}x"),
    (
        "relay_drain",
        "loop_only_events_per_s",
        "our relay's loop alone, through the server, events/s",
        "{:,.0f}",
    ),
    (
        "relay_drain",
        "loop_only_inprocess_events_per_s",
        "the same loop, engine in-process, events/s",
        "{:,.0f}",
    ),
    ("relay_drain", "server_vs_inprocess", "through the server / engine in-process", "{:.2f}x"),
    ("relay_backlog", "events_per_s", "production's backlog: our relay, events/s", "{:,.0f}"),
    ("relay_backlog", "first_claim_ms", "first batch's claim, ms", "{:,.1f}"),
    ("relay_backlog", "last_full_claim_ms", "last full batch's claim, ms", "{:,.1f}"),
    ("relay_backlog", "last_over_first_claim", "last claim / first claim", "{:.2f}x"),
    ("relay_backlog", "last_over_first_claims_p50", "last / first eighth of claims, p50s", "{:.2f}x"),
    ("relay_backlog", "delivery_p50_ms", "p50 batch delivery, ms", "{:,.1f}"),
    ("relay_backlog", "trickle.postgresql_p50_ms", "trickle run (100 events), PostgreSQL p50 ms", "{:.2f}"),
    ("relay_backlog", "trickle.postgresql_max_ms", "trickle run in PostgreSQL, max ms", "{:.2f}"),
    ("relay_backlog", "trickle.run_p50_ms", "trickle run: whole run p50, ms", "{:.2f}"),
    (
        "relay_backlog",
        "stats_at_backlog_ms.max_ms",
        "GET stats at the largest backlog: max, ms",
        "{:.1f}",
    ),
    ("relay_backlog", "stats_at_end_ms.max_ms", "GET stats at the end: max, ms", "{:.1f}"),
    ("relay_backlog", "ingest.events_per_s", "the backlog written over HTTP, events/s", "{:,.0f}"),
    ("relay_backlog", "admin_at_end_ms.outbox_rows", "admin lists at the end: outbox rows", "{:,}"),
    (
        "relay_backlog",
        "admin_at_end_ms.outbox_first_page.p50_ms",
        "admin, outbox's first page: p50, ms",
        "{:.1f}",
    ),
    ("relay_backlog", "admin_at_end_ms.dead_letters.p50_ms", "admin, dead letters: p50, ms", "{:.1f}"),
    (
        "relay_backlog",
        "admin_at_end_ms.search_by_event_id.p50_ms",
        "admin, search by event_id: p50, ms",
        "{:.1f}",
    ),
    ("relay_backlog", "admin_at_end_ms.relay_batches.p50_ms", "admin, relay batches: p50, ms", "{:.1f}"),
    ("http_ingest_batch", "events_per_s", "events/s", "{:,.0f}"),
    ("http_ingest_batch", "p50_ms", "p50 request, ms", "{:.1f}"),
    ("http_ingest_batch", "p99_ms", "p99 request, ms", "{:.1f}"),
    ("http_ingest_batch", "errors", "non-202 answers", "{:,}"),
    ("http_ingest_single", "requests_per_s", "requests/s", "{:,.0f}"),
    ("http_ingest_single", "p50_ms", "p50 request, ms", "{:.1f}"),
    ("http_ingest_single", "p99_ms", "p99 request, ms", "{:.1f}"),
    ("http_ingest_single", "errors", "non-202 answers", "{:,}"),
    (
        "http_ingest_paths",
        "fast_path.web_cpu_us_per_request",
        "one-event POST, hand-written fast path: web CPU µs",
        "{:,.0f}",
    ),
    (
        "http_ingest_paths",
        "lean_django.web_cpu_us_per_request",
        "the same, Django with ingest's middleware",
        "{:,.0f}",
    ),
    ("http_ingest_paths", "full_django.web_cpu_us_per_request", "the same, Django's full stack", "{:,.0f}"),
    ("http_ingest_paths", "fast_path.requests_per_s", "fast path: requests/s", "{:,.0f}"),
    (
        "http_ingest_paths",
        "lean_django.requests_per_s",
        "Django with ingest's middleware: requests/s",
        "{:,.0f}",
    ),
    ("http_ingest_paths", "full_django.requests_per_s", "Django's full stack: requests/s", "{:,.0f}"),
    (
        "http_ingest_paths",
        "fast_path_saves_web_cpu",
        "web CPU the fast path saves over lean Django",
        "{:.1%}",
    ),
    ("http_ingest_paths", "full_over_lean_web_cpu", "full stack / lean Django, web CPU", "{:.2f}x"),
    (
        "http_ingest_paths",
        "fast_path_unbuffered.web_cpu_us_per_request",
        "fast path under granian's WSGI, no buffering front: web CPU µs",
        "{:,.0f}",
    ),
    ("http_ingest_paths", "front_over_wsgi_web_cpu", "buffering front / WSGI straight, web CPU", "{:.2f}x"),
    ("emit_many", "events_per_s", "emit_events, events/s", "{:,.0f}"),
    ("emit_many", "copy_events_per_s", "raw COPY, events/s", "{:,.0f}"),
    ("emit_many", "vs_copy", "emit_events / COPY", "{:.2f}x"),
    ("emit_many", "copy_in_transactions_events_per_s", "COPY in the same transactions, events/s", "{:,.0f}"),
    ("e2e_latency", "p50_s", "p50 commit -> ClickHouse, s", "{:.3f}"),
    ("e2e_latency", "p99_s", "p99 commit -> ClickHouse, s", "{:.3f}"),
    ("e2e_latency", "inserts_per_s", "ClickHouse inserts/s", "{:.2f}"),
    ("e2e_latency", "produced_events_per_s", "events/s produced", "{:,.0f}"),
    ("worker_memory", "max_peak_rss_mb", "worker: largest peak RSS of its processes, MB", "{:,.0f}"),
    ("worker_memory", "max_peak_rss_mb_at_half_drain", "the same at half the drain, MB", "{:,.0f}"),
    ("worker_memory", "pss_total_mb", "worker: all its processes together (PSS) at the end, MB", "{:,.0f}"),
    ("worker_memory", "processes", "worker: processes (main, pool, beat)", "{:,}"),
    (
        "relay_drain",
        "clickhouse_server_peak_rss_mb",
        "embedded ClickHouse server: peak RSS, our relay's drain, MB",
        "{:,.0f}",
    ),
    (SERVER_PEAKS, "relay_backlog", "its peak RSS in relay_backlog (the history too), MB", "{:,.0f}"),
    (SERVER_PEAKS, "http_ingest", "its peak RSS in http_ingest, MB", "{:,.0f}"),
    (SERVER_PEAKS, "e2e_latency", "its peak RSS in e2e_latency, MB", "{:,.0f}"),
    ("read_api", "parts_at_start", "event_log's active parts when the reads start", "{:,}"),
    ("read_api", "round_trip_ms", "SELECT 1 through the embedded server: p50, ms", "{:.1f}"),
    ("read_api", "first_page.p50_ms", "list, first page of 100: p50, ms", "{:.1f}"),
    ("read_api", "first_page.p99_ms", "list, first page: p99, ms", "{:.1f}"),
    ("read_api", "deep_page.p50_ms", "list, page 1,000 deep: p50, ms", "{:.1f}"),
    ("read_api", "deep_page.p99_ms", "list, page 1,000 deep: p99, ms", "{:.1f}"),
    ("read_api", "first_page_reloaded.p99_ms", "first page, event_log reloaded: p99, ms", "{:.1f}"),
    ("read_api", "deep_page_reloaded.p99_ms", "page 1,000 deep, event_log reloaded: p99, ms", "{:.1f}"),
    ("read_api", "rows_read.first_page_slices.rows_read_per_page", "rows read, first page", "{:,.0f}"),
    ("read_api", "rows_read.deep_page_slices.rows_read_per_page", "rows read, page 1,000 deep", "{:,.0f}"),
    (
        "read_api",
        "rows_read.first_page_one_query.rows_read_per_page",
        "rows read, first page by one query over the range",
        "{:,.0f}",
    ),
    (
        "read_api",
        "rows_read.first_page_one_query_over_slices_p50",
        "first page p50: one query over the range / time slices",
        "{:.2f}x",
    ),
    ("read_api", "hourly_counts.p50_ms", "hourly counts by type, 30 days: p50, ms", "{:,.0f}"),
    ("read_api", "hourly_counts.p99_ms", "hourly counts by type: p99, ms", "{:,.0f}"),
    ("read_api", "context_filter.p50_ms", "list with context.user.id=..., 30 days: p50, ms", "{:,.0f}"),
    ("read_api", "export.whole.events_per_s", "NDJSON export through HTTP, events/s", "{:,.0f}"),
    ("read_api", "export.tenth.web_rss_mb_peak", "web RSS peak, export of a tenth, MB", "{:,.0f}"),
    ("read_api", "export.whole.web_rss_mb_peak", "web RSS peak, whole export, MB", "{:,.0f}"),
    (
        "read_api",
        "context_index.without_index.p50_ms",
        "context filter as one query, no index: p50, ms",
        "{:,.0f}",
    ),
    (
        "read_api",
        "context_index.with_index.p50_ms",
        "the same with a tokenbf_v1 index and hasToken: p50, ms",
        "{:,.0f}",
    ),
    (SERVER_PEAKS, "read_api", "its peak RSS in read_api, MB", "{:,.0f}"),
)


def table(workloads: dict[str, Any]) -> str:
    """The figures as a Markdown table (it prints readably and pastes into docs/benchmarks.md)."""
    lines = ["| workload | figure | value |", "| --- | --- | ---: |"]
    lines += [f"| {workload} | {label} | {value} |" for workload, label, value in _cells(workloads)]
    return "\n".join(lines)


def _cells(workloads: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    for workload, key, label, fmt in ROWS:
        value = workloads.get(workload)
        for part in key.split(".") if key else ():  # "trickle.run_p50_ms": a figure inside a figure
            value = value.get(part) if isinstance(value, dict) else None
        yield workload, label, "n/a" if value is None else fmt.format(value)
