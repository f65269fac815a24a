"""Pages of events, one event, and exports, read from the run's ClickHouse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.errors import InvalidQuery
from eventlog.reading.cursor import Cursor, Order, decode_cursor
from eventlog.reading.events import export, get_event, list_events
from eventlog.reading.filters import EVERYTHING, Access, ContextMatch, Filters
from eventlog.reading.store import EventLogReader
from tests.reading.conftest import DAY, Stored, spread, store, window

SECRET = "tests-cursor-secret"


def traverse(
    reader: EventLogReader, filters: Filters, order: Order, limit: int, access: Access = EVERYTHING
) -> list[str]:
    ids: list[str] = []
    cursor: Cursor | None = None
    while True:
        page = list_events(reader, filters, access, order=order, limit=limit, cursor=cursor, secret=SECRET)
        ids += [event["event_id"] for event in page.events]
        if page.next_cursor is None:
            return ids
        cursor = decode_cursor(page.next_cursor, SECRET)


def expected(writer: EventLogWriter, order: Order) -> list[str]:
    """Every stored event's id in the order, as one ClickHouse query sorts them (UUIDs sort as
    ClickHouse stores them, not as their text does)."""
    direction = order.upper()
    rows = (
        writer.client()
        .query(
            f"SELECT toString(event_id) FROM event_log "
            f"ORDER BY event_date_time {direction}, event_type {direction}, event_id {direction}"
        )
        .result_rows
    )
    return [row[0] for row in rows]


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_ten_thousand_events_on_one_timestamp_and_type_are_each_paged_exactly_once_in_order(
    writer: EventLogWriter, reader: EventLogReader, order: Order
) -> None:
    events = store(writer, [Stored(event_date_time=DAY) for _ in range(10_000)])
    ids = traverse(reader, window(), order, limit=700)
    assert len(ids) == len(set(ids)) == 10_000
    assert set(ids) == {event.event_id for event in events}
    assert ids == expected(writer, order)


def test_events_arriving_while_paging_cause_no_skip_and_no_repeat(
    writer: EventLogWriter, reader: EventLogReader
) -> None:
    first = store(writer, spread(3000, step=timedelta(milliseconds=1), event_type="a"))
    filters = window()
    seen: list[str] = []
    cursor: Cursor | None = None
    for round_ in range(100):
        page = list_events(reader, filters, EVERYTHING, order="desc", limit=250, cursor=cursor, secret=SECRET)
        seen += [event["event_id"] for event in page.events]
        # Newcomers on either side of the cursor and on its very timestamp, with types before and after.
        at = first[len(first) // 2 - round_ * 7].event_date_time
        later, earliest = DAY + timedelta(hours=1), DAY + timedelta(microseconds=round_)
        store(
            writer,
            [Stored("a", at), Stored("0", at), Stored("z", at), Stored("a", later), Stored("a", earliest)],
        )
        if page.next_cursor is None:
            break
        cursor = decode_cursor(page.next_cursor, SECRET)
    assert len(seen) == len(set(seen))
    assert set(seen) >= {event.event_id for event in first}


def test_microseconds_survive_the_round_trip_and_bound_the_window_exactly(
    writer: EventLogWriter, reader: EventLogReader
) -> None:
    times = [DAY + timedelta(microseconds=offset) for offset in (0, 1, 999_999, 1_000_000)]
    store(writer, [Stored(event_date_time=moment) for moment in times])
    inside = Filters(DAY + timedelta(microseconds=1), DAY + timedelta(microseconds=1_000_000))
    page = list_events(reader, inside, EVERYTHING, order="asc", limit=10, cursor=None, secret=SECRET)
    assert [event["event_date_time"] for event in page.events] == [
        "2026-11-20T00:00:00.000001Z", "2026-11-20T00:00:00.999999Z",
    ]  # fmt: skip


def test_a_page_is_read_from_a_bounded_part_of_the_table_however_deep(
    writer: EventLogWriter, reader: EventLogReader
) -> None:
    store(writer, spread(200_000, step=timedelta(milliseconds=100)))
    filters = window()
    first = list_events(reader, filters, EVERYTHING, order="desc", limit=100, cursor=None, secret=SECRET)
    deep = Cursor(filters, "desc", decode_cursor(first.next_cursor or "", SECRET).after)
    for _ in range(50):
        page = list_events(reader, filters, EVERYTHING, order="desc", limit=1000, cursor=deep, secret=SECRET)
        deep = decode_cursor(page.next_cursor or "", SECRET)
    last = list_events(reader, filters, EVERYTHING, order="desc", limit=100, cursor=deep, secret=SECRET)
    assert first.read_rows < 50_000, first.read_rows
    assert last.read_rows < 50_000, last.read_rows


def test_filters_select_types_environments_and_context_values(
    writer: EventLogWriter, reader: EventLogReader
) -> None:
    store(writer, [
        Stored("paid", DAY, "production", {"order": {"id": "7"}, "n": 7, "ok": True}),
        Stored("paid", DAY, "staging", {"order": {"id": 7}}),
        Stored("refunded", DAY, "production", {"order": {"id": "8"}, "n": 7.5}),
        Stored("paid", DAY, "production", {"order": {"id": None}, "list": [7]}),
        Stored("paid", DAY, "production", {"order": "7"}),
    ])  # fmt: skip

    def types(**filters: object) -> list[tuple[str, str]]:
        chosen = Filters(DAY - timedelta(hours=1), DAY + timedelta(hours=1), **filters)  # type: ignore[arg-type]
        page = list_events(reader, chosen, EVERYTHING, order="asc", limit=100, cursor=None, secret=SECRET)
        return sorted((event["event_type"], event["environment"]) for event in page.events)

    assert types(event_types=("refunded",)) == [("refunded", "production")]
    assert types(environments=("staging",)) == [("paid", "staging")]
    by_id = (ContextMatch(("order", "id"), "7"),)
    assert types(context=by_id) == [
        ("paid", "production"),
        ("paid", "staging"),
    ]  # the string "7" and the number 7
    assert types(context=(ContextMatch(("ok",), "true"),)) == [("paid", "production")]
    assert types(context=(ContextMatch(("n",), "7.5"),)) == [("refunded", "production")]
    assert (
        types(context=(ContextMatch(("order", "id"), "null"),)) == []
    )  # null is neither a string nor a number
    assert types(context=(ContextMatch(("list",), "[7]"),)) == []  # nor is an array
    assert types(context=(ContextMatch(("missing",), ""),)) == []  # a missing key never matches
    assert types(context=by_id, environments=("staging",)) == [("paid", "staging")]


@pytest.mark.parametrize(
    "value", ["' OR 1=1 --", "x'); DROP TABLE event_log; --", "\\", "{c0:String}", "\x00", "🙂"]
)
def test_injection_looking_values_are_only_values(
    writer: EventLogWriter, reader: EventLogReader, value: str
) -> None:
    store(writer, [Stored("paid", DAY, "production", {"note": value})])
    for filters in (
        Filters(DAY, DAY + timedelta(seconds=1), event_types=(value,)),
        Filters(DAY, DAY + timedelta(seconds=1), environments=(value,)),
        Filters(DAY, DAY + timedelta(seconds=1), context=(ContextMatch((value,), value),)),
    ):
        assert (
            list_events(reader, filters, EVERYTHING, order="asc", limit=5, cursor=None, secret=SECRET).events
            == []
        )
    by_note = Filters(DAY, DAY + timedelta(seconds=1), context=(ContextMatch(("note",), value),))
    found = list_events(reader, by_note, EVERYTHING, order="asc", limit=5, cursor=None, secret=SECRET).events
    assert [event["event_context"] for event in found] == [{"note": value}]


def test_an_environment_bound_reader_sees_only_its_environments(
    writer: EventLogWriter, reader: EventLogReader
) -> None:
    events = store(writer, [Stored(environment=name) for name in ("production", "staging", "dev")])
    staging = Access(frozenset({"staging"}))
    asked = [window(), Filters(window().start, window().end, environments=("production", "staging"))]
    for filters in asked:
        page = list_events(reader, filters, staging, order="asc", limit=10, cursor=None, secret=SECRET)
        assert [event["environment"] for event in page.events] == ["staging"]
    only_other = Filters(window().start, window().end, environments=("production",))
    assert (
        list_events(reader, only_other, staging, order="asc", limit=10, cursor=None, secret=SECRET).events
        == []
    )
    assert get_event(reader, events[0].event_id, staging) is None
    assert get_event(reader, events[1].event_id, staging) is not None
    assert get_event(reader, events[0].event_id, EVERYTHING) is not None
    assert get_event(reader, "not-a-uuid", EVERYTHING) is None


def test_a_cursor_that_was_altered_or_made_elsewhere_is_refused() -> None:
    from eventlog.reading.cursor import Position, encode_cursor

    token = encode_cursor(
        Cursor(window(), "desc", Position(1, "a", "6f1c1f4e-3b9a-4c1e-9d53-2f1f0a6b8e21")), SECRET
    )
    assert decode_cursor(token, SECRET).after.event_type == "a"
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), token.replace(":", ";", 1), "", "x" * 50):
        with pytest.raises(InvalidQuery):
            decode_cursor(bad, SECRET)
    with pytest.raises(InvalidQuery):
        decode_cursor(token, "another-secret")


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_an_export_yields_every_event_once_in_the_lists_shape(
    writer: EventLogWriter, reader: EventLogReader, fmt: str
) -> None:
    import csv
    import io
    import json

    store(writer, spread(2_500, event_type='quote"and,comma\nnewline', event_context={"a": [1, "x"]}))
    body = b"".join(
        export(reader, window(), EVERYTHING, order="asc", fmt=fmt, cursor=None, secret=SECRET, chunk=1000)
    )  # type: ignore[arg-type]
    if fmt == "ndjson":
        lines = [json.loads(line) for line in body.splitlines()]
        assert lines[-1] == {"complete": True, "events": 2_500}
        page = list_events(reader, window(), EVERYTHING, order="asc", limit=1, cursor=None, secret=SECRET)
        assert lines[0] == page.events[0]
        ids = [line["event_id"] for line in lines[:-1]]
    else:
        rows = list(csv.reader(io.StringIO(body.decode())))
        assert rows[0] == [
            "event_id",
            "event_type",
            "event_date_time",
            "environment",
            "event_context",
            "metadata_version",
        ]
        assert rows[1][1:] == [
            'quote"and,comma\nnewline',
            "2026-11-20T00:00:00.000000Z",
            "production",
            '{"a": [1, "x"]}',
            "1",
        ]
        ids = [row[0] for row in rows[1:]]
    assert ids == expected(writer, "asc")


def test_times_are_utc_with_microseconds_and_z(writer: EventLogWriter, reader: EventLogReader) -> None:
    store(writer, [Stored(event_date_time=datetime(2026, 11, 20, 1, 2, 3, 4, tzinfo=UTC))])
    page = list_events(reader, window(), EVERYTHING, order="asc", limit=1, cursor=None, secret=SECRET)
    assert page.events[0]["event_date_time"] == "2026-11-20T01:02:03.000004Z"


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_an_export_cut_midway_says_where_to_resume_and_resuming_yields_exactly_the_rest(
    clickhouse: object, order: Order
) -> None:
    """ClickHouse really fails midway: the export's table is dropped after its first chunk."""
    import json

    from eventlog.clickhouse.event_log import EventLogWriter as Writer
    from eventlog.clickhouse.event_log import ensure_schema
    from tests.processes import clickhouse_url, new_database

    url = clickhouse_url(new_database())
    own_writer, own_reader = Writer(url), EventLogReader(url)
    events = store(own_writer, spread(2_000))
    body = export(
        own_reader, window(), EVERYTHING, order=order, fmt="ndjson", cursor=None, secret=SECRET, chunk=300
    )
    sent = [next(body)]  # the first chunk, read before the answer starts
    own_writer.client().command(f"DROP TABLE {own_reader.table}")
    sent += list(body)
    tail = json.loads(sent[-1])
    assert tail["complete"] is False
    assert tail["events"] == 300
    assert "UNKNOWN_TABLE" in tail["error"]
    first_part = [json.loads(line)["event_id"] for line in b"".join(sent[:-1]).splitlines()]
    ensure_schema(own_writer.client(), own_writer.database)  # the table is back, with the same events
    store(own_writer, events)
    resume_cursor = decode_cursor(tail["resume_cursor"], SECRET)
    resumed = export(
        own_reader,
        window(),
        EVERYTHING,
        order=order,
        fmt="ndjson",
        cursor=resume_cursor,
        secret=SECRET,
        chunk=300,
    )
    lines = b"".join(resumed).splitlines()
    assert json.loads(lines[-1]) == {"complete": True, "events": 1_700}
    rest = [json.loads(line)["event_id"] for line in lines[:-1]]
    assert first_part + rest == expected(own_writer, order)


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_sparse_events_are_found_across_widening_slices_exactly_once(
    writer: EventLogWriter, reader: EventLogReader, order: Order
) -> None:
    """Pages are read in time slices from the cursor (1 hour, then 16 times wider): events minutes,
    days and months apart are each found once, in order, whatever slice they fall in."""
    gaps = [
        timedelta(minutes=3),
        timedelta(hours=5),
        timedelta(days=2),
        timedelta(days=40),
        timedelta(seconds=1),
    ]
    moments = [DAY - timedelta(days=200)]
    for index in range(40):
        moments.append(moments[-1] + gaps[index % len(gaps)])
    store(writer, [Stored(event_date_time=moment) for moment in moments])
    everything = Filters(DAY - timedelta(days=365), DAY + timedelta(days=3000))
    for limit in (1, 3, 7):
        assert traverse(reader, everything, order, limit) == expected(writer, order)


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_an_export_through_dense_and_sparse_stretches_yields_every_event_once_in_order(
    writer: EventLogWriter, reader: EventLogReader, order: Order
) -> None:
    """An export's chunks are read in time slices sized by the chunk before (twice the time it
    spanned): a chunk after a dense stretch that meets a sparse one must widen, not stop."""
    import json

    dense = spread(400, start=DAY, step=timedelta(milliseconds=10))
    sparse = spread(30, start=DAY - timedelta(days=200), step=timedelta(days=7))
    later = spread(30, start=DAY + timedelta(hours=1), step=timedelta(hours=5))
    store(writer, dense + sparse + later)
    everything = Filters(DAY - timedelta(days=365), DAY + timedelta(days=30))
    body = b"".join(
        export(
            reader, everything, EVERYTHING, order=order, fmt="ndjson", cursor=None, secret=SECRET, chunk=45
        )
    )
    lines = [json.loads(line) for line in body.splitlines()]
    assert lines[-1] == {"complete": True, "events": 460}
    assert [line["event_id"] for line in lines[:-1]] == expected(writer, order)


def test_an_export_over_centuries_widens_its_slices_without_leaving_the_calendar(
    writer: EventLogWriter, reader: EventLogReader
) -> None:
    """A chunk spanning 80 years makes the next slice 160 years wide, then 2,560: wider than the
    time since year 1, which must end the widening (the range is spanned), not overflow."""
    import json

    centuries = [
        Stored(event_date_time=datetime(year, 1, 1, tzinfo=UTC)) for year in (2200, 2220, 2240, 2260, 2280)
    ]
    store(writer, [*centuries, Stored(event_date_time=datetime(1950, 1, 1, tzinfo=UTC))])
    everything = Filters(datetime(1900, 1, 1, tzinfo=UTC), datetime(2299, 12, 31, tzinfo=UTC))
    body = b"".join(
        export(
            reader, everything, EVERYTHING, order="desc", fmt="ndjson", cursor=None, secret=SECRET, chunk=5
        )
    )
    lines = [json.loads(line) for line in body.splitlines()]
    assert lines[-1] == {"complete": True, "events": 6}
    assert [line["event_id"] for line in lines[:-1]] == expected(writer, "desc")
