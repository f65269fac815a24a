from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from eventlog.models import OutboxEvent
from eventlog.outbox.planner import index_scans
from eventlog.relay.poison import replay_dead_letters


class Command(BaseCommand):
    help = "List dead-lettered events (rejected by ClickHouse), or replay them after a fix."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--replay", nargs="*", metavar="EVENT_ID", help="replay these (none: all)")
        parser.add_argument("--limit", type=int, default=100, help="how many to list (default 100)")

    def handle(self, *args: Any, replay: list[str] | None, limit: int, **options: Any) -> None:
        if replay is not None:
            try:
                event_ids = [uuid.UUID(value) for value in replay] or None
            except ValueError as exc:
                raise CommandError(f"not an event id: {exc}") from exc
            self.stdout.write(f"replayed {replay_dead_letters(event_ids)} dead letter(s)")
            return
        with index_scans():  # the partial index on dead letters, not the whole outbox
            dead = OutboxEvent.objects.filter(failed_at__isnull=False).order_by("id")
            self.stdout.write(f"{dead.count()} dead letter(s)")
            listed = list(dead[:limit])
        for event in listed:
            self.stdout.write(
                f"{event.event_id}  {event.event_type}  failed {event.failed_at:%Y-%m-%d %H:%M:%S}"
                f"  rejections={event.rejections}\n    {event.last_error}"
            )
