"""Statements on the outbox that cost what they read, whatever PostgreSQL's statistics say.

The outbox is a queue: rows arrive in bursts, are relayed within seconds and stay until retention
deletes them. Its planner statistics are therefore almost always wrong: missing (a new table, or
autovacuum off), or taken when the backlog was somewhere else (analyzed at 1,000 rows, now ten
million). Each of the relay's statements has one right plan, an index range scan on
`outbox_position_idx` (or a partial index) that stops after the rows it needs. With wrong statistics
the planner picks others: a parallel sequential scan of every processed row, or a bitmap scan of the
whole snapshot window sorted to take its first batch. docs/design.md ("Plans") has the measurements.

So these statements run in a transaction whose planner may not use sequential scans, bitmap scans
or explicit sorts, and no JIT: for every statement here an index path exists, so the plan is that
path, and its cost follows the rows it reads. The settings are `SET LOCAL`: they end with the
transaction (or are put back, inside a caller's transaction) and never reach other statements on
the connection. They run on the outbox's database (`outbox_connection`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

from eventlog.conf import app_settings

# jit: with the planner's costs misestimated (or raised by these switches where a sort has no
# alternative, as for the last row of a claimed batch) PostgreSQL would compile to machine code a
# statement that runs for well under a millisecond, at a cost far above running it.
INDEX_SCAN_SETTINGS = {
    "enable_seqscan": "off",
    "enable_bitmapscan": "off",
    "enable_sort": "off",
    "jit": "off",
}


def outbox_connection() -> BaseDatabaseWrapper:
    """The connection of the outbox's database (EVENTLOG['OUTBOX_DATABASE'], 'default' unless a
    project has several): every statement eventlog runs on the outbox goes through it."""
    return connections[app_settings().outbox_database]


@contextmanager
def index_scans(also: Mapping[str, str] | None = None) -> Iterator[CursorWrapper]:
    """A transaction (a savepoint inside the caller's) and a cursor on it in which every statement,
    through the cursor or the ORM, is planned with the settings above, and runs with the settings
    `also` names.

    Inside a caller's transaction the caller's own settings are put back on the way out, because a
    `SET LOCAL` made in a released savepoint lasts until the outer transaction ends. On an error the
    savepoint's rollback undoes them.
    """
    settings = {**INDEX_SCAN_SETTINGS, **(also or {})}
    apply = "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in settings)
    connection = outbox_connection()
    outer = connection.in_atomic_block
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        previous: tuple[str, ...] = ()
        if outer:
            cursor.execute("SELECT " + ", ".join("current_setting(%s)" for _ in settings), list(settings))
            previous = cursor.fetchone()
        cursor.execute(apply, [value for pair in settings.items() for value in pair])
        yield cursor
        if outer:
            cursor.execute(apply, [value for pair in zip(settings, previous, strict=True) for value in pair])
