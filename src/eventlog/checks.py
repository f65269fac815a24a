"""Django system checks for eventlog's configuration, with stable ids (`manage.py check` prints
them; `migrate` and `runserver` run them first):

    eventlog.E001  EVENTLOG is not a dict, or has a key eventlog does not know
    eventlog.E002  a value of the wrong type or out of range
    eventlog.E003  CLICKHOUSE_URL missing or malformed
    eventlog.E004  the outbox's database is not PostgreSQL
    eventlog.E005  Celery beat's schedule has no entry for the relay task (eventlog/beat.py)
    eventlog.E006  a beat scheduler that rounds the relay's schedule away (django-celery-beat's
                   keeps whole seconds and drops relative `expires`; celery.beat's keep both)
"""

from __future__ import annotations

from typing import Any

from celery import current_app
from django.conf import settings
from django.core import checks
from django.db import connections

from eventlog.beat import RELAY_TASK
from eventlog.conf import parse

# Schedulers known to round an entry's interval to whole seconds and to drop relative `expires`.
ROUNDING_SCHEDULERS = ("django_celery_beat",)


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


@checks.register()
def relay_schedule(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The host's Celery app (its current app) must tick the relay, on a scheduler that keeps
    the entry's interval and options. Nothing is said when no Celery app of the project's is
    loaded (Celery's fallback app): then there is no schedule to read."""
    if current_app.main in (None, "default"):
        return []
    conf = current_app.conf
    entries = [entry for entry in (conf.beat_schedule or {}).values() if entry.get("task") == RELAY_TASK]
    if not entries:
        return [
            checks.Error(
                f"Celery beat's schedule has no entry for {RELAY_TASK}: nothing relays the outbox",
                hint="CELERY_BEAT_SCHEDULE = {**eventlog.beat.beat_schedule(EVENTLOG), ...}",
                id="eventlog.E005",
            )
        ]
    scheduler = conf.beat_scheduler
    name = scheduler if isinstance(scheduler, str) else f"{scheduler.__module__}.{scheduler.__qualname__}"
    if not name.startswith(ROUNDING_SCHEDULERS):
        return []
    return [
        checks.Error(
            f"beat's scheduler {name!r} cannot keep the relay's schedule: eventlog's entries have "
            "sub-second intervals and relative `expires`, which only celery.beat's own schedulers keep",
            hint="leave CELERY_BEAT_SCHEDULER unset (celery.beat:PersistentScheduler), or give eventlog "
            "a beat of its own",
            id="eventlog.E006",
        )
    ]
