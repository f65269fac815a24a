"""Django system checks for eventlog's configuration, with stable ids (`manage.py check` prints
them; `migrate`, `runserver` and the test runner run them first):

    eventlog.E001  EVENTLOG is not a dict, or has a key eventlog does not know
    eventlog.E002  a value of the wrong type or out of range
    eventlog.E003  CLICKHOUSE_URL missing or malformed
    eventlog.E004  the outbox's database is not PostgreSQL
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.db import connections

from eventlog.conf import parse


@checks.register()
def eventlog_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    _, problems = parse(getattr(settings, "EVENTLOG", {}))
    return [checks.Error(problem.message, hint=problem.hint, id=problem.id) for problem in problems]


@checks.register()
def outbox_database(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The outbox relies on PostgreSQL itself: snapshots, COPY and its planner settings."""
    vendor = connections["default"].vendor
    if vendor == "postgresql":
        return []
    return [
        checks.Error(
            f"eventlog's outbox needs PostgreSQL, but the database 'default' is {vendor}",
            hint="set DATABASES['default']['ENGINE'] to 'django.db.backends.postgresql'",
            id="eventlog.E004",
        )
    ]
