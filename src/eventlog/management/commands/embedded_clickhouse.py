"""`manage.py embedded_clickhouse`: the embedded ClickHouse server (chDB, the `embedded` extra) for
EVENTLOG's CLICKHOUSE_URL, with its data in EMBEDDED_CLICKHOUSE_PATH, until SIGTERM or SIGINT.
It is the one process that opens that path; every other process reaches it over HTTP.

The command checks the settings, then replaces itself (same process id) with the server program,
which holds none of Django (eventlog/embedded_clickhouse/config.py says why)."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from eventlog.conf import app_settings
from eventlog.embedded_clickhouse.config import handoff, serving


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
        if importlib.util.find_spec("chdb") is None:
            raise CommandError("the embedded server needs chDB: pip install 'eventlog[embedded]'")
        data_path, listen = Path(config.embedded_clickhouse_path), config.embedded_clickhouse_listen
        try:
            serving(config.clickhouse_url, data_path, listen)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        log_level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        env = {**os.environ, **handoff(config.clickhouse_url, data_path, listen, log_level)}
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, "-m", "eventlog.embedded_clickhouse"], env)  # noqa: S606
