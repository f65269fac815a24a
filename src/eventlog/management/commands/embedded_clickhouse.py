"""`manage.py embedded_clickhouse`: the embedded ClickHouse server (chDB, the `embedded` extra) for
EVENTLOG's CLICKHOUSE_URL, with its data in EMBEDDED_CLICKHOUSE_PATH, until SIGTERM or SIGINT.
It is the one process that opens that path; every other process reaches it over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from eventlog.conf import app_settings


class Command(BaseCommand):
    help = "Serve ClickHouse's HTTP interface from the embedded engine, at EVENTLOG's CLICKHOUSE_URL."
    # The server needs neither the database nor Celery; its own settings are checked below.
    requires_system_checks: list[str] = []

    def handle(self, *args: Any, **options: Any) -> None:
        config = app_settings()
        if not config.embedded_clickhouse_path:
            raise CommandError(
                "EVENTLOG['EMBEDDED_CLICKHOUSE_PATH'] is empty: set it to the directory of the "
                "embedded server's data (with a ClickHouse server, this command is not needed)"
            )
        try:
            from eventlog.embedded_clickhouse.server import run, serving
        except ImportError as exc:
            raise CommandError(
                f"the embedded server needs chDB: pip install 'eventlog[embedded]' ({exc})"
            ) from exc
        try:
            server = serving(
                config.clickhouse_url,
                Path(config.embedded_clickhouse_path),
                config.embedded_clickhouse_listen,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        run(server)
