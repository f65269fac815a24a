"""Django system checks for eventlog's configuration, with stable ids (`manage.py check` prints
them; `migrate` and `runserver` run them first):

    eventlog.E001  EVENTLOG is not a dict, or has a key eventlog does not know
    eventlog.E002  a value of the wrong type or out of range
    eventlog.E003  CLICKHOUSE_URL missing or malformed
    eventlog.E004  the outbox's database (OUTBOX_DATABASE) is not in DATABASES, or not PostgreSQL,
                   or eventlog's models are routed elsewhere (eventlog.routers.OutboxRouter)
    eventlog.E005  Celery beat's schedule has no entry for the relay task (eventlog/scheduling/beat.py)
    eventlog.E006  a beat scheduler that rounds the relay's schedule away (django-celery-beat's
                   keeps whole seconds and drops relative `expires`; celery.beat's keep both)
    eventlog.E007  EMBEDDED_CLICKHOUSE_PATH is set but the `embedded` extra (chDB) is not installed
"""

from __future__ import annotations

from typing import Any

from celery import current_app
from django.conf import settings
from django.core import checks
from django.db import connections, router

from eventlog.conf import parse, raw_value
from eventlog.embedded_clickhouse.config import missing_modules
from eventlog.models import OutboxEvent
from eventlog.scheduling.beat import RELAY_TASK

# Schedulers known to round an entry's interval to whole seconds and to drop relative `expires`.
ROUNDING_SCHEDULERS = ("django_celery_beat",)


@checks.register()
def eventlog_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    _, problems = parse(getattr(settings, "EVENTLOG", {}))
    return [checks.Error(problem.message, hint=problem.hint, id=problem.id) for problem in problems]


@checks.register()
def outbox_database(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The outbox relies on PostgreSQL itself: snapshots, COPY and its planner settings."""
    alias = raw_value("OUTBOX_DATABASE")
    if alias not in connections:
        message = f"EVENTLOG['OUTBOX_DATABASE'] is {alias!r}, which is not a database in DATABASES"
        return [checks.Error(message, hint=f"DATABASES has {', '.join(connections)}", id="eventlog.E004")]
    vendor = connections[alias].vendor
    if vendor == "postgresql":
        return _outbox_models_routed_to(alias)
    return [
        checks.Error(
            f"eventlog's outbox needs PostgreSQL, but the database {alias!r} is {vendor}",
            hint=f"set DATABASES[{alias!r}]['ENGINE'] to 'django.db.backends.postgresql'",
            id="eventlog.E004",
        )
    ]


def _outbox_models_routed_to(alias: str) -> list[checks.CheckMessage]:
    routed = router.db_for_write(OutboxEvent)
    if routed == alias:
        return []
    return [
        checks.Error(
            f"eventlog's models go to the database {routed!r}, but its outbox is {alias!r} (OUTBOX_DATABASE)",
            hint="add 'eventlog.routers.OutboxRouter' to DATABASE_ROUTERS",
            id="eventlog.E004",
        )
    ]


@checks.register()
def embedded_engine(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """`manage.py embedded_clickhouse` needs chDB, which only the `embedded` extra installs. Looked
    up, not imported: loading the engine costs every process that runs the checks."""
    missing = missing_modules() if raw_value("EMBEDDED_CLICKHOUSE_PATH") else []
    if not missing:
        return []
    return [
        checks.Error(
            "EVENTLOG['EMBEDDED_CLICKHOUSE_PATH'] is set, but the embedded server's modules are not "
            f"installed: {', '.join(missing)}",
            hint="pip install 'eventlog[embedded]', or leave EMBEDDED_CLICKHOUSE_PATH empty and point "
            "CLICKHOUSE_URL at a ClickHouse server",
            id="eventlog.E007",
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
                hint="CELERY_BEAT_SCHEDULE = {**eventlog.scheduling.beat.beat_schedule(EVENTLOG), ...}",
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
