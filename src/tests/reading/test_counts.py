"""Counts per bucket in a time zone: every bucket present, local midnights, DST days of 23 and 25 hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.errors import InvalidQuery
from eventlog.reading.counts import MAX_BUCKETS, bucket_starts, count_events, time_zone
from eventlog.reading.filters import EVERYTHING, Access, Filters
from eventlog.reading.store import EventLogReader
from tests.reading.conftest import Stored, store

BERLIN = time_zone("Europe/Berlin")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("day", "hours"),
    [((2026, 3, 29), 23), ((2026, 10, 25), 25), ((2026, 6, 1), 24)],
)
def test_a_berlin_day_has_as_many_hour_buckets_as_its_clock_has_hours(
    writer: EventLogWriter, reader: EventLogReader, day: tuple[int, int, int], hours: int
) -> None:
    midnight = datetime(*day, tzinfo=BERLIN).astimezone(UTC)
    next_midnight = (datetime(*day, tzinfo=BERLIN) + timedelta(days=1)).astimezone(UTC)
    # One event in every UTC hour of the local day, and one just outside it on each side.
    moments = [midnight + timedelta(hours=index, minutes=30) for index in range(hours)]
    store(
        writer,
        [
            Stored(event_date_time=moment)
            for moment in [*moments, midnight - timedelta(seconds=1), next_midnight]
        ],
    )
    filters = Filters(midnight, next_midnight)
    hourly = count_events(reader, filters, EVERYTHING, interval="hour", tz=BERLIN, group_by=None)
    assert [bucket.count for bucket in hourly] == [1] * hours
    assert [bucket.start.astimezone(UTC) for bucket in hourly] == [
        midnight + timedelta(hours=i) for i in range(hours)
    ]
    daily = count_events(reader, filters, EVERYTHING, interval="day", tz=BERLIN, group_by=None)
    assert [(bucket.start.isoformat(), bucket.count) for bucket in daily] == [
        (datetime(*day, tzinfo=BERLIN).isoformat(), hours)
    ]


def test_days_start_at_local_midnight_and_empty_buckets_are_zero(
    writer: EventLogWriter, reader: EventLogReader
) -> None:
    store(writer, [
        Stored("a", utc(2026, 10, 24, 22, 30)),  # 00:30 on the 25th in Berlin (CEST)
        Stored("b", utc(2026, 10, 24, 21, 59)),  # 23:59 on the 24th
        Stored("a", utc(2026, 10, 27, 12)),
    ])  # fmt: skip
    filters = Filters(utc(2026, 10, 23, 22), utc(2026, 10, 28, 23))
    days = count_events(reader, filters, EVERYTHING, interval="day", tz=BERLIN, group_by="event_type")
    assert [(bucket.start.isoformat(), bucket.count, bucket.by) for bucket in days] == [
        ("2026-10-24T00:00:00+02:00", 1, {"a": 0, "b": 1}),
        ("2026-10-25T00:00:00+02:00", 1, {"a": 1, "b": 0}),
        ("2026-10-26T00:00:00+01:00", 0, {"a": 0, "b": 0}),
        ("2026-10-27T00:00:00+01:00", 1, {"a": 1, "b": 0}),
        ("2026-10-28T00:00:00+01:00", 0, {"a": 0, "b": 0}),
    ]


def test_weeks_start_on_monday_and_months_on_the_first(
    writer: EventLogWriter, reader: EventLogReader
) -> None:
    store(
        writer,
        [Stored(event_date_time=utc(2026, 11, 1, 12)), Stored(event_date_time=utc(2026, 11, 30, 23, 30))],
    )
    filters = Filters(utc(2026, 10, 20), utc(2026, 12, 10))
    weeks = count_events(reader, filters, EVERYTHING, interval="week", tz=BERLIN, group_by=None)
    assert weeks[0].start.isoformat() == "2026-10-19T00:00:00+02:00"
    assert all(bucket.start.weekday() == 0 for bucket in weeks)
    assert sum(bucket.count for bucket in weeks) == 2
    months = count_events(reader, filters, EVERYTHING, interval="month", tz=BERLIN, group_by=None)
    # 23:30 UTC on 30 November is 00:30 on 1 December in Berlin.
    assert [(bucket.start.isoformat(), bucket.count) for bucket in months] == [
        ("2026-10-01T00:00:00+02:00", 0), ("2026-11-01T00:00:00+01:00", 1), ("2026-12-01T00:00:00+01:00", 1),
    ]  # fmt: skip


def test_a_half_hour_zone_has_hours_starting_at_half_past_utc() -> None:
    starts = bucket_starts(
        utc(2026, 11, 20, 0, 0), utc(2026, 11, 20, 2, 0), "hour", time_zone("Asia/Kolkata")
    )
    assert [start.astimezone(UTC).strftime("%H:%M") for start in starts] == ["23:30", "00:30", "01:30"]


def test_more_than_a_thousand_buckets_is_refused_never_coarsened() -> None:
    start = utc(2026, 11, 20)
    assert (
        len(bucket_starts(start, start + timedelta(minutes=MAX_BUCKETS), "minute", time_zone("UTC"))) == 1000
    )
    with pytest.raises(InvalidQuery, match="more than 1000 minute buckets"):
        bucket_starts(start, start + timedelta(minutes=MAX_BUCKETS + 1), "minute", time_zone("UTC"))


def test_an_unknown_time_zone_is_refused() -> None:
    for name in ("Mars/Olympus", "../etc/passwd", ""):
        with pytest.raises(InvalidQuery, match="IANA time zone"):
            time_zone(name)


def test_counts_see_only_the_readers_environments(writer: EventLogWriter, reader: EventLogReader) -> None:
    store(writer, [Stored(environment="production"), Stored(environment="staging")])
    filters = Filters(utc(2026, 11, 20), utc(2026, 11, 21), environments=("production", "staging"))
    staging = count_events(
        reader,
        filters,
        Access(frozenset({"staging"})),
        interval="day",
        tz=time_zone("UTC"),
        group_by="environment",
    )
    assert [(bucket.count, bucket.by) for bucket in staging] == [(1, {"staging": 1})]
    nothing = count_events(
        reader, filters, Access(frozenset({"dev"})), interval="day", tz=time_zone("UTC"), group_by=None
    )
    assert [bucket.count for bucket in nothing] == [0]
