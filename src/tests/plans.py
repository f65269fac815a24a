"""The real plans of the statements a piece of code runs, captured from PostgreSQL while it runs.

PostgreSQL's auto_explain module (contrib, shipped with the server) explains every statement the
session executes, COPY's query included, with ANALYZE and BUFFERS, and here sends each plan to the
client as a NOTICE instead of the server log. Nothing is parsed from SQL text: what is checked is
what the executor did.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import connection

OUTBOX = "eventlog_outbox_event"
SCANS = frozenset({"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan"})
_SKIPPED_ROWS = ("Rows Removed by Filter", "Rows Removed by Index Recheck")

_AUTO_EXPLAIN = (
    "LOAD 'auto_explain'",  # needs a superuser, as the tests' PostgreSQL role is
    "SET auto_explain.log_min_duration = 0",
    "SET auto_explain.log_analyze = on",
    "SET auto_explain.log_buffers = on",
    "SET auto_explain.log_timing = off",  # row counts and buffers without a clock read per row
    "SET auto_explain.log_format = json",
    "SET auto_explain.log_level = notice",
    "SET client_min_messages = notice",
)


@dataclass(frozen=True)
class Plan:
    query: str
    milliseconds: float  # the statement's execution time in the server
    root: dict[str, Any]

    def nodes(self) -> Iterator[dict[str, Any]]:
        pending = [self.root]
        while pending:
            node = pending.pop()
            yield node
            pending.extend(node.get("Plans", []))

    def scans(self, table: str = OUTBOX) -> list[dict[str, Any]]:
        """The scans of the outbox table (or `table`), outermost only (a node's buffers include its
        children's)."""
        found: list[dict[str, Any]] = []
        pending = [self.root]
        while pending:
            node = pending.pop()
            if node["Node Type"] in SCANS and node.get("Relation Name") == table:
                found.append(node)
            else:
                pending.extend(node.get("Plans", []))
        return found

    def blocks_touched(self, table: str = OUTBOX) -> int:
        """Buffers the statement's scans of the outbox (or `table`) touched (hit or read), excluding
        the per-row work of a DELETE or UPDATE on the rows they found."""
        return sum(node["Shared Hit Blocks"] + node["Shared Read Blocks"] for node in self.scans(table))

    def rows_visited(self, table: str = OUTBOX) -> int:
        """Rows the statement's scans of the outbox (or `table`) visited: those they returned, and
        those their filters (or a bitmap's recheck) threw away, over all their loops."""
        return sum(
            node["Actual Loops"] * sum(node.get(key, 0) for key in ("Actual Rows", *_SKIPPED_ROWS))
            for node in self.scans(table)
        )

    def summary(self) -> str:
        scans = [
            f"{node['Node Type']} {node.get('Index Name', '')}: {node['Actual Rows']} rows"
            f" ({node.get('Rows Removed by Filter', 0)} filtered), "
            f"{node['Shared Hit Blocks'] + node['Shared Read Blocks']} blocks"
            for node in self.scans()
        ]
        query = re.sub(r"\s+", " ", self.query).strip()[:160]
        figures = f"{self.rows_visited()} rows, {self.blocks_touched()} blocks, {self.milliseconds:.2f} ms"
        return f"{figures}, {scans}: {query}"


@contextmanager
def captured_plans() -> Iterator[list[Plan]]:
    """Collect the plan of every statement the default connection runs inside the block."""
    connection.ensure_connection()
    plans: list[Plan] = []

    def on_notice(diagnostic: Any) -> None:
        message = diagnostic.message_primary or ""
        if message.startswith("duration:"):
            explained = json.loads(message[message.index("{") :])
            plans.append(Plan(explained["Query Text"], float(message.split()[1]), explained["Plan"]))

    raw = connection.connection
    raw.add_notice_handler(on_notice)
    with connection.cursor() as cursor:
        for statement in _AUTO_EXPLAIN:
            cursor.execute(statement)
    try:
        yield plans
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET auto_explain.log_min_duration = -1")
        raw.remove_notice_handler(on_notice)
