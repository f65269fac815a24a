from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError

from eventlog.api_keys import create_api_key


class Command(BaseCommand):
    help = "Create an API key for the HTTP API. The key is printed once, alone on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="a unique name for the key, e.g. the producing service")

    def handle(self, *args: Any, name: str, **options: Any) -> None:
        try:
            api_key, raw_key = create_api_key(name)
        except IntegrityError as exc:
            raise CommandError(f"an API key named {name!r} already exists") from exc
        self.stdout.write(f"Created API key {api_key.name!r}. Store it now; it is not shown again:")
        self.stdout.write(raw_key)
