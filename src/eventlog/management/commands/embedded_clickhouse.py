"""`manage.py embedded_clickhouse`: the embedded ClickHouse server (chDB, the `embedded` extra) for
EVENTLOG's CLICKHOUSE_URL, with its data in EMBEDDED_CLICKHOUSE_PATH, until SIGTERM or SIGINT.
It is the one process that opens that path; every other process reaches it over HTTP.

The command checks the settings, then replaces itself (same process id) with the server program,
which holds none of Django (eventlog/embedded_clickhouse/config.py says why)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

import eventlog
from eventlog.conf import app_settings
from eventlog.embedded_clickhouse.config import handoff, missing_modules, serving

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class Command(BaseCommand):
    help = "Serve ClickHouse's HTTP interface from the embedded engine, at EVENTLOG's CLICKHOUSE_URL."
    # The server needs neither the database nor Celery; its own settings are checked below.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--log-level", choices=LOG_LEVELS, default="INFO", help="the server's log level")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            config = app_settings()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        if not config.embedded_clickhouse_path:
            raise CommandError(
                "EVENTLOG['EMBEDDED_CLICKHOUSE_PATH'] is empty: set it to the directory of the "
                "embedded server's data (with a ClickHouse server, this command is not needed)"
            )
        if missing := missing_modules():
            raise CommandError(
                f"the embedded server needs {', '.join(missing)}: pip install 'eventlog[embedded]'"
            )
        data_path, listen = Path(config.embedded_clickhouse_path), config.embedded_clickhouse_listen
        try:
            serving(config.clickhouse_url, data_path, listen)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        # `python -m` finds eventlog where this process found it (src/, or site-packages).
        package_root = str(Path(eventlog.__file__).resolve().parents[1])
        path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        handed = handoff(config.clickhouse_url, data_path, listen, options["log_level"])
        env = {**os.environ, "PYTHONPATH": path, **handed}
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, "-m", "eventlog.embedded_clickhouse"], env)  # noqa: S606
