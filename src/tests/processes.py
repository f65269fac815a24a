"""Real worker and relay processes for fault tests.

Each process gets the test database, its own Redis database and its own embedded ClickHouse
directory (one process per chDB path; this test process holds its own). ClickHouse data written by a
process is read back by another short-lived process once the writer is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from redis import Redis

from core.processes import process_argv
from tests.settings import PROCESS_REDIS

SRC = Path(__file__).resolve().parents[1]
BROKER_URL = PROCESS_REDIS  # not the in-process test worker's database


def process_env(clickhouse_dir: Path, **overrides: str) -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "DJANGO_SETTINGS_MODULE": "core.settings",
        "DJANGO_SECRET_KEY": "fault-tests",
        "DATABASE_URL": f"postgresql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": BROKER_URL,
        "REDIS_URL": BROKER_URL,
        "CLICKHOUSE_URL": f"chdb://{clickhouse_dir}",
        "WEB_METRICS_DIR": str(clickhouse_dir.parent / "metrics-web"),
        "RELAY_INTERVAL_SECONDS": "0.2",
        "RELAY_LEASE_SECONDS": "2",
        "EVENTLOG_ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
    }
    env.update(overrides)
    return env


def reset_broker() -> None:
    Redis.from_url(BROKER_URL).flushdb()


def start_worker(env: dict[str, str], schedule: Path) -> subprocess.Popen[bytes]:
    """A Celery worker with embedded beat, exactly as `make run` starts it."""
    return start("worker", env, schedule, embedded_beat=True)


def start(name: str, env: dict[str, str], schedule: Path, **options: Any) -> subprocess.Popen[bytes]:
    """One process of the system (src/core/processes.py), as `make NAME` starts it."""
    argv = process_argv(name, schedule, **options)
    # A session of its own, so that `kill` takes the whole process group: a worker's embedded beat
    # is a child process that would outlive a SIGKILL of the worker alone and keep sending ticks.
    return subprocess.Popen(
        argv, cwd=SRC, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


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


_READ = """
import json, sys, clickhouse_connect
client = clickhouse_connect.get_client(dsn=sys.argv[1])
exists = client.command("EXISTS TABLE event_log")
ids = [str(r[0]) for r in client.query("SELECT event_id FROM event_log").result_rows] if exists else []
print(json.dumps(ids))
"""


def clickhouse_event_ids(clickhouse_dir: Path) -> list[str]:
    """Every event_id in event_log at `clickhouse_dir`, repeats included (read without FINAL)."""
    for _ in range(50):  # the writing process may still be releasing the directory
        result = subprocess.run(
            [sys.executable, "-c", _READ, f"chdb://{clickhouse_dir}"], capture_output=True, text=True
        )
        if result.returncode == 0:
            return list(json.loads(result.stdout))
        time.sleep(0.2)
    raise AssertionError(f"cannot read {clickhouse_dir}: {result.stderr[-2000:]}")
