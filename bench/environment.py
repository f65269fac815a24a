"""The benchmark's own environment, and the system's processes started exactly as `make run` does.

The benchmark never touches the development or test state: it has its own PostgreSQL database, Redis
database and embedded ClickHouse server (data in var/bench, on a free port), all new for each run.
This module imports nothing that needs Django set up (only src/ on sys.path), so `configure()` can
run before `django.setup()`.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.core.management import call_command
from django.db import InterfaceError, OperationalError, connection
from psycopg import sql
from redis import Redis

from core.processes import clickhouse_answers, process_argv

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
VAR = ROOT / "var" / "bench"
LOGS = VAR / "logs"
REDIS_URL = "redis://127.0.0.1:6379/13"  # tests use 14 and 15, development 0
CLICKHOUSE_DATA = VAR / "clickhouse"  # the embedded server's, every process's ClickHouse
INPROCESS_CLICKHOUSE = VAR / "clickhouse-inprocess"  # the engine in this process, for a comparison

# Fixed for every process of the run. DEBUG and Sentry are off whatever src/core/.env says: DEBUG
# keeps every query in memory (the worker's peak memory is a figure), and tracing costs time.
FIXED = {
    "DJANGO_SETTINGS_MODULE": "core.settings",
    "DJANGO_SECRET_KEY": "bench",
    "DJANGO_DEBUG": "0",
    "DATABASE_URL": "postgresql://root@127.0.0.1:5432/eventlog_bench",
    "CELERY_BROKER_URL": REDIS_URL,
    "REDIS_URL": REDIS_URL,
    "EMBEDDED_CLICKHOUSE_PATH": str(CLICKHOUSE_DATA),
    "LOG_LEVEL": "WARNING",
    "SENTRY_DSN": "",
    # read_api asks thousands of pages a minute with one key: the limiter still counts each in
    # Redis, as in production, but never refuses one.
    "READ_RATE_LIMIT_PER_MINUTE": "100000000",
}
# Tunables measured at the code's defaults. A blank value means "the default" to core.env, so a
# local src/core/.env cannot change them silently; a value in the caller's environment still wins,
# and the values in effect are recorded in the results.
DEFAULTED = (
    "DJANGO_ALLOWED_HOSTS",
    "EVENTLOG_ENVIRONMENT",
    "PREPARED_STATEMENTS",
    "RELAY_INTERVAL_SECONDS",
    "RELAY_BATCH_SIZE",
    "RELAY_MAX_BATCHES_PER_RUN",
    "RELAY_SLOTS",
    "RELAY_LEASE_SECONDS",
    "RELAY_MAX_EVENTS_PER_SECOND",
    "OUTBOX_RETENTION_DAYS",
    "OUTBOX_PURGE_INTERVAL_SECONDS",
    "INGEST_MAX_EVENTS",
    "INGEST_MAX_BYTES",
    "SENTRY_TRACES_SAMPLE_RATE",
)


class BenchError(Exception):
    """A workload could not run (a process died, a wait timed out)."""


def configure() -> None:
    """Point this process (and, by inheritance, every subprocess) at the benchmark's services."""
    os.environ.update(FIXED)
    os.environ["CLICKHOUSE_URL"] = f"http://eventlog:bench@127.0.0.1:{free_port()}/default"
    for name in DEFAULTED:
        os.environ.setdefault(name, "")


def reset_state() -> None:
    """Empty var/bench and Redis database 13. Run before Django opens anything there."""
    shutil.rmtree(VAR, ignore_errors=True)
    LOGS.mkdir(parents=True)
    reset_broker()


def reset_broker() -> None:
    """Forget queued ticks and the relay's run slots: a SIGKILLed worker's slot would otherwise make
    the next worker's ticks skip as "busy" until its lease expires."""
    Redis.from_url(REDIS_URL).flushdb()


def prepare_database() -> None:
    """A new eventlog_bench, created as `make db` does and migrated. Dropped first: the schema is
    still changing, migrations included, and a run must measure the code as it is now."""
    db = settings.CONFIG.database
    with psycopg.connect(
        dbname="postgres", host=db.host, port=db.port, user=db.user, password=db.password, autocommit=True
    ) as conn:
        # FORCE: a previous run that was killed may have left connections behind.
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.name)))
    call_command("create_database", stdout=io.StringIO())  # says "created", every time
    call_command("migrate", verbosity=0, interactive=False)


def pg_connect() -> psycopg.Connection[Any]:
    """A plain psycopg connection to the benchmark database (autocommit), for COPY and VACUUM."""
    db = settings.CONFIG.database
    return psycopg.connect(
        dbname=db.name, host=db.host, port=db.port, user=db.user, password=db.password, autocommit=True
    )


def truncate_outbox() -> None:
    """Empty the outbox and every table of relay state (batches, and whatever else the relay keeps:
    its cursor today), so that each workload starts from nothing. API keys stay."""
    tables = [
        name
        for name in connection.introspection.table_names()
        if name.startswith("eventlog_") and name != "eventlog_api_key"
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(map(connection.ops.quote_name, tables))} RESTART IDENTITY")


def vacuum_analyze(*tables: str) -> None:
    """Set hint bits, the visibility map and planner statistics after a bulk load, so that no relay
    pays for them on behalf of the others (VACUUM cannot run inside a transaction)."""
    with pg_connect() as conn:
        for table in tables:
            conn.execute(f"VACUUM (ANALYZE) {table}")  # our own table names


def checkpoint() -> None:
    """Flush PostgreSQL's dirty pages now, so that a workload does not pay for its predecessor's
    writes (the checkpointer otherwise spreads them over the following minutes)."""
    with pg_connect() as conn:
        conn.execute("CHECKPOINT")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start(name: str, label: str, **options: Any) -> subprocess.Popen[bytes]:
    """Start process `name` of the system (src/core/processes.py), its output in
    var/bench/logs/<label>.log."""
    argv = process_argv(name, VAR / f"{label}-beat-schedule", **options)
    env = {**os.environ, "PYTHONPATH": str(SRC), "WORKER_METRICS_DIR": str(VAR / f"metrics-{label}")}
    with (LOGS / f"{label}.log").open("ab") as log:
        # A session of its own, so that stopping it takes the whole process group: a worker's embedded
        # beat and pool are child processes that would outlive the worker alone. Our own argv: S603 is moot.
        return subprocess.Popen(  # noqa: S603
            argv, cwd=SRC, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


_server: list[subprocess.Popen[bytes]] = []  # the run's embedded ClickHouse server, once started


def start_clickhouse() -> subprocess.Popen[bytes]:
    """The run's embedded ClickHouse server, as `make run` starts it, once it answers."""
    server = start("clickhouse", "clickhouse")
    _server[:] = [server]
    if clickhouse_answers(os.environ["CLICKHOUSE_URL"], server):
        return server
    stop(server)
    raise BenchError(f"the embedded ClickHouse server did not answer within 60 s; see {LOGS}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group; nothing of the process is needed after a workload."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@contextmanager
def running(name: str, label: str, **options: Any) -> Iterator[subprocess.Popen[bytes]]:
    process = start(name, label, **options)
    try:
        yield process
    finally:
        stop(process)
        reset_broker()


def check_alive(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is not None:
            raise BenchError(f"process {process.pid} exited with {process.returncode}; see {LOGS}")


def wait_until(
    condition: Callable[[], bool],
    what: str,
    timeout: float,
    processes: Sequence[subprocess.Popen[bytes]] = (),
    interval: float = 0.1,
) -> None:
    """Poll `condition` until it holds; fail early if one of `processes` died.

    A lost database connection is not fatal while polling (the relay itself survives a PostgreSQL
    restart; the fault tests do restart it): the next poll reconnects, within the same deadline.
    """
    deadline = time.monotonic() + timeout
    while not _holds(condition):
        check_alive(processes)
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _holds(condition: Callable[[], bool]) -> bool:
    try:
        return condition()
    except (OperationalError, InterfaceError) as exc:
        print(f"database error while polling, retrying: {exc}", file=sys.stderr, flush=True)
        connection.close()
        return False


def cpu_seconds(groups: dict[str, Callable[[], list[int]]]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each group of processes, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for name, pids in groups.items():
        total = 0
        for pid in pids():
            with contextlib.suppress(OSError):  # gone since it was listed
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        used[name] = total / ticks
    return used


def session_pids(session: int) -> list[int]:
    """The processes of a session started by `start` (its process, its children, theirs)."""
    return [pid for pid in _pids() if _stat(pid, 3) == session]


def postgres_pids() -> list[int]:
    """PostgreSQL's server processes (its backends, checkpointer, WAL writer, ...)."""
    return [pid for pid in _pids() if _command(pid).startswith(b"postgres")]


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _stat(pid: int, field: int) -> int | None:
    """A numeric field of /proc/PID/stat counted after the command name (3: the session id)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[field])
    except (OSError, IndexError, ValueError):
        return None


def _command(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def reset_peak(pid: int) -> None:
    """Start the process's peak resident memory (VmHWM) afresh from what it holds now (Linux's
    clear_refs), so that the next read is the peak since."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def server_peak_since_reset() -> float:
    """The embedded ClickHouse server's peak resident memory since `reset_server_peak`, MB."""
    return memory_mb(_server[0].pid)["peak_rss_mb"]


def reset_server_peak() -> None:
    reset_peak(_server[0].pid)


def group_memory_mb(leader: int) -> dict[str, float]:
    """Memory of a process and all of its session (a worker and its pool, its beat): the largest
    peak of any one process, and the proportional share (PSS, each shared page split among the
    processes sharing it) of them all together now."""
    pids = session_pids(leader) or [leader]
    peaks = [memory_mb(pid)["peak_rss_mb"] for pid in pids]
    pss = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) / 1024
    return {"processes": len(pids), "max_peak_rss_mb": max(peaks), "pss_total_mb": pss}


def memory_mb(pid: int) -> dict[str, float]:
    """The process's peak resident memory (VmHWM, the kernel's high-water mark, so one read at the
    end of a workload is the peak over all of it), and what is resident now, split into anonymous
    memory (heaps, buffers) and file-backed pages (mostly the code of the embedded engine)."""
    fields = {"VmHWM": "peak_rss_mb", "RssAnon": "rss_anon_mb", "RssFile": "rss_file_mb"}
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in fields:
            found[fields[name]] = int(value.split()[0]) / 1024
    if len(found) != len(fields):
        raise BenchError(f"no memory figures for process {pid}")
    return found
