from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from eventlog.clickhouse.event_log import connect, database_name, ensure_schema
from eventlog.conf import app_settings
from eventlog.errors import ClickHouseError
from eventlog.runtime import clickhouse_options


class Command(BaseCommand):
    help = "Create or update ClickHouse's event_log table (idempotent). The relay also does this itself."

    def handle(self, *args: Any, **options: Any) -> None:
        url, clickhouse = app_settings().clickhouse_url, clickhouse_options()
        try:
            client = connect(url, clickhouse)
            ensure_schema(client, database_name(url), clickhouse.cluster)
            client.close()
        except ClickHouseError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"event_log is ready in database {database_name(url)!r}")
