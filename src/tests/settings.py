"""Settings for the test suite: the project's settings with test-only services.

Tests get their own embedded ClickHouse server (per run: a free port, a new password, a new data
directory; tests/conftest.py starts it), Redis database 15 and a relay that ticks faster, whatever
src/core/.env says; pytest-django adds the `test_` database prefix.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key")
os.environ["CLICKHOUSE_URL"] = f"http://eventlog:{secrets.token_urlsafe(16)}@127.0.0.1:{free_port()}/default"
# Everything a run writes outside the databases (ClickHouse's data, spool and log, the processes'
# metrics files) goes under one directory, removed when the run ends (tests/conftest.py).
# Named here, made by whoever writes there first (importing these settings, as mypy does, makes none).
RUN_DIR = Path(tempfile.gettempdir()) / f"eventlog-test-{secrets.token_hex(6)}"
os.environ["EMBEDDED_CLICKHOUSE_PATH"] = str(RUN_DIR / "clickhouse")
os.environ["EMBEDDED_CLICKHOUSE"] = "1"  # also in the image, which has a ClickHouse server otherwise

from core.settings import *  # noqa: E402, F403 (after the environment above: settings read it once)
from core.settings import CONFIG, eventlog_settings  # noqa: E402
from eventlog.scheduling.beat import beat_schedule  # noqa: E402


def redis_database(url: str, database: int) -> str:
    """The same Redis server (host, password) as `url`, another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


# The tests' own Redis databases on the configured server: 15 for this process, 14 for the processes
# the tests start (development uses 0, the benchmark 13).
_TEST_REDIS = redis_database(CONFIG.redis_url, 15)
PROCESS_REDIS = redis_database(CONFIG.redis_url, 14)
CONFIG = dataclasses.replace(
    CONFIG,
    broker_url=_TEST_REDIS,
    redis_url=_TEST_REDIS,
    environment="test",
    relay_interval_seconds=0.5,
    worker_metrics_port=0,  # tests start the metrics server themselves, on a free port
)
EVENTLOG = eventlog_settings(CONFIG)
CELERY_BROKER_URL = CONFIG.broker_url
CELERY_BEAT_SCHEDULE = beat_schedule(EVENTLOG)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user creation in tests
# A second alias of the same test database (Django's test mirror), for emit_events(using=...) and
# the checks of OUTBOX_DATABASE.
DATABASES["mirror"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}  # noqa: F405
