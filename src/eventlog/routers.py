"""A database router for a project whose outbox is not in its 'default' database.

`DATABASE_ROUTERS = ["eventlog.routers.OutboxRouter"]` sends eventlog's models (the admin, the
dead-letter command, the API keys) and its migrations to EVENTLOG['OUTBOX_DATABASE']; the raw
statements of the outbox and the relay go there on their own (`planner.outbox_connection`).
"""

from __future__ import annotations

from typing import Any

from eventlog.conf import raw_value

APP_LABEL = "eventlog"


class OutboxRouter:
    """It reads OUTBOX_DATABASE unchecked, so that `check` and `migrate` can still report what else is
    wrong with EVENTLOG."""

    def db_for_read(self, model: type[Any], **hints: Any) -> str | None:
        return self._outbox(model._meta.app_label)

    def db_for_write(self, model: type[Any], **hints: Any) -> str | None:
        return self._outbox(model._meta.app_label)

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        if app_label != APP_LABEL:
            return None
        return bool(db == raw_value("OUTBOX_DATABASE"))

    def _outbox(self, app_label: str) -> str | None:
        return str(raw_value("OUTBOX_DATABASE")) if app_label == APP_LABEL else None
