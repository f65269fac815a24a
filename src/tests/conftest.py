from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from celery.beat import EmbeddedService
from celery.contrib.testing.worker import start_worker
from clickhouse_connect.driver.client import Client
from django.conf import settings
from django.db import close_old_connections, connection

from core.celery import app as celery_app
from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.monitoring.stats import outbox_stats
from eventlog.runtime import event_log_writer, relay_coordinator
from tests.processes import kill, manage, process_env, start_clickhouse
from tests.served import ServedClient, ServedWeb, serving
from tests.settings import RUN_DIR

# Hypothesis's examples (the fuzz suite, tests/web/test_fuzz.py): `make test` runs "suite", the
# same examples every run, so that a CI failure is one a rerun finds again; `make fuzz` runs "fuzz"
# (pytest --hypothesis-profile=fuzz): twenty times as many, new ones each run.
hypothesis.settings.register_profile(
    "suite", max_examples=100, derandomize=True, deadline=None, database=None
)
hypothesis.settings.register_profile("fuzz", max_examples=2_000, deadline=None)
hypothesis.settings.load_profile("suite")


@pytest.fixture(scope="session", autouse=True)
def clickhouse_server() -> Iterator[subprocess.Popen[bytes]]:
    """The run's embedded ClickHouse server (tests/settings.py chose its port, password and data
    directory), started as `make clickhouse` starts it; every test reaches ClickHouse through it."""
    data_path = Path(settings.CONFIG.embedded_clickhouse_path)
    server = start_clickhouse(process_env("default"), data_path)
    yield server
    kill(server)
    _engine_failures.extend(engine_failures(data_path.parent / f"{data_path.name}.log"))
    shutil.rmtree(RUN_DIR, ignore_errors=True)


# What the run's server logged of its engine failing (once seen in CI: "The server is shutting down
# due to a fatal error", and every later test failed), kept for the run's summary: the log itself
# goes with the run's directory.
_engine_failures: list[str] = []
_ENGINE_FAILURE = re.compile(r"fatal|signal|terminate|abort|logical error", re.IGNORECASE)


def engine_failures(log: Path) -> list[str]:
    """What the log says before the engine's first failure, then each failure once (timestamps aside)."""
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    first = next((index for index, line in enumerate(lines) if _ENGINE_FAILURE.search(line)), None)
    if first is None:
        return []
    failures = {line[24:]: line for line in lines[first:] if _ENGINE_FAILURE.search(line)}
    return [*lines[max(first - 15, 0) : first], *list(failures.values())[:20]]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _engine_failures:
        terminalreporter.section("the embedded ClickHouse server's engine failed")
        for line in _engine_failures:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def collected_static(django_db_setup: None) -> None:
    """Django's static files in STATIC_ROOT, as `make run` collects them before it starts the web
    (which serves what is there when it starts)."""
    manage(process_env("default"), "collectstatic", "--no-input", "--verbosity", "0")


@pytest.fixture(scope="session")
def served_web(
    tmp_path_factory: pytest.TempPathFactory, collected_static: None, clickhouse_server: object
) -> Iterator[ServedWeb]:
    """The run's web process, as production serves the application (tests/served.py); it reads the
    test database, so a test that uses it commits what the server should see (transaction=True)."""
    with serving(tmp_path_factory.mktemp("served")) as web:
        yield web


@pytest.fixture
def served(served_web: ServedWeb) -> ServedClient:
    """A client of the run's web process."""
    return served_web.client()


@pytest.fixture(scope="session")
def writer() -> EventLogWriter:
    """The process's real EventLogWriter, on this run's embedded ClickHouse server."""
    return event_log_writer()


@pytest.fixture
def clickhouse(writer: EventLogWriter) -> Client:
    """A client on an empty, current event_log."""
    client = writer.client()
    client.command("TRUNCATE TABLE IF EXISTS event_log")
    return client


def wait_until(condition: Callable[[], object], timeout: float = 120.0) -> None:
    """Poll `condition` until it holds; fail with the outbox's figures after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s; outbox: {outbox_stats()}")
        time.sleep(0.1)


def event_log(client: Client) -> list[dict[str, Any]]:
    result = client.query("SELECT * FROM event_log ORDER BY event_date_time, event_id")
    return list(result.named_results())


def event_log_counts(client: Client) -> tuple[int, int]:
    """(rows, distinct event ids) in event_log, read without FINAL."""
    count, distinct = client.query("SELECT count(), uniqExact(event_id) FROM event_log").result_rows[0]
    return int(count), int(distinct)


@pytest.fixture(autouse=True)
def relay_coordination_reset() -> None:
    """Every test starts with free run slots, an open backoff gate and an unused rate budget."""
    redis = relay_coordinator().redis
    keys = list(redis.scan_iter(f"{relay_coordinator().prefix}:*"))
    if keys:
        redis.delete(*keys)


@pytest.fixture(scope="session")
def celery_worker() -> Iterator[Any]:
    """A real Celery worker consuming from Redis, in this process (threads: the test's database
    transactions must be visible to its tasks)."""
    celery_app.control.purge()
    with start_worker(
        celery_app, pool="threads", concurrency=2, perform_ping_check=False, loglevel="WARNING"
    ) as worker:
        yield worker


@pytest.fixture
def celery_beat(tmp_path: Path) -> Iterator[EmbeddedService]:
    """Celery beat, in a thread, sending the project's schedule to the broker."""
    beat = EmbeddedService(celery_app, thread=True, schedule_filename=str(tmp_path / "beat-schedule"))
    beat.start()
    yield beat
    beat.stop()


@pytest.fixture
def outbox_gone() -> Iterator[None]:
    """The outbox's table renamed away: every write of ingest fails in PostgreSQL itself, a real 500
    (for this process and every process the test starts)."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE eventlog_outbox_event RENAME TO eventlog_outbox_event_away")
    try:
        yield
    finally:
        close_old_connections()
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE eventlog_outbox_event_away RENAME TO eventlog_outbox_event")
