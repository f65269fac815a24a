from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from eventlog.conf import app_settings
from eventlog.errors import ClickHouseError
from eventlog.relay.delivery import relay_outbox
from eventlog.runtime import event_log_writer


class Command(BaseCommand):
    help = (
        "Relay pending outbox events into ClickHouse, the same code the Celery task runs. "
        "With the embedded engine, stop the worker first: one process may open it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="drain the outbox once and exit")
        parser.add_argument("--batch-size", type=int, default=app_settings().relay_batch_size)

    def handle(self, *args: Any, once: bool, batch_size: int, **options: Any) -> None:
        interval = app_settings().relay_interval_seconds
        while True:
            try:
                # max_batches has no cap here: --once means "until the outbox is empty".
                result = relay_outbox(event_log_writer(), batch_size, max_batches=2**31)
            except ClickHouseError as exc:
                if once:
                    raise CommandError(str(exc)) from exc
                self.stderr.write(f"relay failed, retrying in {interval}s: {exc}")
            else:
                self.stdout.write(f"relayed {result.events} events in {result.batches} batches")
            if once:
                return
            time.sleep(interval)
