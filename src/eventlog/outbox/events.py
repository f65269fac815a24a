"""The in-process producer API: `emit_event` and `emit_events`.

Both write into the outbox on the connection of the outbox's database (or the one `using` names),
inside whatever transaction is open on it: if the caller's transaction rolls back, the events are
gone with it. Nothing here talks to
ClickHouse; the relay does that after commit.
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

import psycopg
from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg import errors as pg_errors

from eventlog.conf import app_settings
from eventlog.errors import InvalidEvents, Problem
from eventlog.metrics import EVENTS_DUPLICATE, count_accepted
from eventlog.outbox.planner import outbox_connection

MAX_EVENT_TYPE_LENGTH = 255
MAX_METADATA_VERSION = 2**63 - 1  # PostgreSQL bigint; ClickHouse's UInt64 holds all of these
# ClickHouse DateTime64 covers [1900-01-01, 2299-12-31]; outside it values would be clamped.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2299, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def new_event_ids(count: int) -> list[uuid.UUID]:
    """`count` version 7 UUIDs (RFC 9562): the Unix time in milliseconds, then 74 random bits from one
    read of the OS's randomness (`uuid.uuid4()` makes a system call for each).

    Time-ordered ids keep the outbox's unique index on event_id growing at its right edge, as the
    primary key does, where random (version 4) ids land on a random page of it each: PostgreSQL
    spends about a fifth less CPU per event written, and writes less WAL (docs/benchmarks.md).
    """
    millis = time.time_ns() // 1_000_000
    randomness = os.urandom(10 * count)
    prefix = (millis & _MILLIS_MASK) << 80 | 7 << 76 | 0b10 << 62  # time, version 7, RFC 9562 variant
    return [
        uuid.UUID(int=prefix | _spread(int.from_bytes(randomness[start : start + 10])))
        for start in range(0, 10 * count, 10)
    ]


_MILLIS_MASK = (1 << 48) - 1


def _spread(random_bits: int) -> int:
    """74 of the 80 random bits in their UUIDv7 places: 12 after the version, 62 after the variant."""
    return (random_bits >> 62 & 0xFFF) << 64 | random_bits & ((1 << 62) - 1)


def new_event_id() -> uuid.UUID:
    return new_event_ids(1)[0]


# One encoder for every context: json.dumps with options builds a new encoder on every call.
_CONTEXT_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True)
class NewEvent:
    """An event to record. Only `event_type` is required; `environment` None means the default."""

    event_type: str
    event_context: Mapping[str, Any] = field(default_factory=dict)
    event_id: uuid.UUID = field(default_factory=new_event_id)
    event_date_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    environment: str | None = None
    metadata_version: int = 1


@dataclass(frozen=True, slots=True)
class CheckedEvent:
    """An event that meets every rule of `check`, with its context as the JSON text the outbox
    stores: what `emit_events` writes without checking it again."""

    event_type: str
    context_json: str
    event_id: uuid.UUID
    event_date_time: datetime
    environment: str | None
    metadata_version: int


@dataclass(frozen=True)
class EmitResult:
    accepted: int
    duplicates: int


# The events travel as one JSON document that PostgreSQL unpacks in C: psycopg's text dumping of six
# parallel arrays escaped every element with a regular expression and cost half of emit_events. The
# document is assembled from pieces so that each event_context is serialized once, by `check`.
_INSERT = """
    INSERT INTO eventlog_outbox_event
        (event_id, event_type, event_date_time, environment, event_context, metadata_version)
    SELECT event_id, event_type, event_date_time, environment, event_context, metadata_version
    FROM jsonb_to_recordset(%s::jsonb) AS e(
        event_id uuid, event_type text, event_date_time timestamptz, environment text, event_context jsonb,
        metadata_version bigint
    )
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_type
"""


# From this many events on, emit_events first tries COPY: PostgreSQL takes rows from COPY in a fraction
# of the time it spends unpacking a JSON document, but COPY cannot skip duplicates, so a batch holding
# one is rolled back (to a savepoint) and written again by _INSERT. Below it, one statement is cheaper.
COPY_FROM_EVENTS = 50
_COPY = """
    COPY eventlog_outbox_event (event_id, event_type, event_date_time, environment, event_context,
        metadata_version) FROM STDIN
"""


def emit_event(event: NewEvent, using: str | None = None) -> bool:
    """Write one event into the outbox. Returns False when its event_id was already recorded.

    Raises InvalidEvents (writing nothing) when the event breaks a rule of `check`.
    """
    return emit_events([event], using=using).accepted == 1


def emit_events(events: Sequence[NewEvent | CheckedEvent], using: str | None = None) -> EmitResult:
    """Write many events into the outbox: all of them or, on error, none.

    An event whose event_id is already in the outbox (or earlier in `events`) is skipped and
    counted as a duplicate. Raises InvalidEvents, writing nothing, if any event is invalid; a
    CheckedEvent is not checked again (the HTTP API checks while parsing).

    `using` names the database connection whose transaction the events join, as Django's own
    `using=` does; by default the outbox's (EVENTLOG['OUTBOX_DATABASE']). Another alias must reach
    the same PostgreSQL database, where the relay reads the outbox: else ValueError, writing nothing.
    """
    connection = _joined_connection(using)
    config = app_settings()
    default_environment = config.environment
    if len(events) >= COPY_FROM_EVENTS:
        sent: list[CheckedEvent] = []
        if _copy_unless_duplicate(connection, events, default_environment, sent):
            count_accepted(event.event_type for event in events)
            return EmitResult(accepted=len(events), duplicates=0)
        events = [*sent, *events[len(sent) :]]  # the ones COPY got to are not checked again
    checked, problems = check_all(events)
    if problems:
        raise InvalidEvents(problems)
    if not checked:
        return EmitResult(accepted=0, duplicates=0)
    document = "[" + ",".join(_event_json(event, default_environment) for event in checked) + "]"
    # A prepared statement on psycopg's own server-side-binding cursor (Django's binds client-side and
    # cannot prepare): PostgreSQL plans this insert once per connection, not once per request
    # (unless PREPARED_STATEMENTS is off: then it is planned each time, as an unnamed statement).
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(_INSERT, [document], prepare=config.prepared_statements)
        accepted_types = [row[0] for row in cursor.fetchall()]
    count_accepted(accepted_types)
    EVENTS_DUPLICATE.inc(len(events) - len(accepted_types))
    return EmitResult(accepted=len(accepted_types), duplicates=len(events) - len(accepted_types))


def _joined_connection(using: str | None) -> BaseDatabaseWrapper:
    outbox = outbox_connection()
    if using is None or using == outbox.alias:
        return outbox
    if _database_identity(using) != _database_identity(outbox.alias):
        raise ValueError(
            f"emit_events(using={using!r}): that database is not the outbox's ({outbox.alias!r}, "
            "EVENTLOG['OUTBOX_DATABASE']), so the relay would never read these events"
        )
    return connections[using]


# The database and the server instance a connection reaches, whatever names its settings use for
# them (localhost or 127.0.0.1, a service file, a pooler's port). Asked once per alias and process.
_IDENTITY = "SELECT current_database(), pg_postmaster_start_time()::text"


@functools.cache
def _database_identity(alias: str) -> tuple[str, str]:
    with connections[alias].cursor() as cursor:
        cursor.execute(_IDENTITY)
        database, started = cursor.fetchone()
    return database, started


def _copy_unless_duplicate(
    connection: BaseDatabaseWrapper,
    events: Sequence[NewEvent | CheckedEvent],
    default_environment: str,
    sent: list[CheckedEvent],
) -> bool:
    """COPY every event into the outbox and return True; or, when one of their event_ids is already
    recorded, write nothing and return False. `sent` gets each event checked and sent. Raises
    InvalidEvents, writing nothing, when any event breaks a rule of `check`; other database errors
    are raised."""
    try:
        # Inside the caller's transaction a savepoint undoes a failed COPY; outside one, COPY is a
        # transaction of its own and needs no BEGIN and COMMIT round trips.
        undo_point = (
            transaction.atomic(using=connection.alias) if connection.in_atomic_block else nullcontext()
        )
        with undo_point, connection.cursor() as cursor, cursor.cursor.copy(_COPY) as copy:
            copy.set_types(["uuid", "text", "timestamptz", "text", "text", "int8"])
            _send_checked(copy, events, default_environment, sent)
    except pg_errors.UniqueViolation:
        return False
    return True


def _send_checked(
    copy: Any, events: Sequence[NewEvent | CheckedEvent], default_environment: str, sent: list[CheckedEvent]
) -> None:
    """Write each event as a COPY row, checking it just before it is sent, so PostgreSQL stores the
    rows already sent while this process checks the next ones (checking them all first left one
    core idle at a time). After one invalid event nothing more is sent, but the rest are still
    checked; then InvalidEvents lists every problem, and the COPY it unwinds is abandoned."""
    problems: list[Problem] = []
    for index, event in enumerate(events):
        e, event_problems = check(event, index)
        problems += event_problems
        if e is not None and not problems:
            environment = default_environment if e.environment is None else e.environment
            copy.write_row((e.event_id, e.event_type, e.event_date_time, environment, e.context_json,
                            e.metadata_version))  # fmt: skip
            sent.append(e)
    if problems:
        raise InvalidEvents(problems)


def _event_json(event: CheckedEvent, default_environment: str) -> str:
    """One checked event as a JSON object (UUIDs, ISO timestamps and integers need no escaping)."""
    environment = default_environment if event.environment is None else event.environment
    return (
        f'{{"event_id":"{event.event_id}","event_type":{encode_basestring(event.event_type)},'
        f'"event_date_time":"{event.event_date_time.isoformat()}",'
        f'"environment":{encode_basestring(environment)},"event_context":{event.context_json},'
        f'"metadata_version":{event.metadata_version}}}'
    )


def check_all(events: Sequence[NewEvent | CheckedEvent]) -> tuple[list[CheckedEvent], list[Problem]]:
    """Every event checked (by `check`), and every problem of them all."""
    checked: list[CheckedEvent] = []
    problems: list[Problem] = []
    for index, event in enumerate(events):
        result, event_problems = check(event, index)
        problems += event_problems
        if result is not None:
            checked.append(result)
    return checked, problems


def check(
    event: NewEvent | CheckedEvent, index: int = 0, context_json: str | None = None
) -> tuple[CheckedEvent | None, list[Problem]]:
    """The event checked against every rule it must meet to be stored in PostgreSQL and in
    ClickHouse: a CheckedEvent, or None and its Problems. `context_json` is the caller's exact JSON
    of `event_context` when it has one (the HTTP API, from orjson); otherwise it is computed here,
    once. A CheckedEvent is returned as it is."""
    if isinstance(event, CheckedEvent):
        return event, []
    problems: list[Problem] = []

    def problem(field_name: str, message: str) -> None:
        problems.append(Problem(index, field_name, message))

    if not isinstance(event.event_type, str) or not event.event_type:
        problem("event_type", "must be a non-empty string")
    elif len(event.event_type) > MAX_EVENT_TYPE_LENGTH:
        problem("event_type", f"must be at most {MAX_EVENT_TYPE_LENGTH} characters")
    elif not is_storable_text(event.event_type):
        problem("event_type", "must not contain NUL characters or unpaired surrogates")
    if not isinstance(event.event_id, uuid.UUID):
        problem("event_id", "must be a UUID")
    if not isinstance(event.event_date_time, datetime) or event.event_date_time.utcoffset() is None:
        problem("event_date_time", "must be a datetime with an explicit UTC offset")
    elif not EARLIEST <= event.event_date_time <= LATEST:
        problem("event_date_time", "must be between 1900-01-01 and 2299-12-31 (UTC)")
    if event.environment is not None and (
        not isinstance(event.environment, str)
        or len(event.environment) > MAX_EVENT_TYPE_LENGTH
        or not is_storable_text(event.environment)
    ):
        problem("environment", f"must be a string of at most {MAX_EVENT_TYPE_LENGTH} characters")
    text = None
    if not isinstance(event.event_context, Mapping):
        problem("event_context", "must be a JSON object")
    else:
        text, reason = context_text(event.event_context, context_json)
        if reason is not None:
            problem("event_context", reason)
    version = event.metadata_version
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= MAX_METADATA_VERSION:
        problem("metadata_version", f"must be an integer from 0 to {MAX_METADATA_VERSION}")
    if problems or text is None:
        return None, problems
    return CheckedEvent(event.event_type, text, event.event_id, event.event_date_time, event.environment,
                        version), []  # fmt: skip


def is_storable_text(text: str) -> bool:
    """PostgreSQL text cannot hold NUL, and UTF-8 cannot hold unpaired surrogates."""
    if "\x00" in text:
        return False
    if text.isascii():  # no surrogates; a flag of the string, so this costs nothing
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# A NUL escaped by json.dumps, not preceded by an escaped backslash.
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def context_text(context: Mapping[str, Any], given: str | None = None) -> tuple[str | None, str | None]:
    """The context's JSON text (`given`, or json.dumps of it) and why PostgreSQL's jsonb cannot
    store it, or None when it can.

    json.dumps walks the value in C: it refuses NaN, Infinity and values that are not JSON, and
    turns non-string keys into strings as it always does.
    """
    try:
        text = _CONTEXT_ENCODER.encode(context) if given is None else given
    except (TypeError, ValueError, RecursionError) as exc:
        return None, f"is not valid JSON: {exc}"
    if "\\u0000" in text and _ESCAPED_NUL.search(text):
        return text, "contains a NUL character"
    return text, None if is_storable_text(text) else "contains an unpaired surrogate"
