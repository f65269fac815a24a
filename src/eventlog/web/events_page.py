"""The events page at /events/, for staff: the read API's filters as a form, the newest events
first with older/newer links, each event's JSON a click away, and a bar chart of the range's
counts by type. It reads ClickHouse through the same core functions as the API (eventlog/reading),
with the API's own parameters and cursors, so it has no query logic of its own.

Staff see every environment: the admin login is the permission, as on the status page."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from eventlog.errors import ClickHouseError, InvalidQuery, ReadLimitExceeded
from eventlog.reading.browse import browse_events, chart_interval, resume_browsing
from eventlog.reading.counts import Bucket, Interval, count_events
from eventlog.reading.filters import CONTEXT_PREFIX, EVERYTHING, Filters, format_time, parse_limit
from eventlog.reading.store import EventLogReader
from eventlog.runtime import event_log_reader

PAGE_SIZES = (25, 50, 100, 250)
DEFAULT_PAGE_SIZE = 50
CHART_WIDTH, CHART_HEIGHT = 960, 180
# Distinct on a white page and for the common forms of colour blindness (Okabe and Ito's palette).
COLOURS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000")
# What <input type=datetime-local> sends (minutes, maybe seconds), or an RFC 3339 time typed in.
_FORM_TIME = re.compile(
    r"(?P<minutes>\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2})(?P<seconds>:\d{2}(\.\d+)?)?(?P<offset>.*)"
)
UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    label: str  # what the bar's tooltip says


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    legend: list[tuple[str, str]]  # (event type, colour)
    highest: int  # the tallest bar's count, the top of the scale
    total: int
    first: str  # the first and last buckets' starts
    last: str


def api_params(form: QueryDict) -> dict[str, list[str]]:
    """The page's form as the read API's parameters: comma-separated types and environments,
    times in UTC from the browser's datetime inputs, `path=value` context matches."""
    params: dict[str, list[str]] = {}
    for name in ("event_type", "environment"):
        values = [value.strip() for raw in form.getlist(name) for value in raw.split(",")]
        if any(values):
            params[name] = [value for value in values if value]
    for name in ("from", "to"):
        raw = form.get(name, "").strip()
        if raw:
            params[name] = [_form_time(raw)]
    for match in form.getlist("context"):
        if match.strip():
            path, equals, value = match.strip().partition("=")
            if not equals or not path:
                raise InvalidQuery(f"a context filter is path=value, such as user.id=42; got {match!r}")
            params.setdefault(f"{CONTEXT_PREFIX}{path.strip()}", []).append(value.strip())
    for name in ("limit", "cursor"):
        value = form.get(name, "")
        if value:
            params[name] = [value]
    return params


def _form_time(raw: str) -> str:
    """A form's time as RFC 3339: seconds added when it has none, UTC when it has no offset."""
    parts = _FORM_TIME.fullmatch(raw)
    if parts is None:
        return raw  # parse_time says what is wrong with it
    return f"{parts['minutes']}{parts['seconds'] or ':00'}{parts['offset'] or 'Z'}"


@require_GET
@never_cache  # event data must not stay in the browser's cache after a logout
@staff_member_required
def events_page(request: HttpRequest) -> HttpResponse:
    context: dict[str, Any] = {
        "form": request.GET,
        "page_sizes": PAGE_SIZES,
        "default_size": DEFAULT_PAGE_SIZE,
    }
    try:
        context.update(_read(request.GET))
    except InvalidQuery as exc:
        return render(request, "eventlog/events.html", {**context, "error": str(exc)}, status=400)
    except (ReadLimitExceeded, ClickHouseError) as exc:
        message = f"ClickHouse could not answer: {exc}"
        return render(request, "eventlog/events.html", {**context, "error": message}, status=503)
    return render(request, "eventlog/events.html", context)


def _read(form: QueryDict) -> dict[str, Any]:
    params = api_params(form)
    secret = settings.SECRET_KEY
    limit = parse_limit(params, DEFAULT_PAGE_SIZE, max(PAGE_SIZES))
    filters, cursor = resume_browsing(params, secret, timezone.now())
    reader = event_log_reader()
    page = browse_events(reader, filters, EVERYTHING, cursor=cursor, limit=limit, secret=secret)
    interval = chart_interval(filters)
    return {
        "range": (format_time(filters.start), format_time(filters.end)),
        "interval": interval,
        "events": [
            {**event, "json": json.dumps(event, indent=2, ensure_ascii=False)} for event in page.events
        ],
        "older": _link(form, page.older),
        "newer": _link(form, page.newer),
        **_chart(reader, filters, interval),
    }


def _chart(reader: EventLogReader, filters: Filters, interval: Interval) -> dict[str, Any]:
    """The chart, or why there is none: a range too long for the coarsest interval, or more
    types than a count may return, still leaves the events listed."""
    try:
        buckets = count_events(
            reader, filters, EVERYTHING, interval=interval, tz=UTC_ZONE, group_by="event_type"
        )
    except (InvalidQuery, ReadLimitExceeded) as exc:
        return {"chart": None, "chart_error": str(exc)}
    return {"chart": bar_chart(buckets, filters)}


def _link(form: QueryDict, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    query = form.copy()
    query["cursor"] = cursor
    return f"?{query.urlencode()}"


def bar_chart(buckets: list[Bucket], filters: Filters) -> Chart:
    """One bar a bucket, stacked by event type, scaled to the tallest."""
    types = sorted({name for bucket in buckets for name, count in bucket.by.items() if count})
    colour = {name: COLOURS[index % len(COLOURS)] for index, name in enumerate(types)}
    highest = max((bucket.count for bucket in buckets), default=0)
    width = CHART_WIDTH / max(len(buckets), 1)
    bars = []
    for index, bucket in enumerate(buckets):
        base = float(CHART_HEIGHT)
        for name in types:
            count = bucket.by.get(name, 0)
            if count:
                height = CHART_HEIGHT * count / highest
                base -= height
                label = f"{name}: {count} from {format_time(bucket.start)}"
                bars.append(Bar(index * width, base, max(width - 1, 1), height, colour[name], label))
    return Chart(
        bars=bars,
        legend=[(name, colour[name]) for name in types],
        highest=highest,
        total=sum(bucket.count for bucket in buckets),
        first=format_time(buckets[0].start) if buckets else format_time(filters.start),
        last=format_time(buckets[-1].start) if buckets else format_time(filters.end),
    )
