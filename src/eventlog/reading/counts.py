"""Events counted per time bucket, in a time zone, with every bucket of the range present.

Buckets start where a clock in `tz` starts them: on the minute, the hour, local midnight, Monday
(ISO weeks) or the first of the month, so a day has 23 or 25 hours across a change of daylight
saving time. ClickHouse counts per bucket start (its own time zone functions); the buckets
themselves are laid out here, from the range, so empty ones are there as 0. The first and last
bucket count only the part of them inside the range. More than MAX_BUCKETS is refused, never
answered with coarser buckets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventlog.errors import InvalidQuery
from eventlog.reading.filters import Access, Filters, where
from eventlog.reading.store import EventLogReader

Interval = Literal["minute", "hour", "day", "week", "month"]
GroupBy = Literal["event_type", "environment"]
INTERVALS: tuple[Interval, ...] = ("minute", "hour", "day", "week", "month")
MAX_BUCKETS = 1000
MAX_GROUP_ROWS = 100_000  # (bucket, group) pairs one answer may hold

# The start of an event's bucket, as seconds since the epoch (the time zone is a bound parameter).
_BUCKET_START = {
    "minute": "toStartOfMinute(event_date_time, {tz:String})",
    "hour": "toStartOfHour(event_date_time, {tz:String})",
    "day": "toStartOfDay(event_date_time, {tz:String})",
    "week": "toDateTime(toMonday(event_date_time, {tz:String}), {tz:String})",
    "month": "toDateTime(toStartOfMonth(event_date_time, {tz:String}), {tz:String})",
}


@dataclass(frozen=True)
class Bucket:
    start: datetime  # in the answer's time zone
    count: int = 0
    by: dict[str, int] = field(default_factory=dict)


def time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidQuery(f"tz must be an IANA time zone such as Europe/Berlin, got {name!r}") from None


def bucket_starts(start: datetime, end: datetime, interval: Interval, tz: ZoneInfo) -> list[datetime]:
    """The starts of the buckets covering [start, end), in `tz`; InvalidQuery beyond MAX_BUCKETS."""
    starts: list[datetime] = []
    for bucket in _walk(start, interval, tz):
        if bucket >= end:
            break
        if len(starts) == MAX_BUCKETS:
            raise InvalidQuery(
                f"more than {MAX_BUCKETS} {interval} buckets in this range: "
                "choose a longer interval or a shorter range"
            )
        starts.append(bucket)
    return starts


def _walk(start: datetime, interval: Interval, tz: ZoneInfo) -> Iterator[datetime]:
    local = start.astimezone(tz)
    if interval in ("minute", "hour"):
        # Whole minutes and hours pass alike in every zone's offsets that matter here, so the
        # starts are a fixed step apart in UTC; the local floor keeps a +05:30 zone's hours at :30.
        floor = local.replace(second=0, microsecond=0)
        if interval == "hour":
            floor = floor.replace(minute=0)
        step = timedelta(minutes=1) if interval == "minute" else timedelta(hours=1)
        moment = floor.astimezone(UTC)
        while True:
            yield moment.astimezone(tz)
            moment += step
    day = local.date()
    if interval == "week":
        day -= timedelta(days=day.weekday())
    elif interval == "month":
        day = day.replace(day=1)
    while True:
        yield datetime.combine(day, time(0), tz)
        day = _next_day(day, interval)


def _next_day(day: date, interval: Interval) -> date:
    if interval == "day":
        return day + timedelta(days=1)
    if interval == "week":
        return day + timedelta(days=7)
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def count_events(
    reader: EventLogReader, filters: Filters, access: Access, *, interval: Interval, tz: ZoneInfo,
    group_by: GroupBy | None,
) -> list[Bucket]:  # fmt: skip
    """Every bucket of `filters`' range with its count (and, with `group_by`, the count of each
    group seen anywhere in the range, 0 where it has none)."""
    starts = bucket_starts(filters.start, filters.end, interval, tz)
    visible = access.restrict(filters)
    if visible is None:
        return [Bucket(start, 0, {}) for start in starts]
    conditions, parameters = where(visible)
    group = f", {group_by}" if group_by else ""
    sql = (
        f"SELECT toUnixTimestamp({_BUCKET_START[interval]}) AS bucket{group}, count() FROM {{table}} "
        f"WHERE {' AND '.join(conditions)} GROUP BY bucket{group} ORDER BY bucket"
    )
    rows = reader.select(sql, {**parameters, "tz": tz.key}, max_rows=MAX_GROUP_ROWS, endpoint="counts").rows
    counts: dict[int, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(int(row[0]), {})[str(row[1]) if group_by else ""] = int(row[-1])
    groups = sorted({name for by in counts.values() for name in by}) if group_by else []
    buckets = []
    for start in starts:
        found = counts.get(int(start.timestamp()), {})
        by = {name: found.get(name, 0) for name in groups}
        buckets.append(Bucket(start, sum(found.values()), by))
    return buckets
