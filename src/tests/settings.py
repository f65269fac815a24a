"""Settings for the test suite: the project's settings with test-only services.

Tests get their own embedded ClickHouse directory (per run), Redis database 15 and a relay that
ticks faster, whatever src/core/.env says; pytest-django adds the `test_` database prefix.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from urllib.parse import urlsplit, urlunsplit

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key")

from core.settings import *  # noqa: F403
from core.settings import CELERY_BEAT_SCHEDULE, CONFIG


def redis_database(url: str, database: int) -> str:
    """The same Redis server (host, password) as `url`, another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


# The tests' own Redis databases on the configured server: 15 for this process, 14 for the processes
# the tests start (development uses 0, the benchmark 13).
_TEST_REDIS = redis_database(CONFIG.redis_url, 15)
PROCESS_REDIS = redis_database(CONFIG.redis_url, 14)
EVENTLOG = dataclasses.replace(
    CONFIG,
    clickhouse_url=f"chdb://{tempfile.mkdtemp(prefix='eventlog-test-clickhouse-')}",
    broker_url=_TEST_REDIS,
    redis_url=_TEST_REDIS,
    environment="test",
    relay_interval_seconds=0.5,
    worker_metrics_port=0,  # tests start the metrics server themselves, on a free port
)
CELERY_BROKER_URL = EVENTLOG.broker_url
CELERY_BEAT_SCHEDULE = {
    name: {**entry, "schedule": EVENTLOG.relay_interval_seconds}
    for name, entry in CELERY_BEAT_SCHEDULE.items()
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user creation in tests
