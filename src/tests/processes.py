"""Real processes for the tests: the embedded ClickHouse server, workers, relays, web.

Each process gets the test database, its own Redis database and the run's embedded ClickHouse
server; a test gives its processes a ClickHouse database of their own (`new_database`), so what they
wrote is theirs to read back, while they run or after.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
from django.conf import settings
from redis import Redis

from core.processes import clickhouse_answers, process_argv
from tests.settings import PROCESS_REDIS, RUN_DIR

SRC = Path(__file__).resolve().parents[1]
BROKER_URL = PROCESS_REDIS  # not the in-process test worker's database


def new_database() -> str:
    """A ClickHouse database name no other test uses (the writer creates it on first use)."""
    return f"test_{uuid.uuid4().hex[:12]}"


def clickhouse_url(database: str, base: str | None = None) -> str:
    """The URL of `database` on the run's server (or on the server at `base`)."""
    return urlunsplit(urlsplit(base or settings.EVENTLOG["CLICKHOUSE_URL"])._replace(path=f"/{database}"))


def process_env(database: str, **overrides: str) -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "DJANGO_SETTINGS_MODULE": "core.settings",
        "DJANGO_SECRET_KEY": "fault-tests",
        "DATABASE_URL": f"postgresql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": BROKER_URL,
        "REDIS_URL": BROKER_URL,
        "CLICKHOUSE_URL": clickhouse_url(database),
        "WEB_METRICS_DIR": str(RUN_DIR / f"web-metrics-{database}"),
        "WORKER_METRICS_DIR": str(RUN_DIR / f"worker-metrics-{database}"),
        "RELAY_INTERVAL_SECONDS": "0.2",
        "RELAY_LEASE_SECONDS": "2",
        "EVENTLOG_ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
    }
    env.update(overrides)
    return env


def start_clickhouse(env: dict[str, str], data_path: Path) -> subprocess.Popen[bytes]:
    """The embedded ClickHouse server for env's CLICKHOUSE_URL on `data_path`, once it answers."""
    log = data_path.parent / f"{data_path.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    process = start("clickhouse", {**env, "EMBEDDED_CLICKHOUSE_PATH": str(data_path)}, data_path, log=log)
    if clickhouse_answers(env["CLICKHOUSE_URL"], process):
        return process
    kill(process)
    raise AssertionError(f"the embedded ClickHouse server did not start: {log.read_text()[-2000:]}")


def reset_broker() -> None:
    Redis.from_url(BROKER_URL).flushdb()


def start_worker(env: dict[str, str], schedule: Path) -> subprocess.Popen[bytes]:
    """A Celery worker with embedded beat, exactly as `make run` starts it."""
    return start("worker", env, schedule, embedded_beat=True)


def start(
    name: str, env: dict[str, str], schedule: Path, log: Path | None = None, **options: Any
) -> subprocess.Popen[bytes]:
    """One process of the system (src/core/processes.py), as `make NAME` starts it; its output
    goes to `log` if given."""
    argv = process_argv(name, schedule, **options)
    # A session of its own, so that `kill` takes the whole process group: a worker's embedded beat
    # and its pool are child processes that would outlive a SIGKILL of the worker alone.
    with log.open("ab") if log else open(os.devnull, "wb") as output:  # the child keeps its own copy
        return subprocess.Popen(argv, cwd=SRC, env=env, stdout=output, stderr=output, start_new_session=True)


def manage(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=SRC, env=env, capture_output=True, text=True, check=check
    )


@contextmanager
def running(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield process
    finally:
        kill(process)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and everything in its process group (as when a container dies)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def clickhouse_event_ids(database: str, base: str | None = None) -> list[str]:
    """Every event_id in `database`.event_log, repeats included (read without FINAL)."""
    client = clickhouse_connect.get_client(dsn=clickhouse_url(database, base), autogenerate_session_id=False)
    try:
        if not client.command("EXISTS TABLE event_log"):
            return []
        return [str(row[0]) for row in client.query("SELECT event_id FROM event_log").result_rows]
    finally:
        client.close()
