"""Browsing events as a person does on the events page: newest first, a page older or newer at a
time, with a chart of the range's counts.

Both directions are keyset pages (events.py): older is the next page in descending order after a
page's oldest event, newer the next page in ascending order after its newest event, shown
reversed. Their cursors are the API's own, so a page link carries nothing the API would not
accept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from eventlog.reading.counts import Interval
from eventlog.reading.cursor import Cursor, Order, Position, encode_cursor, resume
from eventlog.reading.events import list_events
from eventlog.reading.filters import Access, Filters, Params, micros, parse_time
from eventlog.reading.store import EventLogReader

MAX_CHART_BUCKETS = 120
# A bucket's length, near enough to choose the finest interval that keeps a chart readable.
_APPROXIMATE_LENGTH: dict[Interval, timedelta] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "month": timedelta(days=31),
}


@dataclass(frozen=True)
class BrowsePage:
    events: list[dict[str, Any]]  # newest first
    older: str | None  # the cursor of the page of older events, if there are any
    newer: str | None  # the cursor of the page of newer events, if there are any


def resume_browsing(params: Params, secret: str, now: datetime) -> tuple[Filters, Cursor | None]:
    """The filters and cursor of a page request: as the API's, in whichever order its cursor
    goes (newer pages are read ascending)."""
    return resume(params, None, secret, now)


def browse_events(
    reader: EventLogReader,
    filters: Filters,
    access: Access,
    *,
    cursor: Cursor | None,
    limit: int,
    secret: str,
) -> BrowsePage:
    """The page `cursor` points at (the newest page without one), newest first, and the cursors
    of its neighbours."""
    if cursor is None or cursor.order == "desc":
        page = list_events(reader, filters, access, order="desc", limit=limit, cursor=cursor, secret=secret)
        events, has_older, has_newer = page.events, page.next_cursor is not None, cursor is not None
    else:
        page = list_events(reader, filters, access, order="asc", limit=limit, cursor=cursor, secret=secret)
        events, has_older, has_newer = page.events[::-1], True, page.next_cursor is not None
    if not events:
        return BrowsePage([], None, None)
    older = _cursor(filters, "desc", events[-1], secret) if has_older else None
    newer = _cursor(filters, "asc", events[0], secret) if has_newer else None
    return BrowsePage(events, older, newer)


def _cursor(filters: Filters, order: Order, event: dict[str, Any], secret: str) -> str:
    moment = micros(parse_time("event_date_time", event["event_date_time"]))
    return encode_cursor(
        Cursor(filters, order, Position(moment, event["event_type"], event["event_id"])), secret
    )


def chart_interval(filters: Filters) -> Interval:
    """The finest interval that divides the range into about MAX_CHART_BUCKETS buckets at most
    (lengths are approximate: a month is taken as 31 days), or month, however many that makes."""
    span = filters.end - filters.start
    for interval, length in _APPROXIMATE_LENGTH.items():
        if span <= length * MAX_CHART_BUCKETS:
            return interval
    return "month"
