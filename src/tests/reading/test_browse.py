"""Browsing newest first, older and newer a page at a time, as the events page does."""

from __future__ import annotations

from datetime import timedelta

import pytest

from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.errors import InvalidQuery
from eventlog.reading.browse import BrowsePage, browse_events, chart_interval, resume_browsing
from eventlog.reading.cursor import decode_cursor
from eventlog.reading.filters import EVERYTHING, Filters
from eventlog.reading.store import EventLogReader
from tests.reading.conftest import DAY, spread, store, window

SECRET = "tests-browse-secret"


def page_at(reader: EventLogReader, filters: Filters, token: str | None, limit: int = 10) -> BrowsePage:
    cursor = decode_cursor(token, SECRET) if token else None
    return browse_events(reader, filters, EVERYTHING, cursor=cursor, limit=limit, secret=SECRET)


def ids(page: BrowsePage) -> list[str]:
    return [event["event_id"] for event in page.events]


def test_older_pages_walk_to_the_oldest_event_and_newer_pages_walk_back_the_same_pages(
    writer: EventLogWriter, reader: EventLogReader
) -> None:
    newest_first = [event.event_id for event in store(writer, spread(25))][::-1]
    first = page_at(reader, window(), None)
    assert ids(first) == newest_first[:10]
    assert first.newer is None
    second = page_at(reader, window(), first.older)
    third = page_at(reader, window(), second.older)
    assert ids(second) == newest_first[10:20]
    assert ids(third) == newest_first[20:]
    assert third.older is None
    back = page_at(reader, window(), third.newer)
    assert ids(back) == newest_first[10:20]
    assert back.older is not None
    top = page_at(reader, window(), back.newer)
    assert ids(top) == newest_first[:10]
    assert top.newer is None
    assert ids(page_at(reader, window(), top.older)) == newest_first[10:20]


def test_a_range_without_events_has_no_neighbours(reader: EventLogReader) -> None:
    assert page_at(reader, window(), None) == BrowsePage([], None, None)


def test_a_page_link_resumes_in_its_own_order_and_only_with_its_own_filters(
    writer: EventLogWriter, reader: EventLogReader
) -> None:
    store(writer, spread(15))
    bounds = {"from": ["2026-11-19T00:00:00Z"], "to": ["2026-11-21T00:00:00Z"]}
    filters, _ = resume_browsing(bounds, SECRET, DAY)
    newer = page_at(reader, filters, page_at(reader, filters, None).older).newer
    assert newer is not None
    resumed_filters, cursor = resume_browsing({**bounds, "cursor": [newer]}, SECRET, DAY)
    assert resumed_filters == filters
    assert cursor is not None
    assert cursor.order == "asc"
    with pytest.raises(InvalidQuery, match="other filters"):
        resume_browsing({**bounds, "event_type": ["other"], "cursor": [newer]}, SECRET, DAY)


@pytest.mark.parametrize(
    ("span", "interval"),
    [
        (timedelta(hours=1), "minute"),
        (timedelta(hours=24), "hour"),
        (timedelta(days=30), "day"),
        (timedelta(days=365), "week"),
        (timedelta(days=3650), "month"),
    ],
)
def test_the_chart_uses_the_finest_interval_that_keeps_it_readable(span: timedelta, interval: str) -> None:
    assert chart_interval(Filters(DAY - span, DAY)) == interval
