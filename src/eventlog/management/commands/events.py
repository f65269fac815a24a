from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm  # type: ignore[import-untyped]

from eventlog.errors import ClickHouseError, InvalidQuery
from eventlog.reading.events import MAX_PAGE, ExportProgress, export, list_events
from eventlog.reading.filters import EVERYTHING, Params, parse_filters, parse_order
from eventlog.runtime import event_log_reader

_TABLE_COLUMNS = ("event_date_time", "event_type", "environment", "event_id", "event_context")


class Command(BaseCommand):
    help = (
        "Read events back from ClickHouse with the read API's filters: a table of the newest "
        "(--limit), or every matching event written to --output as NDJSON or CSV, with a progress bar."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from", dest="from_", metavar="TIME", help="RFC 3339, inclusive (default: 24 h before --to)"
        )
        parser.add_argument("--to", metavar="TIME", help="RFC 3339, exclusive (default: now)")
        parser.add_argument(
            "--type", action="append", default=[], dest="event_types", help="repeatable: any of"
        )
        parser.add_argument(
            "--environment", action="append", default=[], dest="environments", help="repeatable"
        )
        parser.add_argument("--context", action="append", default=[], metavar="PATH=VALUE", help="up to 5")
        parser.add_argument("--order", choices=("desc", "asc"), default="desc")
        parser.add_argument("--limit", type=int, default=20, help=f"rows of the table (1 to {MAX_PAGE})")
        parser.add_argument("--format", choices=("table", "ndjson", "csv"), default="table", dest="fmt")
        parser.add_argument("--output", type=Path, help="the file an ndjson or csv export is written to")

    def handle(self, *args: Any, **options: Any) -> None:
        params = _params(options)
        try:
            order = parse_order(params)
            filters = parse_filters(params, timezone.now())
            if options["fmt"] == "table":
                self._table(filters, order, options["limit"])
            else:
                self._export(filters, order, options["fmt"], options["output"])
        except (InvalidQuery, ClickHouseError) as exc:
            raise CommandError(str(exc)) from exc

    def _table(self, filters: Any, order: Any, limit: int) -> None:
        page = list_events(
            event_log_reader(),
            filters,
            EVERYTHING,
            order=order,
            limit=limit,
            cursor=None,
            secret=settings.SECRET_KEY,
        )
        rows = [[str(event[column]) for column in _TABLE_COLUMNS] for event in page.events]
        widths = [
            max([len(name)] + [min(len(row[i]), 60) for row in rows]) for i, name in enumerate(_TABLE_COLUMNS)
        ]
        for row in [list(_TABLE_COLUMNS), *rows]:
            self.stdout.write(
                "  ".join(cell[:60].ljust(width) for cell, width in zip(row, widths, strict=True))
            )
        more = " (more: raise --limit or narrow the filters)" if page.next_cursor else ""
        self.stdout.write(f"{len(rows)} event(s){more}")

    def _export(self, filters: Any, order: Any, fmt: str, output: Path | None) -> None:
        if output is None:
            raise CommandError("--output FILE is required with --format ndjson or csv")
        progress = ExportProgress()
        body = export(
            event_log_reader(), filters, EVERYTHING, order=order, fmt=fmt, cursor=None,  # type: ignore[arg-type]
            secret=settings.SECRET_KEY, progress=progress,
        )  # fmt: skip
        last = b""
        with output.open("wb") as file, tqdm(unit=" events", file=sys.stderr, disable=None) as bar:
            for last in body:
                file.write(last)
                bar.update(progress.events - bar.n)
        if fmt == "ndjson" and last.startswith(b'{"complete":false'):
            raise CommandError(
                f"the export stopped after {progress.events} event(s): {last.decode().strip()}"
            )
        self.stdout.write(f"wrote {progress.events} event(s) to {output}")


def _params(options: dict[str, Any]) -> Params:
    params: dict[str, list[str]] = {}
    for name, value in (("from", options["from_"]), ("to", options["to"]), ("order", options["order"])):
        if value is not None:
            params[name] = [value]
    if options["event_types"]:
        params["event_type"] = options["event_types"]
    if options["environments"]:
        params["environment"] = options["environments"]
    for match in options["context"]:
        path, separator, value = match.partition("=")
        if not separator:
            raise CommandError(f"--context must be PATH=VALUE, got {match!r}")
        params.setdefault(f"context.{path}", []).append(value)
    return params
