from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError

from eventlog.access.api_keys import create_api_key


class Command(BaseCommand):
    help = "Create an API key for the HTTP API. The key is printed once, alone on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="a unique name for the key, e.g. the producing service")
        parser.add_argument(
            "--scope", default="ingest", help="comma-separated: ingest (send events), read (read them back)"
        )
        parser.add_argument(
            "--environment", action="append", default=[], dest="environments",
            help="the only environment the key may send or read; repeat for more (default: every one)",
        )  # fmt: skip

    def handle(self, *args: Any, name: str, scope: str, environments: list[str], **options: Any) -> None:
        scopes = [part.strip() for part in scope.split(",") if part.strip()]
        try:
            api_key, raw_key = create_api_key(name, scopes, environments)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        except IntegrityError as exc:
            raise CommandError(f"an API key named {name!r} already exists") from exc
        bound = f", environments {', '.join(api_key.environments)}" if api_key.environments else ""
        self.stdout.write(
            f"Created API key {api_key.name!r} (scopes {', '.join(api_key.scopes)}{bound}). "
            "Store it now; it is not shown again:"
        )
        self.stdout.write(raw_key)
