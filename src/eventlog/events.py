"""The in-process producer API: `emit_event` and `emit_events`.

Both write into the outbox on the caller's database connection, inside whatever transaction is
open: if the caller's transaction rolls back, the events are gone with it. Nothing here talks to
ClickHouse; the relay does that after commit.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection

from eventlog.errors import InvalidEvents, Problem

MAX_EVENT_TYPE_LENGTH = 255
MAX_METADATA_VERSION = 2**63 - 1  # PostgreSQL bigint; ClickHouse's UInt64 holds all of these
# ClickHouse DateTime64 covers [1900-01-01, 2299-12-31]; outside it values would be clamped.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2299, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


@dataclass(frozen=True)
class NewEvent:
    """An event to record. Only `event_type` is required; `environment` None means the default."""

    event_type: str
    event_context: Mapping[str, Any] = field(default_factory=dict)
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    event_date_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    environment: str | None = None
    metadata_version: int = 1


@dataclass(frozen=True)
class EmitResult:
    accepted: int
    duplicates: int


# The events travel as one JSON document that PostgreSQL unpacks in C: psycopg's text dumping of six
# parallel arrays escaped every element with a regular expression and cost half of emit_events.
_INSERT = """
    INSERT INTO eventlog_outbox_event
        (event_id, event_type, event_date_time, environment, event_context, metadata_version)
    SELECT event_id, event_type, event_date_time, environment, event_context, metadata_version
    FROM jsonb_to_recordset(%s::jsonb) AS e(
        event_id uuid, event_type text, event_date_time timestamptz, environment text, event_context jsonb,
        metadata_version bigint
    )
    ON CONFLICT (event_id) DO NOTHING
"""


def emit_event(event: NewEvent) -> bool:
    """Write one event into the outbox. Returns False when its event_id was already recorded.

    Raises InvalidEvents (writing nothing) when the event breaks a rule of `check_event`.
    """
    return emit_events([event]).accepted == 1


def emit_events(events: Sequence[NewEvent]) -> EmitResult:
    """Write many events into the outbox with one statement: all of them or, on error, none.

    An event whose event_id is already in the outbox (or earlier in `events`) is skipped and
    counted as a duplicate. Raises InvalidEvents, writing nothing, if any event is invalid.
    """
    problems = [problem for index, event in enumerate(events) for problem in check_event(event, index)]
    if problems:
        raise InvalidEvents(problems)
    if not events:
        return EmitResult(accepted=0, duplicates=0)
    default_environment = settings.EVENTLOG.environment
    document = json.dumps(
        [
            {
                "event_id": str(e.event_id),
                "event_type": e.event_type,
                "event_date_time": e.event_date_time.isoformat(),
                "environment": default_environment if e.environment is None else e.environment,
                "event_context": e.event_context,
                "metadata_version": e.metadata_version,
            }
            for e in events
        ],
        ensure_ascii=False,
    )
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, [document])
        accepted = cursor.rowcount
    return EmitResult(accepted=accepted, duplicates=len(events) - accepted)


def check_event(event: NewEvent, index: int = 0) -> list[Problem]:
    """Every rule an event must meet to be stored in PostgreSQL and in ClickHouse, as Problems."""
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
    if not isinstance(event.event_context, Mapping):
        problem("event_context", "must be a JSON object")
    elif (reason := unstorable_context(event.event_context)) is not None:
        problem("event_context", reason)
    version = event.metadata_version
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= MAX_METADATA_VERSION:
        problem("metadata_version", f"must be an integer from 0 to {MAX_METADATA_VERSION}")
    return problems


def is_storable_text(text: str) -> bool:
    """PostgreSQL text cannot hold NUL, and UTF-8 cannot hold unpaired surrogates."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# A NUL escaped by json.dumps, not preceded by an escaped backslash.
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def unstorable_context(context: Mapping[str, Any]) -> str | None:
    """Why `context` cannot be stored as PostgreSQL jsonb, or None when it can.

    json.dumps walks the value in C: it refuses NaN, Infinity and values that are not JSON, and
    turns non-string keys into strings as it always does.
    """
    try:
        text = json.dumps(context, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return f"is not valid JSON: {exc}"
    if "\\u0000" in text and _ESCAPED_NUL.search(text):
        return "contains a NUL character"
    return None if is_storable_text(text) else "contains an unpaired surrogate"
