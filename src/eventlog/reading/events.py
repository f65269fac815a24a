"""Events read back: a page of them, one by id, and an export of all of them.

A page is the `limit` events after its cursor in the sorting key's order (cursor.py), fetched with
one event more than it returns: that one says whether there is a next page. An export is the same
traversal in chunks rendered by ClickHouse itself (NDJSON or CSV text), so the process streaming it
holds one chunk at a time whatever the range, and a stream cut midway can name the cursor after the
last event it sent. Both are read in time slices from their cursor (_sliced).
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

import orjson

from eventlog.clickhouse.event_log import COLUMNS
from eventlog.errors import ClickHouseError, InvalidQuery
from eventlog.reading.cursor import Cursor, Order, Position, encode_cursor
from eventlog.reading.filters import Access, Filters, format_time, from_micros, micros, parse_time, where
from eventlog.reading.store import EventLogReader, Rows

MAX_PAGE = 1000
DEFAULT_PAGE = 100
EXPORT_CHUNK = 50_000
# A read's first time slice, and how much wider each next one is (reading in slices: _sliced).
FIRST_SLICE = timedelta(hours=1)
SLICE_GROWTH = 16
ExportFormat = Literal["ndjson", "csv"]
Found = TypeVar("Found")

_COLUMNS = (
    "toString(event_id), event_type, toUnixTimestamp64Micro(event_date_time), environment, "
    "event_context, metadata_version"
)
# ClickHouse renders an event as the list does: the same fields, in the same order, context as is.
_NDJSON_LINE = (
    'concat(\'{"event_id":"\', toString(event_id), \'","event_type":\', toJSONString(event_type), '
    "',\"event_date_time\":\"', formatDateTime(event_date_time, '%Y-%m-%dT%H:%i:%S.%fZ', 'UTC'), "
    '\'","environment":\', toJSONString(environment), \',"event_context":\', event_context, '
    "',\"metadata_version\":', toString(metadata_version), '}\\n')"
)
_QUOTED = "concat('\"', replaceAll({column}, '\"', '\"\"'), '\"')"  # a CSV field, as RFC 4180 quotes it
_CSV_LINE = (
    "concat(toString(event_id), ',', " + _QUOTED.format(column="event_type") + ", ',', "
    "formatDateTime(event_date_time, '%Y-%m-%dT%H:%i:%S.%fZ', 'UTC'), ',', "
    + _QUOTED.format(column="environment")
    + ", ',', "
    + _QUOTED.format(column="event_context")
    + ", ',', "
    "toString(metadata_version), '\\n')"
)
CSV_HEADER = ",".join(COLUMNS).encode() + b"\n"


@dataclass(frozen=True)
class Page:
    events: list[dict[str, Any]]
    next_cursor: str | None
    read_rows: int  # what ClickHouse read for it (its summary)


def _after(cursor: Cursor | None, order: Order) -> tuple[list[str], dict[str, Any]]:
    """The keyset condition: strictly after the cursor's event in `order`. The time comparison
    comes first and alone, so ClickHouse's primary index skips everything before it."""
    if cursor is None:
        return [], {}
    sign = "<" if order == "desc" else ">"
    position = cursor.after
    time = "fromUnixTimestamp64Micro({after_micros:Int64}, 'UTC')"
    condition = (
        f"event_date_time {sign}= {time} AND (event_date_time {sign} {time} OR "
        f"(event_type, event_id) {sign} ({{after_type:String}}, {{after_id:UUID}}))"
    )
    return [condition], {
        "after_micros": position.micros,
        "after_type": position.event_type,
        "after_id": position.event_id,
    }


def _query(
    select: str, filters: Filters, order: Order, cursor: Cursor | None, limit: int
) -> tuple[str, dict[str, Any]]:
    conditions, parameters = where(filters)
    after, after_parameters = _after(cursor, order)
    direction = "DESC" if order == "desc" else "ASC"
    order_by = f"event_date_time {direction}, event_type {direction}, event_id {direction}"
    sql = (
        f"SELECT {select} FROM {{table}} WHERE {' AND '.join(conditions + after)} "
        f"ORDER BY {order_by} LIMIT {int(limit)}"
    )
    return sql, {**parameters, **after_parameters}


def _event(row: tuple[Any, ...]) -> dict[str, Any]:
    event_id, event_type, micros, environment, context, version = row
    return {
        "event_id": event_id,
        "event_type": event_type,
        "event_date_time": format_time(from_micros(int(micros))),
        "environment": environment,
        "event_context": orjson.loads(context),
        "metadata_version": int(version),
    }


def list_events(
    reader: EventLogReader, filters: Filters, access: Access, *, order: Order, limit: int,
    cursor: Cursor | None, secret: str,
) -> Page:  # fmt: skip
    """The page of `filters`' events (as `access` may see them) after `cursor`, `limit` at most."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidQuery(f"limit must be between 1 and {MAX_PAGE}")
    visible = access.restrict(filters)
    if visible is None:
        return Page([], None, 0)
    result, read_rows = _page_rows(reader, visible, order, cursor, limit + 1)
    events = [_event(row) for row in result.rows[:limit]]
    next_cursor = None
    if len(result.rows) > limit:
        last = result.rows[limit - 1]
        position = Position(int(last[2]), last[1], last[0])
        next_cursor = encode_cursor(Cursor(filters, order, position), secret)
    return Page(events, next_cursor, read_rows)


def _page_rows(
    reader: EventLogReader, filters: Filters, order: Order, cursor: Cursor | None, wanted: int
) -> tuple[Rows, int]:
    """The first `wanted` rows after `cursor`, and the rows ClickHouse read for them (_sliced)."""

    def fetch(part: Filters) -> tuple[Rows, int]:
        sql, parameters = _query(_COLUMNS, part, order, cursor, wanted)
        result = reader.select(sql, parameters, max_rows=wanted, endpoint="list")
        return result, result.read_rows

    return _sliced(fetch, lambda rows: len(rows.rows), wanted, filters, order, _edge(filters, order, cursor))


def _edge(filters: Filters, order: Order, cursor: Cursor | None) -> datetime:
    """Where a read starts: its cursor, or the end of the range it reads from."""
    if cursor:
        return from_micros(cursor.after.micros)
    return filters.end if order == "desc" else filters.start


def _sliced(
    fetch: Callable[[Filters], tuple[Found, int]], count: Callable[[Found], int], wanted: int,
    filters: Filters, order: Order, edge: datetime, width: timedelta = FIRST_SLICE,
) -> tuple[Found, int]:  # fmt: skip
    """What `fetch` finds in the first time slice, widening from `edge` (a cursor, or the end of
    the range it reads from) from `width`, that holds all it asked for or spans the range; and the
    rows ClickHouse read on the way.

    Over a long range ClickHouse reads a reverse-ordered LIMIT query far past what the LIMIT needs
    (about 1.6 M rows for a page of 10 M events: docs/benchmarks.md, "Reading events back"); a
    slice is cut by the primary index, so a read reads what lies near its cursor. A slice holds
    every event between the cursor and its far edge, so the first slice with enough rows gives the
    rows one query over the range would. `fetch` reads up to `wanted` rows with a slice's filters
    and says how many rows ClickHouse read; `count` says how many it found."""
    read_rows = 0
    while True:
        # Compared before any arithmetic: a width grown past the range may not fit a datetime.
        if order == "desc":
            whole = width >= edge - filters.start
            part = filters if whole else replace(filters, start=edge - width)
        else:
            whole = width >= filters.end - edge
            part = filters if whole else replace(filters, end=edge + width)
        found, read = fetch(part)
        read_rows += read
        if whole or count(found) >= wanted:
            return found, read_rows
        width *= SLICE_GROWTH


def get_event(reader: EventLogReader, event_id: str, access: Access) -> dict[str, Any] | None:
    """The event with this id, if there is one `access` may see."""
    try:
        canonical = str(uuid.UUID(event_id))
    except ValueError:
        return None
    conditions = ["event_id = {event_id:UUID}"]
    parameters: dict[str, Any] = {"event_id": canonical}
    if access.environments is not None:
        conditions.append("environment IN {environments:Array(String)}")
        parameters["environments"] = sorted(access.environments)
    sql = f"SELECT {_COLUMNS} FROM {{table}} WHERE {' AND '.join(conditions)} LIMIT 1"
    rows = reader.select(sql, parameters, max_rows=1, endpoint="event").rows
    return _event(rows[0]) if rows else None


@dataclass
class ExportProgress:
    """How far an export got: events sent, and the position of the last one."""

    events: int = 0
    last: Position | None = None


def export_chunks(
    reader: EventLogReader, filters: Filters, access: Access, *, order: Order, fmt: ExportFormat,
    cursor: Cursor | None, progress: ExportProgress, chunk: int = EXPORT_CHUNK,
) -> Iterator[bytes]:  # fmt: skip
    """Every event of `filters` after `cursor`, rendered, one chunk of text at a time; `progress`
    follows what was yielded. Raises ClickHouseError when a chunk cannot be read (`progress` then
    says where to resume)."""
    visible = access.restrict(filters)
    if visible is None:
        return
    render = _NDJSON_LINE if fmt == "ndjson" else _CSV_LINE

    width = FIRST_SLICE
    while True:
        fetch = functools.partial(_rendered, reader, render, order, cursor, chunk)
        lines, _ = _sliced(fetch, len, chunk, visible, order, _edge(visible, order, cursor), width)
        if not lines:
            return
        yield b"".join(lines)
        progress.events += len(lines)
        progress.last = _position(lines[-1], fmt)
        cursor = Cursor(filters, order, progress.last)
        if len(lines) < chunk:
            return
        # The next chunk's first slice: twice the time this one spanned, so it is usually the only one.
        spanned = abs(progress.last.micros - _position(lines[0], fmt).micros)
        width = max(FIRST_SLICE, timedelta(microseconds=2 * spanned))


def _rendered(
    reader: EventLogReader, render: str, order: Order, cursor: Cursor | None, chunk: int, part: Filters
) -> tuple[list[bytes], int]:
    sql, parameters = _query(render, part, order, cursor, chunk)
    return reader.select_text(sql, parameters, max_rows=chunk, endpoint="export")


def _position(line: bytes, fmt: ExportFormat) -> Position:
    if fmt == "ndjson":
        event = json.loads(line)
        event_id, event_type, at = (
            str(event["event_id"]),
            str(event["event_type"]),
            str(event["event_date_time"]),
        )
    else:
        fields = next(csv.reader(io.StringIO(line.decode())))
        event_id, event_type, at = fields[0], fields[1], fields[2]
    return Position(micros(parse_time("event_date_time", at)), event_type, event_id)


def export(
    reader: EventLogReader, filters: Filters, access: Access, *, order: Order, fmt: ExportFormat,
    cursor: Cursor | None, secret: str, chunk: int = EXPORT_CHUNK, progress: ExportProgress | None = None,
) -> Iterator[bytes]:  # fmt: skip
    """The body of an export, its first chunk already read: an error before anything is sent is
    raised here, to be answered with its status.

    NDJSON: the events, then `{"complete": true, "events": N}`; when ClickHouse fails midway,
    `{"complete": false, "events": N, "resume_cursor": ...}` after the last whole event sent, from
    which an export with the same filters yields exactly the rest. CSV has a header line and no
    place for a last word: a failure midway is raised, so the HTTP response ends without its last
    chunk and the client sees a broken transfer. `progress`, if given, follows the events sent."""
    progress = progress or ExportProgress()
    chunks = export_chunks(
        reader, filters, access, order=order, fmt=fmt, cursor=cursor, progress=progress, chunk=chunk
    )
    first = next(chunks, b"")
    if fmt == "csv":
        return itertools.chain([CSV_HEADER, first], chunks)
    return _ndjson(first, chunks, progress, filters, order, cursor, secret)


def _ndjson(
    first: bytes, chunks: Iterator[bytes], progress: ExportProgress, filters: Filters, order: Order,
    cursor: Cursor | None, secret: str,
) -> Iterator[bytes]:  # fmt: skip
    yield first
    try:
        yield from chunks
    except ClickHouseError as exc:
        resume = Cursor(filters, order, progress.last) if progress.last else cursor
        tail: dict[str, Any] = {"complete": False, "events": progress.events, "error": str(exc)}
        tail["resume_cursor"] = encode_cursor(resume, secret) if resume else None
        yield orjson.dumps(tail) + b"\n"
        return
    yield orjson.dumps({"complete": True, "events": progress.events}) + b"\n"
